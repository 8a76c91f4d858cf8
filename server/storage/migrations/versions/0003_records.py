"""Server records (issue 14 onwards): the server's own acts, appended to the evidence log beside device events.

``records`` holds one row per act (a finding opened, a letter issued, a reply accepted, ...); its leaf in
``evidence_log`` has the record's id where a device event has its event id (the two never collide: a record id
holds a ``:``, which an event id may not; protocol/README.md §15.7).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0003_records"
down_revision = "0002_job_slots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the records table and its index by subject."""
    op.create_table(
        "records",
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("at_ms", INT, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("records_pkey")),
    )
    op.create_index("records_by_subject", "records", ["subject", "at_ms"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
