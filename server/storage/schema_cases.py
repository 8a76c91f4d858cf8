"""Tables of issue 15 (migration 0009_cases): enforcement cases (案件), their officers, parties, inspections and
documents, the legal reviewers' qualification, legal reviews (法制审核), decisions and transfers (案件移送, 行刑衔接).
Each step of a case is also a server record in the evidence log (schema_records.py)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, UniqueConstraint, text

from server.storage.columns import Int, Str, metadata

cases = Table(
    "cases", metadata,
    Column("case_id", Str, primary_key=True),  # CASE-<year>-<seq, 5 digits>
    Column("year", Int, nullable=False),
    Column("seq", Int, nullable=False),
    Column("agency_id", Str, nullable=False),  # the agency handling it now (changes when a transfer is accepted)
    Column("kind", Str, nullable=False),  # penalty | coercion | permit | other
    Column("field", Str, nullable=False),
    Column("title", Str, nullable=False),
    Column("credit_code", Str),  # the enterprise concerned, if any
    Column("inspection_id", Str),  # the ended inspection it was opened from, if any
    Column("state", Str, nullable=False),  # filed | investigating | review | decided | served | executed | closed | archived | transferring
    Column("opened_by", Str, nullable=False),
    Column("opened_ms", Int, nullable=False),
    Column("deadline", Str, nullable=False),  # ISO date: the case is to be decided by then
    Column("updated_ms", Int, nullable=False),
    UniqueConstraint("year", "seq"),
    Index("cases_by_agency", "agency_id", "opened_ms"),
    Index("cases_by_enterprise", "credit_code"),
)

case_officers = Table(
    "case_officers", metadata,
    Column("case_id", Str, primary_key=True),
    Column("officer_id", Str, primary_key=True),
    sqlite_with_rowid=False,
)

case_parties = Table(
    "case_parties", metadata,
    Column("case_id", Str, primary_key=True),
    Column("seq", Int, primary_key=True, autoincrement=False),
    Column("kind", Str, nullable=False),  # enterprise | individual
    Column("name", Str, nullable=False),
    Column("id_no", Str),  # an individual's ID number, or an enterprise's credit code
    sqlite_with_rowid=False,
)

case_inspections = Table(
    "case_inspections", metadata,
    Column("case_id", Str, primary_key=True),
    Column("inspection_id", Str, primary_key=True),
    Index("case_inspections_by_inspection", "inspection_id"),
    sqlite_with_rowid=False,
)

case_documents = Table(
    "case_documents", metadata,
    Column("case_id", Str, primary_key=True),
    Column("seq", Int, primary_key=True, autoincrement=False),
    Column("title", Str, nullable=False),
    Column("sha256", Str, nullable=False),
    Column("record_id", Str, nullable=False),  # the server record that added it to the evidence log
    Column("added_by", Str, nullable=False),
    Column("added_ms", Int, nullable=False),
    sqlite_with_rowid=False,
)

case_reviewers = Table(
    "case_reviewers", metadata,
    Column("officer_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("qualification_no", Str, nullable=False),  # 法制审核人员资格证号
    Column("granted_by", Str, nullable=False),
    Column("granted_ms", Int, nullable=False),
    Column("revoked_ms", Int),
    Index("case_reviewers_by_agency", "agency_id"),
)

case_reviews = Table(
    "case_reviews", metadata,
    Column("review_id", Str, primary_key=True),  # <case id>-R<n>
    Column("case_id", Str, nullable=False),
    Column("agency_id", Str, nullable=False),
    Column("proposal", Str, nullable=False),  # the handling officers' proposed decision, their opinion
    # The decision proposed (拟作出的决定) that the review is asked to review: a decision must match it (server/cases/decide.py).
    Column("kind", Str, nullable=False),  # the case's kind at submission
    Column("fine_yuan", Int, nullable=False),
    Column("measures", Str, nullable=False),  # JSON list
    Column("hearing", Int, nullable=False),
    Column("submitted_by", Str, nullable=False),
    Column("submitted_ms", Int, nullable=False),
    Column("deadline", Str, nullable=False),  # ISO date, in working days from submission
    Column("status", Str, nullable=False),  # pending | passed | returned | escalated
    Column("reviewer", Str),  # the reviewing officer's id
    Column("checklist", Str),  # JSON: item -> {"ok": bool, "note": str}
    Column("opinion", Str),
    Column("crime_suspected", Int, nullable=False, server_default=text("0")),
    Column("reviewed_ms", Int),
    Column("head_note", Str),  # the agency head's resolution of a disagreement
    Column("resolved_by", Str),
    Column("resolved_ms", Int),
    Index("case_reviews_by_case", "case_id"),
    Index("case_reviews_by_agency", "agency_id", "status"),
)

case_decisions = Table(
    "case_decisions", metadata,
    Column("decision_id", Str, primary_key=True),  # also decisions.decision_id (the disclosure deadline)
    Column("case_id", Str, nullable=False, unique=True),
    Column("agency_id", Str, nullable=False),
    Column("kind", Str, nullable=False),
    Column("summary", Str, nullable=False),
    Column("fine_yuan", Int, nullable=False),
    Column("measures", Str, nullable=False),  # JSON list
    Column("hearing", Int, nullable=False),
    Column("major_rules", Str, nullable=False),  # JSON list of the major-decision rules it matched
    Column("review_id", Str),
    Column("decided_by", Str, nullable=False),
    Column("decided_ms", Int, nullable=False),
    Column("decided_on", Str, nullable=False),
    Column("published_ms", Int),
    Index("case_decisions_by_agency", "agency_id", "decided_on"),
)

case_transfers = Table(
    "case_transfers", metadata,
    Column("transfer_id", Str, primary_key=True),  # <case id>-T<n>
    Column("case_id", Str, nullable=False),
    Column("kind", Str, nullable=False),  # transfer (案件移送) | referral (行刑衔接)
    Column("from_agency", Str, nullable=False),
    Column("to_agency", Str),  # transfer: the receiving agency
    Column("to_body", Str, nullable=False),  # the receiving body's name (a public security organ for a referral)
    Column("reason", Str, nullable=False),
    Column("prior_state", Str, nullable=False),
    Column("sent_by", Str, nullable=False),
    Column("sent_ms", Int, nullable=False),
    Column("status", Str, nullable=False),  # sent | accepted | returned | answered
    Column("answer", Str),
    Column("answered_by", Str),
    Column("answered_ms", Int),
    Index("case_transfers_by_case", "case_id"),
    Index("case_transfers_by_to", "to_agency", "status"),
)
