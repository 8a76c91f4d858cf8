"""Outside supervisors (行政执法监督员, issue 14 item 7): who is assigned to which finding."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0006_monitors"
down_revision = "0005_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create finding_monitors and its index by user."""
    op.create_table(
        "finding_monitors",
        sa.Column("finding_id", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("assigned_by", sa.Text(), nullable=False),
        sa.Column("assigned_ms", INT, nullable=False),
        sa.PrimaryKeyConstraint("finding_id", "username", name=op.f("finding_monitors_pkey")),
    )
    op.create_index("finding_monitors_by_user", "finding_monitors", ["username"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
