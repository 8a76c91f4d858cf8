"""Scheduled supervision jobs (runs, draws, conflicts, decisions to disclose, samples, retention) and the web
console's users (db.py migrations 4, 5, 7, 12)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Identity, Index, Table, UniqueConstraint, text

from server.storage.columns import Bytes, Float, Int, Str, metadata

job_runs = Table(
    "job_runs", metadata,
    Column("id", Int, Identity(start=1), primary_key=True),
    Column("job_id", Str, nullable=False),
    Column("started_ms", Int, nullable=False),
    Column("finished_ms", Int),
    Column("outcome", Str, nullable=False),
    Column("detail", Str, nullable=False, server_default=text("''")),
    # The scheduled time the run is for (revision 0002; NULL for runs recorded before it): one run per slot
    # across every scheduler of the cluster (docs/storage-seam.md §5.3).
    Column("slot_ms", Int),
    Index("job_runs_by_job", "job_id", "started_ms"),
    Index("job_runs_by_slot", "job_id", "slot_ms", unique=True),
)

#: APScheduler 3's SQLAlchemyJobStore table (its own column layout), in the server's database so that every
#: scheduler of a cluster sees the same jobs and next run times (revision 0002).
apscheduler_jobs = Table(
    "apscheduler_jobs", metadata,
    Column("id", Str, primary_key=True),
    Column("next_run_time", Float),
    Column("job_state", Bytes, nullable=False),
    Index("apscheduler_jobs_next_run_time", "next_run_time"),
)

draws = Table(
    "draws", metadata,
    Column("draw_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("field", Str, nullable=False),
    Column("region", Str, nullable=False, server_default=text("''")),
    Column("title", Str, nullable=False),
    Column("enterprise_count", Int, nullable=False),
    Column("officers_per_team", Int, nullable=False),
    Column("seed_hash", Str, nullable=False),
    Column("seed", Str),
    Column("committed_ms", Int, nullable=False),
    Column("draw_at_ms", Int, nullable=False),
    Column("drawn_ms", Int),
    Column("status", Str, nullable=False),
    Column("result_json", Str),
)

conflicts = Table(
    "conflicts", metadata,
    Column("officer_id", Str, primary_key=True),
    Column("credit_code", Str, primary_key=True),
    Column("reason", Str, nullable=False, server_default=text("''")),
    Column("declared_ms", Int, nullable=False),
    sqlite_with_rowid=False,
)

decisions = Table(
    "decisions", metadata,
    Column("decision_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("kind", Str, nullable=False),
    Column("case_no", Str, nullable=False, server_default=text("''")),
    Column("credit_code", Str),
    Column("decided_on", Str, nullable=False),
    Column("deadline", Str, nullable=False),
    Column("calendar_approximate", Int, nullable=False, server_default=text("0")),
    Column("disclosed_on", Str),
    Column("status", Str, nullable=False),
    Column("due_alerted", Int, nullable=False, server_default=text("0")),
    Index("decisions_by_agency", "agency_id", "decided_on"),
)

samples = Table(
    "samples", metadata,
    Column("sample_id", Str, primary_key=True),
    Column("agency_id", Str, nullable=False),
    Column("period", Str, nullable=False),
    Column("seed", Str, nullable=False),
    Column("drawn_ms", Int, nullable=False),
    Column("population", Int, nullable=False),
    UniqueConstraint("agency_id", "period"),
)

sample_items = Table(
    "sample_items", metadata,
    Column("sample_id", Str, ForeignKey("samples.sample_id"), primary_key=True),
    Column("decision_id", Str, primary_key=True),
    Column("result", Str),
    Column("reviewer", Str),
    Column("notes", Str),
    Column("reviewed_ms", Int),
    sqlite_with_rowid=False,
)

retention_removed = Table(
    "retention_removed", metadata,
    Column("event_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("seq", Int, nullable=False),
    Column("log_index", Int),
    Column("type", Str, nullable=False),
    Column("removed_ms", Int, nullable=False),
    Column("rule", Str, nullable=False),
)

users = Table(
    "users", metadata,
    Column("username", Str, primary_key=True),
    Column("role", Str, nullable=False),
    Column("agency_id", Str),
    Column("officer_id", Str),
    Column("credit_code", Str),
    Column("password_hash", Str, nullable=False),
    Column("created_ms", Int, nullable=False),
    Column("disabled_ms", Int),
)

sessions = Table(
    "sessions", metadata,
    Column("token_hash", Str, primary_key=True),
    Column("username", Str, ForeignKey("users.username"), nullable=False),
    Column("created_ms", Int, nullable=False),
    Column("expires_ms", Int, nullable=False),
)

sign_in_failures = Table(
    "sign_in_failures", metadata,
    Column("kind", Str, primary_key=True),
    Column("key", Str, primary_key=True),
    Column("failures", Int, nullable=False),
    Column("window_start_ms", Int, nullable=False),
    Column("last_failure_ms", Int, nullable=False),
    Column("locked_until_ms", Int, nullable=False, server_default=text("0")),
    CheckConstraint("kind IN ('account', 'address', 'pair')"),
    Index("sign_in_failures_by_last", "last_failure_ms"),
    sqlite_with_rowid=False,
)

account_changes = Table(
    "account_changes", metadata,
    Column("id", Int, Identity(start=1), primary_key=True),
    Column("username", Str, ForeignKey("users.username"), nullable=False),
    Column("action", Str, nullable=False),
    Column("by_username", Str, nullable=False),
    Column("at_ms", Int, nullable=False),
    Index("account_changes_by_user", "username", "id"),
)
