"""The console's own state (issue 16): alerts acknowledged and assigned.

One table, alert_handling (server/storage/schema_console.py): who acknowledged an alert and when, to whom it was
assigned, by whom and when."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0010_console"
down_revision = "0009_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create alert_handling."""
    op.create_table(
        "alert_handling",
        sa.Column("alert_id", INT, autoincrement=False, nullable=False),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("acknowledged_ms", INT, nullable=True),
        sa.Column("assigned_to", sa.Text(), nullable=True),
        sa.Column("assigned_by", sa.Text(), nullable=True),
        sa.Column("assigned_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("alert_handling_pkey")),
    )
    op.create_index("alert_handling_by_assignee", "alert_handling", ["assigned_to"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
