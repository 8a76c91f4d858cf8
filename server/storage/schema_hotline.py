"""12345 hotline tickets (issue 14 item 4): imported by ``fe-server import hotline FILE``, joined with the inspections
of the enterprise they name (server/supervision/hotline.py). Kept apart from ``complaints``, which are an exception
basis for a scan and always name an enterprise; a hotline ticket may name only an address."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, text

from server.storage.columns import Int, Str, metadata

hotline_tickets = Table(
    "hotline_tickets", metadata,
    Column("ticket_id", Str, primary_key=True),
    Column("received_ms", Int, nullable=False),
    Column("credit_code", Str),  # NULL: the ticket names an address only
    Column("address", Str, nullable=False, server_default=text("''")),
    Column("category", Str, nullable=False),
    Column("text", Str, nullable=False),
    Column("imported_ms", Int, nullable=False),
    Column("finding_id", Str),  # the finding opened from the ticket's flag, once
    Index("hotline_tickets_by_code", "credit_code", "received_ms"),
    Index("hotline_tickets_by_address", "address"),
)
