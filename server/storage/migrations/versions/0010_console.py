"""The console's own state (issue 16): alerts acknowledged and assigned.

Reserved in the chain so that work in parallel adds its tables without reordering revisions; it changes nothing until
its tables are written here."""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - the tables to come
from alembic import op  # noqa: F401 - the tables to come

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0010_console"
down_revision = "0009_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
