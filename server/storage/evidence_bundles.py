"""What an evidence bundle (证据包) selects: the rows of an inspection, an enterprise's or a device's period, and the
stored events and server records they name, with their leaf columns. Rows only: what belongs in a bundle and who may
export it are server/evidence/bundle.py's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.storage.engine import Tx, sql
from server.storage.evidence import LEAF_COLUMNS
from server.storage.records import RECORD_COLUMNS
from server.storage.reports import MEDIA_COLUMNS

#: The device events that name an inspection (or a scan of it) in their body.
INSPECTION_TYPES = ("enterprise_scanned", "inspection_started", "inspection_joined", "inspection_ended", "provisional_decision", "media_captured", "media_integrity")

_INSPECTION = sql("""
    SELECT i.inspection_id, i.credit_code, coalesce(e.name, ''), i.lead_agency_id, i.field, i.status, i.opened_ms, i.ended_ms
    FROM inspections i LEFT JOIN enterprises e ON e.credit_code = i.credit_code WHERE i.inspection_id = :inspection_id
""")
_PARTS = sql("""
    SELECT officer_id, agency_id, field, device_id, scan_id, joined_ms, ended_ms, result FROM inspection_parts
    WHERE inspection_id = :inspection_id ORDER BY joined_ms, officer_id
""")
_SCANS = sql("SELECT scan_id, channel, device_id FROM scans WHERE inspection_id = :inspection_id ORDER BY scanned_ms, scan_id")
_CANDIDATES = sql(f"""
    SELECT {', '.join(LEAF_COLUMNS)}, body_json FROM events
    WHERE device_id IN (:devices) AND type IN (:types) AND device_time_ms >= :lo AND device_time_ms <= :hi
    ORDER BY device_id, seq
""")
_EVENTS = sql(f"SELECT {', '.join(LEAF_COLUMNS)}, body_json FROM events WHERE event_id IN (:ids) ORDER BY device_id, seq")
_RECORDS = sql(f"SELECT {', '.join(RECORD_COLUMNS)} FROM records WHERE subject IN (:subjects) ORDER BY at_ms, record_id")
_MEDIA = sql(f"SELECT {', '.join(MEDIA_COLUMNS)}, inspection_id, case_no FROM media WHERE event_id IN (:ids) ORDER BY started_ms, event_id")
_OF_ENTERPRISE = sql("""
    SELECT DISTINCT i.inspection_id, i.opened_ms FROM inspections i
    WHERE i.credit_code = :code AND i.opened_ms >= :lo AND i.opened_ms < :hi ORDER BY i.opened_ms, i.inspection_id
""")
_AGENCY_TOOK_PART = sql("SELECT DISTINCT inspection_id FROM inspection_parts WHERE inspection_id IN (:ids) AND agency_id = :agency")
_SCANS_OF_ENTERPRISE = sql("""
    SELECT scan_id, agency_id FROM scans WHERE credit_code = :code AND channel = 'terminal' AND scanned_ms >= :lo AND scanned_ms < :hi
    ORDER BY scanned_ms, scan_id
""")
_COUNT_OF_DEVICE = sql("SELECT count(*) FROM events WHERE device_id = :device AND device_time_ms >= :lo AND device_time_ms < :hi")
_OF_DEVICE = sql(f"""
    SELECT {', '.join(LEAF_COLUMNS)}, body_json FROM events WHERE device_id = :device AND device_time_ms >= :lo AND device_time_ms < :hi
    ORDER BY seq LIMIT :limit
""")
_DEVICE = sql("SELECT device_id, agency_id, model, kind FROM devices WHERE device_id = :device")
_DEVICE_KEYS = sql("SELECT device_id, public_key FROM devices WHERE device_id IN (:ids) ORDER BY device_id")
_ENTERPRISE = sql("SELECT name FROM enterprises WHERE credit_code = :code")
_OFFICER_NAMES = sql("SELECT officer_id, name FROM officers WHERE officer_id IN (:ids)")
_AGENCY_NAMES = sql("SELECT agency_id, name, name_en FROM agencies WHERE agency_id IN (:ids)")
_FIELD_NAMES = sql("SELECT field_id, name, name_en FROM fields WHERE field_id IN (:ids)")


def inspection(tx: Tx, inspection_id: str) -> tuple[Any, ...] | None:
    """(inspection_id, credit_code, enterprise name, lead agency, field, status, opened_ms, ended_ms)."""
    return tx.one(_INSPECTION, inspection_id=inspection_id)


def parts(tx: Tx, inspection_id: str) -> list[tuple[Any, ...]]:
    """(officer_id, agency_id, field, device_id, scan_id, joined_ms, ended_ms, result) of each part."""
    return list(tx.all(_PARTS, inspection_id=inspection_id))


def scans(tx: Tx, inspection_id: str) -> list[tuple[str, str, str | None]]:
    """(scan_id, channel, device_id) of the scans that opened or joined the inspection."""
    return [(s, c, d) for s, c, d in tx.all(_SCANS, inspection_id=inspection_id)]


def candidate_events(tx: Tx, devices: Sequence[str], lo_ms: int, hi_ms: int) -> list[tuple[Any, ...]]:
    """Events of the inspection's kinds (INSPECTION_TYPES) from these devices, stamped within [lo_ms, hi_ms]:
    LEAF_COLUMNS values then body_json."""
    if not devices:
        return []
    return list(tx.all(_CANDIDATES, devices=sorted(set(devices)), types=list(INSPECTION_TYPES), lo=lo_ms, hi=hi_ms))


def events(tx: Tx, event_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The stored events of these ids: LEAF_COLUMNS values then body_json."""
    return list(tx.all(_EVENTS, ids=sorted(set(event_ids)))) if event_ids else []


def records_of_subjects(tx: Tx, subjects: Sequence[str]) -> list[tuple[str, str, str, int, bytes]]:
    """The server records of these subjects (RECORD_COLUMNS)."""
    if not subjects:
        return []
    return [(r, k, s, int(t), bytes(b)) for r, k, s, t, b in tx.all(_RECORDS, subjects=sorted(set(subjects)))]


def media(tx: Tx, event_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """Media rows (MEDIA_COLUMNS, then inspection_id and case_no) of these media_captured events."""
    return list(tx.all(_MEDIA, ids=sorted(set(event_ids)))) if event_ids else []


def inspections_of_enterprise(tx: Tx, credit_code: str, lo_ms: int, hi_ms: int, agency_id: str | None = None) -> list[str]:
    """The inspections of an enterprise opened in [lo_ms, hi_ms), only those ``agency_id`` took part in when given."""
    ids = [i for i, _ in tx.all(_OF_ENTERPRISE, code=credit_code, lo=lo_ms, hi=hi_ms)]
    if agency_id is None or not ids:
        return ids
    own = {i for (i,) in tx.all(_AGENCY_TOOK_PART, ids=ids, agency=agency_id)}
    return [i for i in ids if i in own]


def terminal_scans_of_enterprise(tx: Tx, credit_code: str, lo_ms: int, hi_ms: int, agency_id: str | None = None) -> list[str]:
    """Event ids of the terminal scans of an enterprise in [lo_ms, hi_ms) (an agency's own when given), whatever
    their outcome: a refused attempt at a no-disturb enterprise is evidence too."""
    return [s for s, a in tx.all(_SCANS_OF_ENTERPRISE, code=credit_code, lo=lo_ms, hi=hi_ms) if agency_id is None or a == agency_id]


def count_of_device(tx: Tx, device_id: str, lo_ms: int, hi_ms: int) -> int:
    """How many events of the device are stamped in [lo_ms, hi_ms)."""
    return int(tx.scalar(_COUNT_OF_DEVICE, device=device_id, lo=lo_ms, hi=hi_ms))


def events_of_device(tx: Tx, device_id: str, lo_ms: int, hi_ms: int, limit: int) -> list[tuple[Any, ...]]:
    """The device's events stamped in [lo_ms, hi_ms), in seq order, at most ``limit``."""
    return list(tx.all(_OF_DEVICE, device=device_id, lo=lo_ms, hi=hi_ms, limit=limit))


def device(tx: Tx, device_id: str) -> tuple[str, str, str, str] | None:
    """(device_id, agency_id, model, kind) of a registered device."""
    row = tx.one(_DEVICE, device=device_id)
    return None if row is None else (row[0], row[1], row[2], row[3])


def device_keys(tx: Tx, device_ids: Sequence[str]) -> dict[str, str]:
    """device_id -> public key (hex) of these devices."""
    return {d: k for d, k in tx.all(_DEVICE_KEYS, ids=sorted(set(device_ids)))} if device_ids else {}


def enterprise_name(tx: Tx, credit_code: str) -> str | None:
    """A registered enterprise's name."""
    row = tx.one(_ENTERPRISE, code=credit_code)
    return None if row is None else str(row[0])


def names(tx: Tx, officers: Sequence[str], agencies: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """(Chinese, English) names of these officers (a person's name is the same in both), agencies and fields."""
    out: dict[str, dict[str, tuple[str, str]]] = {"officer": {}, "agency": {}, "field": {}}
    if officers:
        out["officer"] = {o: (n, n) for o, n in tx.all(_OFFICER_NAMES, ids=sorted(set(officers)))}
    if agencies:
        out["agency"] = {a: (n, e) for a, n, e in tx.all(_AGENCY_NAMES, ids=sorted(set(agencies)))}
    if fields:
        out["field"] = {f: (n, e) for f, n, e in tx.all(_FIELD_NAMES, ids=sorted(set(fields)))}
    return out
