"""The one description of the schema for SQLite and PostgreSQL: every table of server/storage/legacy_schema.py MIGRATIONS 1..12 as
SQLAlchemy Core, grouped by domain in the schema_* modules; this module gathers them under one ``metadata``.

tests/server/test_storage_schema.py checks that the Alembic history (migrations/) builds on SQLite exactly what
db.migrate() builds, and that it agrees with this metadata on both backends."""

from __future__ import annotations

from server.storage.columns import NAMING_CONVENTION, Bytes, Float, Int, Str, metadata
from server.storage.schema_devices import (
    clock_suspects, device_clocks, device_state, devices, events, evidence_log, log_state, media, rejected,
    rejected_counts, tree_heads,
)
from server.storage.schema_inspections import (
    alerts, exception_reviews, inspection_parts, inspections, provisional_decisions, scans,
)
from server.storage.schema_jobs import (
    account_changes, conflicts, decisions, draws, job_runs, retention_removed, sample_items, samples, sessions,
    sign_in_failures, users,
)
from server.storage.schema_hotline import hotline_tickets
from server.storage.schema_ratings import ratings
from server.storage.schema_records import records
from server.storage import schema_badges, schema_cases, schema_console  # noqa: F401 - their tables join ``metadata``
from server.storage.schema_supervision import finding_monitors, findings, letter_attachments, letters
from server.storage.schema_registers import (
    agencies, code_keys, complaints, enterprises, exception_bases, fields, issued_codes, no_disturb, officers,
    plan_targets, plans,
)

__all__ = [
    "NAMING_CONVENTION", "Bytes", "Float", "Int", "Str", "metadata", "account_changes", "agencies", "alerts",
    "clock_suspects", "code_keys", "complaints", "conflicts", "decisions", "device_clocks", "device_state", "devices",
    "draws", "enterprises", "events", "evidence_log", "exception_bases", "exception_reviews", "fields", "finding_monitors", "findings",
    "hotline_tickets",
    "inspection_parts", "inspections", "issued_codes", "job_runs", "letter_attachments", "letters", "log_state", "media", "no_disturb", "officers",
    "plan_targets", "plans", "provisional_decisions", "ratings", "records", "rejected", "rejected_counts", "retention_removed",
    "sample_items", "samples", "scans", "sessions", "sign_in_failures", "tree_heads", "users",
]
