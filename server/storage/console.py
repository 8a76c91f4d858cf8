"""What the console's JSON API and pages read that no rule module owns: device and event listings, the overview's
totals, an enterprise's visit history, an officer's fields."""

from __future__ import annotations

from typing import Any

from server.storage.engine import Tx, sql

DEVICE_COLUMNS = (
    "device_id", "model", "kind", "agency_id", "wire_format", "registered_ms", "revoked", "last_seen_ms", "max_seq",
    "stored_count", "duplicate_count",
)  # fmt: skip
_DEVICES = """
    SELECT d.device_id, d.model, d.kind, d.agency_id, d.wire_format, d.registered_ms,
           CASE WHEN d.revoked_ms IS NULL THEN 0 ELSE 1 END, s.last_seen_ms, coalesce(s.max_seq, 0),
           coalesce(s.stored_count, 0), coalesce(s.duplicate_count, 0)
    FROM devices d LEFT JOIN device_state s ON s.device_id = d.device_id
"""
ALL_DEVICES = sql(_DEVICES + " ORDER BY d.device_id")
ONE_DEVICE = sql(_DEVICES + " WHERE d.device_id = :device_id")

DEVICE_LIST_COLUMNS = ("device_id", "model", "agency_id", "stored", "max_seq", "last_seen_ms", "revoked_ms")
DEVICE_LIST = sql("""
    SELECT d.device_id, d.model, d.agency_id, coalesce(s.stored_count, 0), coalesce(s.max_seq, 0), s.last_seen_ms, d.revoked_ms
    FROM devices d LEFT JOIN device_state s ON s.device_id = d.device_id ORDER BY d.device_id
""")

EVENT_COLUMNS = (
    "event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms", "clock_suspect",
    "body_json",
)  # fmt: skip
_EVENTS = """
    SELECT e.event_id, e.device_id, e.seq, e.type, e.device_time_ms, e.clock_error_ms, e.received_ms, e.stored_ms,
           (SELECT c.reason FROM clock_suspects c WHERE c.event_id = e.event_id), e.body_json
    FROM events e
"""
DEVICE_EVENTS = sql(_EVENTS + " WHERE e.device_id = :device_id ORDER BY e.seq DESC LIMIT :limit")
RECENT_EVENTS = sql(_EVENTS + " ORDER BY e.stored_ms DESC, e.event_id LIMIT :limit")

EVENTS_STORED = sql("SELECT CAST(coalesce(sum(stored_count), 0) AS BIGINT) FROM device_state")
DEVICE_COUNT = sql("SELECT count(*) FROM devices")
EVENTS_SINCE = sql("SELECT count(*) FROM events WHERE stored_ms >= :since_ms")
# Sequence numbers start at 1 and are unique per device, so fewer stored than the highest means a gap.
DEVICES_WITH_GAPS = sql("SELECT count(*) FROM device_state WHERE stored_count < max_seq")

OFFICER_FIELDS = sql("SELECT fields FROM officers WHERE officer_id = :officer_id")
FIELD_NAMES = sql("SELECT field_id, name FROM fields ORDER BY field_id")
ENTERPRISE_NAME = sql("SELECT name FROM enterprises WHERE credit_code = :credit_code")
VISITS = sql("""
    SELECT i.inspection_id, i.opened_ms, p.agency_id, a.name, a.name_en, p.field, f.name, f.name_en, p.result
    FROM inspections i
    JOIN inspection_parts p ON p.inspection_id = i.inspection_id
    LEFT JOIN agencies a ON a.agency_id = p.agency_id
    LEFT JOIN fields f ON f.field_id = p.field
    WHERE i.inspection_id IN (
        SELECT inspection_id FROM inspections WHERE credit_code = :credit_code ORDER BY opened_ms DESC, inspection_id LIMIT :limit
    )
    ORDER BY i.opened_ms DESC, i.inspection_id, p.joined_ms, p.officer_id
""")


def devices(tx: Tx) -> list[tuple[Any, ...]]:
    """Every registered device with its delivery state, in DEVICE_COLUMNS order, by device id."""
    return tx.all(ALL_DEVICES)


def device_list(tx: Tx) -> list[tuple[Any, ...]]:
    """Every registered device for the command line, in DEVICE_LIST_COLUMNS order, by device id."""
    return tx.all(DEVICE_LIST)


def device(tx: Tx, device_id: str) -> tuple[Any, ...] | None:
    return tx.one(ONE_DEVICE, device_id=device_id)


def events(tx: Tx, *, device_id: str | None, limit: int) -> list[tuple[Any, ...]]:
    """The latest events in EVENT_COLUMNS order: one device's by sequence, or everyone's by time stored."""
    if device_id:
        return tx.all(DEVICE_EVENTS, device_id=device_id, limit=limit)
    return tx.all(RECENT_EVENTS, limit=limit)


def events_stored(tx: Tx) -> int:
    return int(tx.scalar(EVENTS_STORED))


def totals(tx: Tx, *, since_ms: int) -> tuple[int, int, int, int]:
    """(devices, events stored, events stored since ``since_ms``, devices with sequence gaps)."""
    return (
        int(tx.scalar(DEVICE_COUNT)), events_stored(tx), int(tx.scalar(EVENTS_SINCE, since_ms=since_ms)),
        int(tx.scalar(DEVICES_WITH_GAPS)),
    )  # fmt: skip


def officer_fields(tx: Tx, officer_id: str | None) -> str | None:
    """The officer's fields as stored (JSON text), or None."""
    return tx.scalar(OFFICER_FIELDS, officer_id=officer_id)


def field_names(tx: Tx) -> dict[str, str]:
    return dict(tx.all(FIELD_NAMES))


def enterprise_name(tx: Tx, credit_code: str) -> str | None:
    return tx.scalar(ENTERPRISE_NAME, credit_code=credit_code)


def visits(tx: Tx, credit_code: str, limit: int) -> list[tuple[Any, ...]]:
    """The parts of the enterprise's latest ``limit`` inspections, newest first: (inspection id, opened, agency id,
    agency zh, agency en, field id, field zh, field en, result)."""
    return tx.all(VISITS, credit_code=credit_code, limit=limit)


# --- names and the dashboard's figures (issue 16) ----------------------------------------------------------------------

NAMES = sql("""
    SELECT 'agency', agency_id, name, name_en FROM agencies
    UNION ALL SELECT 'field', field_id, name, name_en FROM fields
""")
#: The agency ``:agency_id`` (NULL: any) and the field ``:field`` (NULL: any) of a part ``p``.
_PART_FILTER = "(CAST(:agency_id AS TEXT) IS NULL OR p.agency_id = :agency_id) AND (CAST(:field AS TEXT) IS NULL OR p.field = :field)"
BY_ENTERPRISE = sql(f"""
    SELECT i.credit_code, coalesce(e.name, i.credit_code), count(DISTINCT p.inspection_id)
    FROM inspection_parts p JOIN inspections i ON i.inspection_id = p.inspection_id
    LEFT JOIN enterprises e ON e.credit_code = i.credit_code
    WHERE p.joined_ms >= :from_ms AND p.joined_ms < :to_ms AND {_PART_FILTER}
    GROUP BY i.credit_code, e.name ORDER BY count(DISTINCT p.inspection_id) DESC, i.credit_code LIMIT :limit
""")
BY_DIVISION = sql(f"""
    SELECT coalesce(e.region, ''), count(DISTINCT p.inspection_id), count(DISTINCT i.credit_code)
    FROM inspection_parts p JOIN inspections i ON i.inspection_id = p.inspection_id
    LEFT JOIN enterprises e ON e.credit_code = i.credit_code
    WHERE p.joined_ms >= :from_ms AND p.joined_ms < :to_ms AND {_PART_FILTER}
    GROUP BY coalesce(e.region, '') ORDER BY count(DISTINCT p.inspection_id) DESC, coalesce(e.region, '')
""")
INSPECTION_RECORD = sql("""
    SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, i.field, i.status, i.opened_ms, i.ended_ms
    FROM inspections i LEFT JOIN enterprises e ON e.credit_code = i.credit_code WHERE i.inspection_id = :inspection_id
""")
INSPECTION_OF_SCAN = sql("SELECT inspection_id FROM scans WHERE scan_id = :scan_id")
INSPECTION_PARTS = sql("""
    SELECT p.officer_id, coalesce(o.name, p.officer_id), p.agency_id, p.field, p.result
    FROM inspection_parts p LEFT JOIN officers o ON o.officer_id = p.officer_id
    WHERE p.inspection_id = :inspection_id ORDER BY p.joined_ms, p.officer_id
""")
OFFICER_NAME = sql("SELECT name FROM officers WHERE officer_id = :officer_id")
DEVICE_KIND = sql("SELECT kind FROM devices WHERE device_id = :device_id")


def agency_and_field_names(tx: Tx) -> list[tuple[str, str, str, str]]:
    """("agency" or "field", id, Chinese name, English name) of every agency and field in the registers."""
    return [(r[0], r[1], r[2], r[3] or "") for r in tx.all(NAMES)]


def by_enterprise(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None, field: str | None, limit: int) -> list[tuple[str, str, int]]:
    """(credit code, enterprise name, inspections) of the parts joined in the period by the agency in the field, most first."""
    rows = tx.all(BY_ENTERPRISE, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id, field=field, limit=limit)
    return [(r[0], r[1], int(r[2])) for r in rows]


def by_division(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> list[tuple[str, int, int]]:
    """(the enterprises' administrative division code, inspections, enterprises) of the parts joined in the period."""
    rows = tx.all(BY_DIVISION, from_ms=from_ms, to_ms=to_ms, agency_id=agency_id, field=None)
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def inspection_record(tx: Tx, inspection_id: str) -> tuple[Any, ...] | None:
    """(inspection id, credit code, enterprise name, lead agency, field, status, opened_ms, ended_ms), or None."""
    return tx.one(INSPECTION_RECORD, inspection_id=inspection_id)


def inspection_of_scan(tx: Tx, scan_id: str) -> str | None:
    return tx.scalar(INSPECTION_OF_SCAN, scan_id=scan_id)


def inspection_parts(tx: Tx, inspection_id: str) -> list[tuple[Any, ...]]:
    """(officer id, officer name, agency id, field, result) of each part, in joining order."""
    return tx.all(INSPECTION_PARTS, inspection_id=inspection_id)


def officer_name(tx: Tx, officer_id: str) -> str | None:
    return tx.scalar(OFFICER_NAME, officer_id=officer_id)


def device_kind(tx: Tx, device_id: str) -> str | None:
    return tx.scalar(DEVICE_KIND, device_id=device_id)
