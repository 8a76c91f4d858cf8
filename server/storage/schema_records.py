"""Server records: what the server itself decided or was told (a finding opened, a letter issued, a reply accepted),
each appended to the evidence log like a device's event (server/evidence/records.py; protocol/README.md §15.7)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table

from server.storage.columns import Bytes, Int, Str, metadata

# ``body`` is the record's content as canonical JSON (UTF-8), kept as the exact bytes its leaf commits to.
records = Table(
    "records", metadata,
    Column("record_id", Str, primary_key=True),
    Column("kind", Str, nullable=False),
    Column("subject", Str, nullable=False),
    Column("at_ms", Int, nullable=False),
    Column("body", Bytes, nullable=False),
    Index("records_by_subject", "subject", "at_ms"),
)
