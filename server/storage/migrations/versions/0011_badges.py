"""The officer's door codes (亮码检查, issue 16 item 3): issued codes, so that a replayed one is known.

Reserved in the chain so that work in parallel adds its tables without reordering revisions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0011_badges"
down_revision = "0010_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the badges table and its two indexes."""
    op.create_table(
        "badges",
        sa.Column("badge_id", sa.Text(), nullable=False),
        sa.Column("inspection_id", sa.Text(), nullable=False),
        sa.Column("officer_id", sa.Text(), nullable=False),
        sa.Column("issued_ms", INT, nullable=False),
        sa.Column("expires_ms", INT, nullable=False),
        sa.Column("superseded_ms", INT, nullable=True),
        sa.Column("first_checked_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("badge_id", name=op.f("badges_pkey")),
    )
    op.create_index("badges_of_part", "badges", ["inspection_id", "officer_id", "issued_ms"])
    op.create_index("badges_by_officer", "badges", ["officer_id", "issued_ms"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
