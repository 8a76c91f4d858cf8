"""Rows of the 12345 hotline: the import's checks and write over its staging table (server/imports/kinds.py Hotline),
and the join of tickets with the inspections of the enterprise they name (server/supervision/hotline.py says what
the rows mean: which ticket is flagged, and why)."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql
from server.storage.registers import STAGING

STAGED = ("ticket_id", "received_ms", "credit_code", "address", "category", "text")

_UNKNOWN_CODES = sql(f"""
    SELECT s.line, s.credit_code FROM {STAGING} AS s LEFT JOIN enterprises AS e ON e.credit_code = s.credit_code
    WHERE s.credit_code IS NOT NULL AND e.credit_code IS NULL ORDER BY s.line
""")
_COUNT_STORED = sql(f"SELECT count(*) FROM {STAGING} AS s JOIN hotline_tickets AS t ON t.ticket_id = s.ticket_id")
# SQLite needs a WHERE before ON CONFLICT in an INSERT ... SELECT (its parser would read ON as a join's).
_INSERT = f"""
    INSERT INTO hotline_tickets(ticket_id, received_ms, credit_code, address, category, text, imported_ms)
    SELECT ticket_id, received_ms, credit_code, address, category, text, :now_ms FROM {STAGING} WHERE true ORDER BY ticket_id
"""
_WRITE_NEW = sql(_INSERT + " ON CONFLICT DO NOTHING")
_WRITE_REPLACE = sql(
    _INSERT + " ON CONFLICT (ticket_id) DO UPDATE SET received_ms = excluded.received_ms, credit_code = excluded.credit_code,"
    " address = excluded.address, category = excluded.category, text = excluded.text"
)

#: One row per (ticket, inspection concerned), a ticket without any once: the ticket, the enterprise it names (by its
#: credit code, or by an address that exactly one enterprise has), the agency in charge of its category (the one
#: agency whose fields include it), and the enterprise's inspections opened from ``before_ms`` before the ticket to
#: ``after_ms`` after it.
TICKET_COLUMNS = (
    "ticket_id", "received_ms", "ticket_code", "address", "category", "text", "finding_id", "credit_code",
    "enterprise_name", "category_agency",
)  # fmt: skip
_JOIN = sql("""
    SELECT t.ticket_id, t.received_ms, t.credit_code, t.address, t.category, t.text, t.finding_id, e.credit_code, e.name,
           (SELECT CASE WHEN count(*) = 1 THEN min(a.agency_id) END FROM agencies AS a
            WHERE a.fields LIKE '%"' || t.category || '"%') AS category_agency,
           i.inspection_id, i.lead_agency_id, i.opened_ms, i.ended_ms
    FROM hotline_tickets AS t
    LEFT JOIN (SELECT address, min(credit_code) AS credit_code FROM enterprises WHERE address <> ''
               GROUP BY address HAVING count(*) = 1) AS u ON t.credit_code IS NULL AND u.address = t.address
    LEFT JOIN enterprises AS e ON e.credit_code = coalesce(t.credit_code, u.credit_code)
    LEFT JOIN inspections AS i ON i.credit_code = e.credit_code
         AND i.opened_ms >= t.received_ms - :before_ms AND i.opened_ms <= t.received_ms + :after_ms
    WHERE (CAST(:ticket_id AS TEXT) IS NULL OR t.ticket_id = :ticket_id)
    ORDER BY t.received_ms, t.ticket_id, i.opened_ms, i.inspection_id
""")
_TICKET_LOCKED = sql("SELECT finding_id FROM hotline_tickets WHERE ticket_id = :ticket_id")
_SET_FINDING = sql("UPDATE hotline_tickets SET finding_id = :finding_id WHERE ticket_id = :ticket_id AND finding_id IS NULL")


def unknown_codes(tx: Tx) -> list[tuple[int, str]]:
    """(line, credit code) of staged tickets naming an enterprise that is not registered."""
    return [(int(line), c) for line, c in tx.all(_UNKNOWN_CODES)]


def count_stored(tx: Tx) -> int:
    """How many staged tickets are already stored."""
    return int(tx.scalar(_COUNT_STORED))


def write_staged(tx: Tx, now_ms: int, *, replace: bool) -> int:
    """Store the staged tickets; a ticket already stored is left as it is (an import replayed), or updated with
    ``replace`` (its finding, if any, is kept). Returns how many rows were inserted or updated."""
    return int(tx.run(_WRITE_REPLACE if replace else _WRITE_NEW, now_ms=now_ms).rowcount)


def joined(tx: Tx, *, before_ms: int, after_ms: int, ticket_id: str | None = None) -> list[tuple[Any, ...]]:
    """The tickets (or one) joined with their enterprise and its inspections around them: TICKET_COLUMNS, then the
    inspection's (inspection_id, lead_agency_id, opened_ms, ended_ms), NULL where none; by time, then ticket."""
    return tx.all(_JOIN, before_ms=before_ms, after_ms=after_ms, ticket_id=ticket_id)


def ticket_finding(tx: Tx, ticket_id: str) -> tuple[bool, str | None]:
    """(the ticket exists, the finding opened from it)."""
    row = tx.one(_TICKET_LOCKED, ticket_id=ticket_id)
    return (False, None) if row is None else (True, row[0])


def set_finding(tx: Tx, ticket_id: str, finding_id: str) -> bool:
    """Remember the finding opened from a ticket; False if one already was."""
    return int(tx.run(_SET_FINDING, ticket_id=ticket_id, finding_id=finding_id).rowcount) == 1
