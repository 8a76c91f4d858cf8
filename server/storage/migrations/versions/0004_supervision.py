"""Supervision (issue 14): findings and the letters issued on them; each step is also a server record (0003)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0004_supervision"
down_revision = "0003_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create findings and letters with their indexes."""
    op.create_table(
        "findings",
        sa.Column("finding_id", sa.Text(), nullable=False),
        sa.Column("year", INT, nullable=False),
        sa.Column("seq", INT, nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("credit_code", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.Column("opened_ms", INT, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("closed_ms", INT, nullable=True),
        sa.Column("close_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("findings_pkey")),
        sa.UniqueConstraint("year", "seq", name=op.f("findings_year_seq_key")),
    )
    op.create_index("findings_by_agency", "findings", ["agency_id", "opened_ms"])
    op.create_table(
        "letters",
        sa.Column("letter_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("year", INT, nullable=False),
        sa.Column("number", INT, nullable=False),
        sa.Column("finding_id", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("requirements", sa.Text(), nullable=False),
        sa.Column("deadline_days", INT, nullable=False),
        sa.Column("issued_on", sa.Text(), nullable=False),
        sa.Column("deadline", sa.Text(), nullable=False),
        sa.Column("issued_by", sa.Text(), nullable=False),
        sa.Column("issued_ms", INT, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("replied_by", sa.Text(), nullable=True),
        sa.Column("replied_ms", INT, nullable=True),
        sa.Column("verdict_note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decided_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("letter_id", name=op.f("letters_pkey")),
        sa.UniqueConstraint("issuer", "kind", "year", "number", name=op.f("letters_issuer_kind_year_number_key")),
    )
    op.create_index("letters_by_agency", "letters", ["agency_id", "issued_ms"])
    op.create_index("letters_by_finding", "letters", ["finding_id"])
    op.create_index("letters_by_status", "letters", ["status", "deadline"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
