"""Evidence bundles and kept tree heads (issue 17): tree heads by time, for the daily head the public page and every
bundle show (the last head signed before a day began) without reading every head kept."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0012_evidence"
down_revision = "0011_badges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index tree_heads by timestamp_ms."""
    op.create_index("tree_heads_by_time", "tree_heads", ["timestamp_ms"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
