"""Inspections and their parts, scans and decisions, the exception review queue, and alerts (db.py migrations 2,
6, 11)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Identity, Index, Table, text

from server.storage.columns import Float, Int, Str, metadata

#: The partial index of ended inspections not yet checked for full-process recording (same text on both backends).
_RECORDING_UNCHECKED = "recording_checked_ms IS NULL AND ended_ms IS NOT NULL"

inspections = Table(
    "inspections", metadata,
    Column("inspection_id", Str, primary_key=True),
    Column("credit_code", Str, nullable=False),
    Column("region", Str, nullable=False, server_default=text("''")),
    Column("lead_agency_id", Str, nullable=False),
    Column("field", Str, nullable=False),
    Column("status", Str, nullable=False),
    Column("opened_ms", Int, nullable=False),
    Column("ended_ms", Int),
    Column("exception_kind", Str),
    Column("exception_ref", Str),
    Column("recording_checked_ms", Int),
    Index("inspections_by_enterprise", "credit_code", "opened_ms"),
    Index("inspections_open", "status", "opened_ms"),
    Index(
        "inspections_recording_unchecked", "ended_ms",
        sqlite_where=text(_RECORDING_UNCHECKED), postgresql_where=text(_RECORDING_UNCHECKED),
    ),
)

inspection_parts = Table(
    "inspection_parts", metadata,
    Column("inspection_id", Str, ForeignKey("inspections.inspection_id"), primary_key=True),
    Column("officer_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("field", Str, nullable=False),
    Column("matter", Str, nullable=False, server_default=text("''")),
    Column("scan_id", Str),
    Column("device_id", Str),
    Column("joined_ms", Int, nullable=False),
    Column("ended_ms", Int),
    Column("result", Str),
    Column("summary", Str),
    Index("inspection_parts_by_officer", "officer_id", "joined_ms"),
    sqlite_with_rowid=False,
)

scans = Table(
    "scans", metadata,
    Column("scan_id", Str, primary_key=True),
    Column("channel", Str, nullable=False),
    Column("device_id", Str),
    Column("officer_id", Str, nullable=False),
    Column("agency_id", Str),
    Column("credit_code", Str),
    Column("code_text", Str, nullable=False),
    Column("field", Str),
    Column("matter", Str, nullable=False, server_default=text("''")),
    Column("reason", Str, nullable=False, server_default=text("''")),
    Column("exception_kind", Str),
    Column("exception_ref", Str),
    Column("lat", Float),
    Column("lon", Float),
    Column("scanned_ms", Int, nullable=False),
    Column("decided_ms", Int, nullable=False),
    Column("outcome", Str, nullable=False),
    Column("code", Str, nullable=False),
    Column("inspection_id", Str),
    Column("decision_json", Str, nullable=False),
    Index("scans_by_enterprise", "credit_code", "scanned_ms"),
    Index("scans_by_time", "decided_ms"),
)

provisional_decisions = Table(
    "provisional_decisions", metadata,
    Column("scan_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("outcome", Str, nullable=False),
    Column("code", Str, nullable=False),
    Column("snapshot_version", Int, nullable=False),
    Column("received_ms", Int, nullable=False),
    Column("compared_ms", Int),
    Column("overturned", Int),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Int, Identity(start=1), primary_key=True),
    Column("created_ms", Int, nullable=False),
    Column("kind", Str, nullable=False),
    Column("severity", Str, nullable=False),
    Column("credit_code", Str),
    Column("agency_id", Str),
    Column("device_id", Str),
    Column("officer_id", Str),
    Column("ref", Str),
    Column("message_zh", Str, nullable=False),
    Column("message_en", Str, nullable=False),
    Column("acknowledged_ms", Int),
    Index("alerts_by_time", "created_ms"),
)

exception_reviews = Table(
    "exception_reviews", metadata,
    Column("scan_id", Str, primary_key=True),
    Column("inspection_id", Str),
    Column("kind", Str, nullable=False),
    Column("reference", Str, nullable=False),
    Column("credit_code", Str, nullable=False),
    Column("officer_id", Str, nullable=False),
    Column("agency_id", Str),
    Column("problem", Str, nullable=False),
    Column("created_ms", Int, nullable=False),
    Column("status", Str, nullable=False),
    Column("reviewed_by", Str),
    Column("reviewed_ms", Int),
    Column("note", Str),
    Index("exception_reviews_by_status", "status", "created_ms"),
    Index("exception_reviews_by_inspection", "inspection_id"),
    Index("exception_reviews_by_officer", "officer_id", "status"),
)
