"""Enforcement cases and the legal-review gate (issue 15).

Cases, their officers, parties, inspections and documents; legal reviewers, reviews, decisions and transfers
(server/storage/schema_cases.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0009_cases"
down_revision = "0008_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables of cases with their indexes."""
    op.create_table(
        "cases",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("year", INT, nullable=False),
        sa.Column("seq", INT, nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("credit_code", sa.Text(), nullable=True),
        sa.Column("inspection_id", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.Column("opened_ms", INT, nullable=False),
        sa.Column("deadline", sa.Text(), nullable=False),
        sa.Column("updated_ms", INT, nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("cases_pkey")),
        sa.UniqueConstraint("year", "seq", name=op.f("cases_year_seq_key")),
    )
    op.create_index("cases_by_enterprise", "cases", ["credit_code"])
    op.create_index("cases_by_agency", "cases", ["agency_id", "opened_ms"])
    op.create_table(
        "case_officers",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("officer_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "officer_id", name=op.f("case_officers_pkey")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "case_parties",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("seq", INT, nullable=False, autoincrement=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("id_no", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "seq", name=op.f("case_parties_pkey")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "case_inspections",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("inspection_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "inspection_id", name=op.f("case_inspections_pkey")),
        sqlite_with_rowid=False,
    )
    op.create_index("case_inspections_by_inspection", "case_inspections", ["inspection_id"])
    op.create_table(
        "case_documents",
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("seq", INT, nullable=False, autoincrement=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.Column("added_ms", INT, nullable=False),
        sa.PrimaryKeyConstraint("case_id", "seq", name=op.f("case_documents_pkey")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "case_reviewers",
        sa.Column("officer_id", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("qualification_no", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("granted_ms", INT, nullable=False),
        sa.Column("revoked_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("officer_id", name=op.f("case_reviewers_pkey")),
    )
    op.create_index("case_reviewers_by_agency", "case_reviewers", ["agency_id"])
    op.create_table(
        "case_reviews",
        sa.Column("review_id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("fine_yuan", INT, nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("hearing", INT, nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("submitted_ms", INT, nullable=False),
        sa.Column("deadline", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=True),
        sa.Column("checklist", sa.Text(), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("crime_suspected", INT, nullable=False, server_default=sa.text("0")),
        sa.Column("reviewed_ms", INT, nullable=True),
        sa.Column("head_note", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolved_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("review_id", name=op.f("case_reviews_pkey")),
    )
    op.create_index("case_reviews_by_agency", "case_reviews", ["agency_id", "status"])
    op.create_index("case_reviews_by_case", "case_reviews", ["case_id"])
    op.create_table(
        "case_decisions",
        sa.Column("decision_id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("agency_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("fine_yuan", INT, nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("hearing", INT, nullable=False),
        sa.Column("major_rules", sa.Text(), nullable=False),
        sa.Column("review_id", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=False),
        sa.Column("decided_ms", INT, nullable=False),
        sa.Column("decided_on", sa.Text(), nullable=False),
        sa.Column("published_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("case_decisions_pkey")),
        sa.UniqueConstraint("case_id", name=op.f("case_decisions_case_id_key")),
    )
    op.create_index("case_decisions_by_agency", "case_decisions", ["agency_id", "decided_on"])
    op.create_table(
        "case_transfers",
        sa.Column("transfer_id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("from_agency", sa.Text(), nullable=False),
        sa.Column("to_agency", sa.Text(), nullable=True),
        sa.Column("to_body", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prior_state", sa.Text(), nullable=False),
        sa.Column("sent_by", sa.Text(), nullable=False),
        sa.Column("sent_ms", INT, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.Column("answered_ms", INT, nullable=True),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("case_transfers_pkey")),
    )
    op.create_index("case_transfers_by_to", "case_transfers", ["to_agency", "status"])
    op.create_index("case_transfers_by_case", "case_transfers", ["case_id"])


def downgrade() -> None:
    """Not supported, as for the baseline: restore a backup instead."""
    raise NotImplementedError("downgrades are not supported")
