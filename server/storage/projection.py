"""Rows the projector writes from device events, besides scans and inspections (storage/inspections.py):
terminals' offline decisions, recordings and their integrity, device status.

Rows only: what an event means is server/ingest/projector.py's.
"""

from __future__ import annotations

import msgspec

from server.storage.engine import Tx, sql


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """A recording a device reported (MediaCaptured)."""

    event_id: str
    device_id: str
    officer_id: str | None
    inspection_id: str | None
    case_no: str | None
    file_name: str
    media_kind: str
    sha256: str
    size_bytes: int
    started_ms: int | None
    ended_ms: int | None


class Provisional(msgspec.Struct, frozen=True):
    """A terminal's offline decision not yet compared with the server's."""

    device_id: str
    outcome: str
    code: str


_INSERT_PROVISIONAL = sql("""
    INSERT INTO provisional_decisions(scan_id, device_id, outcome, code, snapshot_version, received_ms)
    VALUES (:scan_id, :device_id, :outcome, :code, :snapshot_version, :received_ms)
    ON CONFLICT (scan_id) DO NOTHING
""")
_UNCOMPARED = sql("SELECT device_id, outcome, code FROM provisional_decisions WHERE scan_id = :scan_id AND compared_ms IS NULL")
_COMPARED = sql("UPDATE provisional_decisions SET compared_ms = :now_ms, overturned = :overturned WHERE scan_id = :scan_id")
_INSERT_MEDIA = sql("""
    INSERT INTO media(event_id, device_id, officer_id, inspection_id, case_no, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms)
    VALUES (:event_id, :device_id, :officer_id, :inspection_id, :case_no, :file_name, :media_kind, :sha256, :size_bytes, :started_ms, :ended_ms)
    ON CONFLICT (event_id) DO NOTHING
""")
_MEDIA_INTEGRITY = sql("UPDATE media SET integrity = :problem, integrity_ms = :now_ms WHERE event_id = :event_id")
_DEVICE_STATUS = sql("UPDATE device_state SET last_status_json = :status_json WHERE device_id = :device_id")
_SCAN_WHO = sql("SELECT officer_id, credit_code FROM scans WHERE scan_id = :scan_id")


def lock_comparison(tx: Tx, scan_id: str) -> None:
    """Serialise, until this transaction ends, the two halves of comparing a terminal's offline decision with the
    server's (the scan and the offline decision may be projected at once by two ingest processes): whichever
    commits second then sees the other's row and compares. SQLite: its write transaction already does."""
    tx.lock("fe:provisional:" + scan_id)


def add_provisional(tx: Tx, *, scan_id: str, device_id: str, outcome: str, code: str, snapshot_version: int, received_ms: int) -> None:
    """Keep a terminal's offline decision (the first one reported for that scan)."""
    tx.run(_INSERT_PROVISIONAL, scan_id=scan_id, device_id=device_id, outcome=outcome, code=code, snapshot_version=snapshot_version, received_ms=received_ms)


def uncompared_provisional(tx: Tx, scan_id: str) -> Provisional | None:
    """The offline decision on a scan, if there is one not yet compared."""
    row = tx.one(_UNCOMPARED, scan_id=scan_id)
    return None if row is None else Provisional(*row)


def mark_compared(tx: Tx, scan_id: str, *, overturned: bool, now_ms: int) -> None:
    tx.run(_COMPARED, scan_id=scan_id, overturned=int(overturned), now_ms=now_ms)


def add_recording(tx: Tx, rec: Recording) -> None:
    """Keep a recording's report (the first one for that event)."""
    tx.run(_INSERT_MEDIA, msgspec.structs.asdict(rec))


def mark_integrity(tx: Tx, media_event_id: str, problem: str, now_ms: int) -> None:
    """A recording was modified or deleted after its hash was reported."""
    tx.run(_MEDIA_INTEGRITY, event_id=media_event_id, problem=problem, now_ms=now_ms)


def set_device_status(tx: Tx, device_id: str, status_json: str) -> None:
    tx.run(_DEVICE_STATUS, device_id=device_id, status_json=status_json)


def scan_who(tx: Tx, scan_id: str) -> tuple[str | None, str | None]:
    """(officer, credit code) of a recorded scan; (None, None) for an unknown one."""
    row = tx.one(_SCAN_WHO, scan_id=scan_id)
    return (None, None) if row is None else (row[0], row[1])
