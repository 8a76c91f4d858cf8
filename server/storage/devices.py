"""The ingest's rows: events, device state, sequence gaps, rejected messages and their totals, device clocks.

Rows only: what is valid, what a conflict is and when a clock is suspect are server/ingest/store.py's and
server/ingest/clocks.py's. Rows are written in one order by every ingest process (events by device and sequence
number, device state by device, reason totals by reason; docs/storage-seam.md §4.3), so two writers holding
the same devices wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from server.storage.engine import Backend, Tx, sql


# --- the register, as the ingest reads it ---------------------------------------------------------------------

_REGISTRATIONS = sql("SELECT device_id, public_key, revoked_ms FROM devices WHERE device_id IN (:ids) ORDER BY device_id")
_FORMAT_AND_KIND = sql("SELECT wire_format, kind FROM devices WHERE device_id = :device_id")


def registrations(tx: Tx, device_ids: Collection[str]) -> list[tuple[str, str, int | None]]:
    """(device_id, public key hex, revoked_ms) of those of these devices that are registered, in one query."""
    if not device_ids:
        return []
    return [(d, k, r) for d, k, r in tx.all(_REGISTRATIONS, ids=sorted(device_ids))]


def format_and_kind(tx: Tx, device_id: str) -> tuple[str, str] | None:
    """A registered device's wire format and kind."""
    row = tx.one(_FORMAT_AND_KIND, device_id=device_id)
    return None if row is None else (row[0], row[1])


# --- events ---------------------------------------------------------------------------------------------------


class EventRow(msgspec.Struct, frozen=True):
    """One row of ``events``; the first eleven fields are what the evidence log's leaf commits to."""

    event_id: str
    device_id: str
    seq: int
    type: str
    device_time_ms: int
    clock_error_ms: int
    received_ms: int
    stored_ms: int
    wire_format: str
    body: bytes
    sig: bytes
    body_json: str
    prev_hash: str | None
    body_sha256: str

    def leaf_values(self) -> tuple[Any, ...]:
        """The values a leaf commits to (server/evidence/log.py LEAF_COLUMNS, in that order)."""
        return msgspec.structs.astuple(self)[:11]


_EVENT_COLUMNS = ", ".join(EventRow.__struct_fields__)
_EVENT_VALUES = ", ".join(f":{f}" for f in EventRow.__struct_fields__)
# No conflict target: a row that collides on either key (the event id, or the device's sequence number) is not new.
_INSERT_EVENT = sql(f"INSERT INTO events({_EVENT_COLUMNS}) VALUES ({_EVENT_VALUES}) ON CONFLICT DO NOTHING")
_INSERT_EVENT_RETURNING = sql(f"INSERT INTO events({_EVENT_COLUMNS}) VALUES ({_EVENT_VALUES}) ON CONFLICT DO NOTHING RETURNING event_id")
_BODIES = sql("SELECT event_id, body FROM events WHERE event_id IN (:ids) ORDER BY event_id")


def insert_events(tx: Tx, rows: Sequence[EventRow]) -> set[str]:
    """Insert the rows that collide with no stored one, in (device_id, seq) order; returns the event ids newly stored.

    PostgreSQL: one pipelined ``executemany`` whose RETURNING names the new rows (its rowcount is not per row).
    SQLite: one statement per row and its rowcount, cheaper there than RETURNING (docs/storage-seam.md §3.1).
    """
    ordered = sorted(rows, key=lambda r: (r.device_id, r.seq))  # stable: of two rows with one key, the first wins
    params = [msgspec.structs.asdict(r) for r in ordered]
    if tx.backend is Backend.POSTGRES:
        new: set[str] = set()
        if not params:
            return new
        with tx.raw.cursor() as cur:
            cur.executemany(_INSERT_EVENT_RETURNING.for_backend(tx.backend), params, returning=True)
            while True:
                row = cur.fetchone()
                if row is not None:
                    new.add(row[0])
                if not cur.nextset():
                    return new
    return {p["event_id"] for p in params if tx.run(_INSERT_EVENT, p).rowcount == 1}


def stored_bodies(tx: Tx, event_ids: Collection[str]) -> dict[str, bytes]:
    """The signed bodies of those of these events that are stored."""
    if not event_ids:
        return {}
    return {e: bytes(b) for e, b in tx.all(_BODIES, ids=sorted(event_ids))}


#: The largest integer either backend stores (a signed 64-bit one).
_MAX_INT = 2**63 - 1
_NEIGHBOURS = sql("""
    SELECT seq, prev_hash, body_sha256 FROM events WHERE device_id = :device_id AND seq IN (:seqs) ORDER BY seq
""")


def links_around(tx: Tx, device_id: str, seqs: Collection[int]) -> dict[int, tuple[str | None, str | None]]:
    """seq -> (prev_hash, body_sha256) of the device's stored events at these sequence numbers and next to them."""
    wanted = sorted({n for s in seqs for n in (s - 1, s, s + 1) if 0 <= n <= _MAX_INT})
    return {seq: (prev, sha) for seq, prev, sha in tx.all(_NEIGHBOURS, device_id=device_id, seqs=wanted)}


# Records removed by the retention policy arrived once: they are not gaps.
_USED_SEQS = "SELECT seq FROM events WHERE device_id = :device_id UNION ALL SELECT seq FROM retention_removed WHERE device_id = :device_id"
_GAPS = sql(f"""
    SELECT seq + 1, next_seq - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next_seq FROM ({_USED_SEQS}) used) runs
    WHERE next_seq > seq + 1 ORDER BY seq
""")
_FIRST_SEQ = sql(f"SELECT min(seq) FROM ({_USED_SEQS}) used")


def sequence_holes(tx: Tx, device_id: str) -> tuple[int | None, list[tuple[int, int]]]:
    """(lowest sequence number the device is known to have used, [first, last] of each run missing above it)."""
    return tx.scalar(_FIRST_SEQ, device_id=device_id), [(a, b) for a, b in tx.all(_GAPS, device_id=device_id)]


# --- device state ---------------------------------------------------------------------------------------------


class DeviceDelta(msgspec.Struct, frozen=True):
    """What one batch adds to a device's state."""

    device_id: str
    max_seq: int
    stored: int
    duplicates: int


_BUMP_STATE = sql("""
    INSERT INTO device_state(device_id, last_seen_ms, max_seq, stored_count, duplicate_count)
    VALUES (:device_id, :now_ms, :max_seq, :stored, :duplicates)
    ON CONFLICT (device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
        max_seq = greatest(device_state.max_seq, excluded.max_seq),
        stored_count = device_state.stored_count + excluded.stored_count,
        duplicate_count = device_state.duplicate_count + excluded.duplicate_count
""")
_PRESENCE = sql("""
    INSERT INTO device_state(device_id, online, presence_ms) VALUES (:device_id, :online, :now_ms)
    ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, presence_ms = excluded.presence_ms
""")


def bump_device_state(tx: Tx, deltas: Iterable[DeviceDelta], now_ms: int) -> None:
    """Add a batch's counts to each device's state (in device order); the highest sequence number only grows."""
    rows = [{**msgspec.structs.asdict(d), "now_ms": now_ms} for d in sorted(deltas, key=lambda d: d.device_id)]
    tx.many(_BUMP_STATE, rows)


def set_presence(tx: Tx, device_id: str, online: bool, now_ms: int) -> None:
    """Record a device's last presence message."""
    tx.run(_PRESENCE, device_id=device_id, online=int(online), now_ms=now_ms)


# --- rejected messages ----------------------------------------------------------------------------------------


class RejectedRow(msgspec.Struct, frozen=True):
    """A refused message as kept: its first bytes (or all), size and SHA-256, and why."""

    received_ms: int
    topic: str
    device_id: str | None
    event_id: str | None
    reason_code: str
    reason: str
    raw: bytes
    size: int
    sha256: str


_REJECT = sql("""
    INSERT INTO rejected(received_ms, topic, device_id, event_id, reason_code, reason, raw, size, sha256)
    VALUES (:received_ms, :topic, :device_id, :event_id, :reason_code, :reason, :raw, :size, :sha256) RETURNING id
""")
_COUNT_REJECTED = sql("""
    INSERT INTO rejected_counts(reason_code, count, last_ms) VALUES (:reason_code, :n, :last_ms)
    ON CONFLICT (reason_code) DO UPDATE SET count = rejected_counts.count + excluded.count,
        last_ms = greatest(rejected_counts.last_ms, excluded.last_ms)
""")
# Both use an index (rejected_with_raw, the primary key) and touch only the rows they change.
_UNHASHED_WITH_BYTES = sql("SELECT id, raw FROM rejected WHERE LENGTH(raw) > 0 AND id <= :upto AND sha256 IS NULL ORDER BY id")
_SET_HASH = sql("UPDATE rejected SET sha256 = :sha256 WHERE id = :id")
_DROP_BYTES = sql("UPDATE rejected SET raw = :empty WHERE LENGTH(raw) > 0 AND id <= :upto")
_DELETE_REJECTED = sql("DELETE FROM rejected WHERE id <= :upto")
_REJECTED_COUNTS = sql("SELECT reason_code, count, last_ms FROM rejected_counts ORDER BY count DESC, reason_code")
_RECENT_REJECTED = sql("""
    SELECT id, received_ms, topic, device_id, event_id, reason_code, reason, coalesce(size, LENGTH(raw)), sha256, LENGTH(raw)
    FROM rejected ORDER BY id DESC LIMIT :limit
""")


def add_rejected(tx: Tx, row: RejectedRow) -> int:
    """Keep a refused message; returns its row id (ids only grow)."""
    return int(tx.scalar(_REJECT, msgspec.structs.asdict(row)))


def count_rejected(tx: Tx, counts: Mapping[str, tuple[int, int]]) -> None:
    """Add to each reason's total: reason -> (messages, latest received_ms); in reason order."""
    tx.many(_COUNT_REJECTED, [{"reason_code": r, "n": n, "last_ms": last} for r, (n, last) in sorted(counts.items())])


def unhashed_rejected(tx: Tx, upto_id: int) -> list[tuple[int, bytes]]:
    """(id, bytes) of rows up to ``upto_id`` that still have bytes but no SHA-256 (kept before migration 10)."""
    return [(i, bytes(raw)) for i, raw in tx.all(_UNHASHED_WITH_BYTES, upto=upto_id)]


def set_rejected_hashes(tx: Tx, hashes: Mapping[int, str]) -> None:
    """Record rows' SHA-256 (before their bytes go)."""
    tx.many(_SET_HASH, [{"id": i, "sha256": h} for i, h in sorted(hashes.items())])


def drop_rejected_bytes(tx: Tx, upto_id: int) -> None:
    """Rows up to ``upto_id`` keep their reason, size and SHA-256, not their bytes."""
    tx.run(_DROP_BYTES, empty=b"", upto=upto_id)


def delete_rejected(tx: Tx, upto_id: int) -> None:
    """Remove rows up to ``upto_id`` (the totals stay)."""
    tx.run(_DELETE_REJECTED, upto=upto_id)


def rejected_counts(tx: Tx) -> list[tuple[str, int, int]]:
    """(reason_code, count, last_ms) of every reason, most frequent first."""
    return [(r, c, m) for r, c, m in tx.all(_REJECTED_COUNTS)]


def recent_rejected(tx: Tx, limit: int) -> list[tuple[Any, ...]]:
    """The newest rejected rows: id, received_ms, topic, device_id, event_id, reason_code, reason, size, sha256, bytes kept."""
    return tx.all(_RECENT_REJECTED, limit=limit)


# --- device clocks ----------------------------------------------------------------------------------------------

_CLOCK = sql("SELECT registered_ms, offset_ms, alerted_ms, ok_since_ms FROM device_clocks WHERE device_id = :device_id")
# Two ingest processes may start a device's clock state at once: the second one's insert does nothing.
_START_CLOCK = sql("""
    INSERT INTO device_clocks(device_id, registered_ms) SELECT device_id, registered_ms FROM devices WHERE device_id = :device_id
    ON CONFLICT (device_id) DO NOTHING
""")
_SET_CLOCK = sql("UPDATE device_clocks SET offset_ms = :offset_ms, alerted_ms = :alerted_ms, ok_since_ms = :ok_since_ms WHERE device_id = :device_id")
_SUSPECT = sql("""
    INSERT INTO clock_suspects(event_id, device_id, reason, detail, device_time_ms, received_ms)
    VALUES (:event_id, :device_id, :reason, :detail, :device_time_ms, :received_ms) ON CONFLICT (event_id) DO NOTHING
""")

ClockState = tuple[int, int | None, int | None, int | None]


def clock_state(tx: Tx, device_id: str) -> ClockState | None:
    """(registered_ms, offset_ms, alerted_ms, ok_since_ms) of a registered device (started from the register once)."""
    row = tx.one(_CLOCK, device_id=device_id)
    if row is None:
        tx.run(_START_CLOCK, device_id=device_id)
        row = tx.one(_CLOCK, device_id=device_id)
    return None if row is None else (row[0], row[1], row[2], row[3])


def set_clock_state(tx: Tx, device_id: str, offset_ms: int | None, alerted_ms: int | None, ok_since_ms: int | None) -> None:
    """Replace a device's clock state (after ``clock_state`` started it)."""
    tx.run(_SET_CLOCK, device_id=device_id, offset_ms=offset_ms, alerted_ms=alerted_ms, ok_since_ms=ok_since_ms)


def add_clock_suspect(tx: Tx, *, event_id: str, device_id: str, reason: str, detail: str, device_time_ms: int, received_ms: int) -> None:
    """Flag a stored event whose device time cannot be right (once per event)."""
    tx.run(_SUSPECT, event_id=event_id, device_id=device_id, reason=reason, detail=detail, device_time_ms=device_time_ms, received_ms=received_ms)
