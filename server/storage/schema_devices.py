"""Devices, their events and rejected messages, clocks, and the evidence log (db.py migrations 1, 3, 9, 10)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Identity, Index, Table, UniqueConstraint, text

from server.storage.columns import Bytes, Int, Str, metadata

#: Rows numbered by the database (SQLite: the rowid alias; PostgreSQL: an identity that still accepts given values).
_AUTO = Identity(start=1)

devices = Table(
    "devices", metadata,
    Column("device_id", Str, primary_key=True),
    Column("model", Str, nullable=False),
    Column("kind", Str, nullable=False),
    Column("agency_id", Str, nullable=False),
    Column("public_key", Str, nullable=False),
    Column("wire_format", Str, nullable=False, server_default=text("'json'")),
    Column("registered_ms", Int, nullable=False),
    Column("revoked_ms", Int),
    Column("region", Str, nullable=False, server_default=text("''")),
)

events = Table(
    "events", metadata,
    Column("event_id", Str, primary_key=True),
    Column("device_id", Str, ForeignKey("devices.device_id"), nullable=False),
    Column("seq", Int, nullable=False),
    Column("type", Str, nullable=False),
    Column("device_time_ms", Int, nullable=False),
    Column("clock_error_ms", Int, nullable=False),
    Column("received_ms", Int, nullable=False),
    Column("stored_ms", Int, nullable=False),
    Column("wire_format", Str, nullable=False),
    Column("body", Bytes, nullable=False),
    Column("sig", Bytes, nullable=False),
    Column("body_json", Str, nullable=False),
    Column("prev_hash", Str),
    Column("body_sha256", Str),
    UniqueConstraint("device_id", "seq"),
    Index("events_by_type_time", "type", "device_time_ms"),
    Index("events_by_stored", "stored_ms"),
)

device_state = Table(
    "device_state", metadata,
    Column("device_id", Str, ForeignKey("devices.device_id"), primary_key=True),
    Column("last_seen_ms", Int),
    Column("max_seq", Int, nullable=False, server_default=text("0")),
    Column("stored_count", Int, nullable=False, server_default=text("0")),
    Column("duplicate_count", Int, nullable=False, server_default=text("0")),
    Column("online", Int, nullable=False, server_default=text("0")),
    Column("presence_ms", Int),
    Column("last_status_json", Str),
)

rejected = Table(
    "rejected", metadata,
    Column("id", Int, _AUTO, primary_key=True),
    Column("received_ms", Int, nullable=False),
    Column("topic", Str, nullable=False),
    Column("device_id", Str),
    Column("event_id", Str),
    Column("reason_code", Str, nullable=False),
    Column("reason", Str, nullable=False),
    Column("raw", Bytes, nullable=False),
    Column("size", Int),
    Column("sha256", Str),
    Index("rejected_by_time", "received_ms"),
    # LENGTH() of a BLOB / BYTEA is its byte count on both backends.
    Index("rejected_with_raw", "id", sqlite_where=text("LENGTH(raw) > 0"), postgresql_where=text("LENGTH(raw) > 0")),
)

rejected_counts = Table(
    "rejected_counts", metadata,
    Column("reason_code", Str, primary_key=True),
    Column("count", Int, nullable=False),
    Column("last_ms", Int, nullable=False),
)

# The log index is given by the appender (server/evidence/log.py), never numbered by the database.
evidence_log = Table(
    "evidence_log", metadata,
    Column("idx", Int, primary_key=True, autoincrement=False),
    Column("event_id", Str, nullable=False, unique=True),
    Column("leaf_hash", Bytes, nullable=False),
    Column("appended_ms", Int, nullable=False),
)

log_state = Table(
    "log_state", metadata,
    Column("id", Int, primary_key=True, autoincrement=False),
    Column("frontier", Bytes, nullable=False),
    Column("size", Int, nullable=False),
    CheckConstraint("id = 1"),
)

tree_heads = Table(
    "tree_heads", metadata,
    Column("tree_size", Int, primary_key=True, autoincrement=False),
    Column("timestamp_ms", Int, primary_key=True, autoincrement=False),
    Column("root_hash", Bytes, nullable=False),
    Column("signature", Bytes, nullable=False),
    Index("tree_heads_by_time", "timestamp_ms"),  # the head of a day, the latest (migration 0012)
)

media = Table(
    "media", metadata,
    Column("event_id", Str, primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("officer_id", Str),
    Column("inspection_id", Str),
    Column("case_no", Str),
    Column("file_name", Str, nullable=False),
    Column("media_kind", Str, nullable=False),
    Column("sha256", Str, nullable=False),
    Column("size_bytes", Int, nullable=False),
    Column("started_ms", Int),
    Column("ended_ms", Int),
    Column("integrity", Str, nullable=False, server_default=text("'ok'")),
    Column("integrity_ms", Int),
    Index("media_by_officer", "officer_id", "started_ms"),
    Index("media_by_device", "device_id", "started_ms"),
    Index("media_by_inspection", "inspection_id"),
)

clock_suspects = Table(
    "clock_suspects", metadata,
    Column("event_id", Str, ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", Str, nullable=False),
    Column("reason", Str, nullable=False),
    Column("detail", Str, nullable=False),
    Column("device_time_ms", Int, nullable=False),
    Column("received_ms", Int, nullable=False),
    Index("clock_suspects_by_device", "device_id", "received_ms"),
)

device_clocks = Table(
    "device_clocks", metadata,
    Column("device_id", Str, ForeignKey("devices.device_id"), primary_key=True),
    Column("registered_ms", Int, nullable=False),
    Column("offset_ms", Int),
    Column("alerted_ms", Int),
    Column("ok_since_ms", Int),
)
