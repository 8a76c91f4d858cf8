"""Supervision: findings (监督事项) and the letters issued on them (监督意见书, 监督决定书); their history is in the
server's records (schema_records.py), one per step."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, UniqueConstraint

from server.storage.columns import Bytes, Int, Str, metadata

findings = Table(
    "findings", metadata,
    Column("finding_id", Str, primary_key=True),  # F-<year>-<seq, 4 digits>
    Column("year", Int, nullable=False),
    Column("seq", Int, nullable=False),
    Column("agency_id", Str, nullable=False),
    Column("credit_code", Str),
    Column("source", Str, nullable=False),  # alert | case_review | hotline | complaint | rating | manual
    Column("source_ref", Str),
    Column("reason", Str, nullable=False),
    Column("refs", Str, nullable=False),  # JSON list of the inspections, events and records concerned
    Column("opened_by", Str, nullable=False),
    Column("opened_ms", Int, nullable=False),
    Column("status", Str, nullable=False),  # open | closed
    Column("closed_by", Str),
    Column("closed_ms", Int),
    Column("close_note", Str),
    Column("officer_id", Str),  # the officer a complaint about conduct concerns (a finding about their agency)
    UniqueConstraint("year", "seq"),
    Index("findings_by_agency", "agency_id", "opened_ms"),
)

letters = Table(
    "letters", metadata,
    Column("letter_id", Str, primary_key=True),  # L-<kind letter>-<year>-<number>-<issuer hash>: unique, not shown
    Column("kind", Str, nullable=False),  # opinion (意见书) | decision (决定书)
    Column("issuer", Str, nullable=False),  # the issuing body's name
    Column("year", Int, nullable=False),
    Column("number", Int, nullable=False),  # 〔year〕第number号, per issuer, kind and year
    Column("finding_id", Str, nullable=False),
    Column("agency_id", Str, nullable=False),
    Column("facts", Str, nullable=False),
    Column("basis", Str, nullable=False),
    Column("requirements", Str, nullable=False),
    Column("deadline_days", Int, nullable=False),
    Column("issued_on", Str, nullable=False),  # ISO date
    Column("deadline", Str, nullable=False),  # ISO date: the last working day to answer
    Column("issued_by", Str, nullable=False),
    Column("issued_ms", Int, nullable=False),
    Column("status", Str, nullable=False),  # issued | replied | returned | accepted | overdue
    Column("reply", Str),
    Column("replied_by", Str),
    Column("replied_ms", Int),
    Column("verdict_note", Str),
    Column("decided_by", Str),
    Column("decided_ms", Int),
    UniqueConstraint("issuer", "kind", "year", "number"),
    Index("letters_by_agency", "agency_id", "issued_ms"),
    Index("letters_by_finding", "finding_id"),
    Index("letters_by_status", "status", "deadline"),
)

# Outside supervisors (行政执法监督员: lawyers, deputies, experts, journalists, enterprise staff) assigned to findings;
# they read those findings and their letters and add remarks (records), nothing more.
finding_monitors = Table(
    "finding_monitors", metadata,
    Column("finding_id", Str, primary_key=True),
    Column("username", Str, primary_key=True),
    Column("assigned_by", Str, nullable=False),
    Column("assigned_ms", Int, nullable=False),
    Index("finding_monitors_by_user", "username"),
)

# The files an agency attaches to a rectification report: kept whole (they are small documents and photos), their
# SHA-256 in the report's record in the evidence log.
letter_attachments = Table(
    "letter_attachments", metadata,
    Column("attachment_id", Str, primary_key=True),
    Column("letter_id", Str, nullable=False),
    Column("record_id", Str, nullable=False),  # the letter.replied record that names it
    Column("filename", Str, nullable=False),
    Column("content_type", Str, nullable=False),
    Column("size", Int, nullable=False),
    Column("sha256", Str, nullable=False),
    Column("data", Bytes, nullable=False),
    Column("uploaded_by", Str, nullable=False),
    Column("uploaded_ms", Int, nullable=False),
    Index("letter_attachments_by_letter", "letter_id", "uploaded_ms"),
)
