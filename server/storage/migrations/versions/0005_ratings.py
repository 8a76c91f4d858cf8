"""Enterprises rate the inspections they received (issue 14 item 8): one rating per inspection."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0005_ratings"
down_revision = "0004_supervision"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ratings table and its index by agency."""
    op.create_table(
        "ratings",
        sa.Column("inspection_id", sa.Text(), nullable=False),
        sa.Column("credit_code", sa.Text(), nullable=False),
        sa.Column("lead_agency_id", sa.Text(), nullable=False),
        sa.Column("score", INT, nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rated_by", sa.Text(), nullable=False),
        sa.Column("rated_ms", INT, nullable=False),
        sa.PrimaryKeyConstraint("inspection_id", name=op.f("ratings_pkey")),
    )
    op.create_index("ratings_by_agency", "ratings", ["lead_agency_id", "rated_ms"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
