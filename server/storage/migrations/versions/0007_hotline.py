"""12345 hotline tickets (issue 14 item 4), joined with inspections by enterprise (or address) and time."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0007_hotline"
down_revision = "0006_monitors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create hotline_tickets and its indexes."""
    op.create_table(
        "hotline_tickets",
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("received_ms", INT, nullable=False),
        sa.Column("credit_code", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("imported_ms", INT, nullable=False),
        sa.Column("finding_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("hotline_tickets_pkey")),
    )
    op.create_index("hotline_tickets_by_code", "hotline_tickets", ["credit_code", "received_ms"])
    op.create_index("hotline_tickets_by_address", "hotline_tickets", ["address"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
