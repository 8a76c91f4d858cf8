"""Registers (fields, agencies, enterprises, officers, plans, complaints, exception bases) and enterprise codes
(db.py migrations 2, 6, 8)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Identity, Index, Table, text

from server.storage.columns import Int, Str, metadata

fields = Table(
    "fields", metadata,
    Column("field_id", Str, primary_key=True),
    Column("name", Str, nullable=False),
    Column("name_en", Str, nullable=False, server_default=text("''")),
)

agencies = Table(
    "agencies", metadata,
    Column("agency_id", Str, primary_key=True),
    Column("name", Str, nullable=False),
    Column("name_en", Str, nullable=False, server_default=text("''")),
    Column("region", Str, nullable=False, server_default=text("''")),
    Column("fields", Str, nullable=False, server_default=text("'[]'")),
)

enterprises = Table(
    "enterprises", metadata,
    Column("credit_code", Str, primary_key=True),
    Column("name", Str, nullable=False),
    Column("address", Str, nullable=False, server_default=text("''")),
    Column("region", Str, nullable=False, server_default=text("''")),
    Column("risk", Str, nullable=False, server_default=text("'medium'")),
    Column("credit", Str, nullable=False, server_default=text("'B'")),
    Index("enterprises_by_region", "region"),
    sqlite_with_rowid=False,
)

officers = Table(
    "officers", metadata,
    Column("officer_id", Str, primary_key=True),
    Column("name", Str, nullable=False),
    Column("agency_id", Str, nullable=False),
    Column("credential_no", Str, nullable=False, unique=True),
    Column("fields", Str, nullable=False, server_default=text("'[]'")),
    Column("valid_from_ms", Int, nullable=False),
    Column("valid_to_ms", Int, nullable=False),
    Column("revoked_ms", Int),
    Index("officers_by_agency", "agency_id"),
)

no_disturb = Table(
    "no_disturb", metadata,
    Column("id", Int, Identity(start=1), primary_key=True),
    Column("credit_code", Str, nullable=False),
    Column("basis", Str, nullable=False),
    Column("valid_from_ms", Int, nullable=False),
    Column("valid_to_ms", Int),
    Column("added_by", Str, nullable=False),
    Column("added_ms", Int, nullable=False),
    Column("removed_ms", Int),
    Index("no_disturb_by_code", "credit_code"),
)

plans = Table(
    "plans", metadata,
    Column("plan_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("field", Str, nullable=False),
    Column("kind", Str, nullable=False, server_default=text("'random_draw'")),
    Column("title", Str, nullable=False),
    Column("valid_from_ms", Int, nullable=False),
    Column("valid_to_ms", Int, nullable=False),
    Column("created_ms", Int, nullable=False),
)

plan_targets = Table(
    "plan_targets", metadata,
    Column("plan_id", Str, ForeignKey("plans.plan_id"), primary_key=True),
    Column("credit_code", Str, primary_key=True),
    Index("plan_targets_by_code", "credit_code"),
    sqlite_with_rowid=False,
)

complaints = Table(
    "complaints", metadata,
    Column("ticket_no", Str, primary_key=True),
    Column("credit_code", Str, nullable=False),
    Column("field", Str),
    Column("summary", Str, nullable=False, server_default=text("''")),
    Column("received_ms", Int, nullable=False),
    Column("closed_ms", Int),
    Index("complaints_by_code", "credit_code"),
)

code_keys = Table(
    "code_keys", metadata,
    Column("key_id", Str, primary_key=True),
    Column("public_key", Str, nullable=False),
    Column("created_ms", Int, nullable=False),
    Column("retired_ms", Int),
)

issued_codes = Table(
    "issued_codes", metadata,
    Column("credit_code", Str, primary_key=True),
    Column("issued", Str, primary_key=True),
    Column("key_id", Str, nullable=False),
    Column("text", Str, nullable=False),
    Column("issued_ms", Int, nullable=False),
    Column("revoked_ms", Int),
    Column("revoked_reason", Str),
    Column("revoked_by", Str),
    Column("revoked_role", Str),
    Column("revoked_agency_id", Str),
)

exception_bases = Table(
    "exception_bases", metadata,
    Column("kind", Str, primary_key=True),
    Column("reference", Str, primary_key=True),
    Column("credit_code", Str, primary_key=True),
    Column("agency_id", Str),
    Column("field", Str),
    Column("issued_by", Str, nullable=False),
    Column("summary", Str, nullable=False, server_default=text("''")),
    Column("valid_from_ms", Int, nullable=False),
    Column("valid_to_ms", Int, nullable=False),
    Column("created_by", Str, nullable=False),
    Column("created_ms", Int, nullable=False),
    Column("withdrawn_ms", Int),
    Column("withdrawn_by", Str),
    Index("exception_bases_by_code", "credit_code"),
)
