"""Supervision, second part (issue 14): the files an agency attaches to its rectification report, and the officer a
finding is about (a complaint about an officer's conduct opens a finding about that officer's agency)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0008_attachments"
down_revision = "0007_hotline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create letter_attachments; add findings.officer_id."""
    op.create_table(
        "letter_attachments",
        sa.Column("attachment_id", sa.Text(), nullable=False),
        sa.Column("letter_id", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", INT, nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.Text(), nullable=False),
        sa.Column("uploaded_ms", INT, nullable=False),
        sa.PrimaryKeyConstraint("attachment_id", name=op.f("letter_attachments_pkey")),
    )
    op.create_index("letter_attachments_by_letter", "letter_attachments", ["letter_id", "uploaded_ms"])
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("officer_id", sa.Text(), nullable=True))


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
