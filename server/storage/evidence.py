"""The evidence log's rows: leaves (``evidence_log``), the Merkle frontier (``log_state``), signed tree heads, and the
reads ``fe-server verify`` streams.

Rows only: what a leaf is, how the tree grows and what counts as tampering are server/evidence/log.py's and
server/evidence/verify.py's. The frontier is one row for the whole cluster: ``lock_frontier`` reads it under a row lock
(PostgreSQL), so ingest processes append one after another, each after it inserted and projected its events
(docs/storage-seam.md §4.2).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from server.storage.engine import Backend, Statement, Tx, sql

#: Rows a PostgreSQL server-side cursor fetches at a time when a whole table is walked.
STREAM_ROWS = 2000
_cursor_names = itertools.count(1)


def _stream(tx: Tx, stmt: Statement, **params: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of a query over a whole table, without holding them all in memory: SQLite steps its cursor;
    psycopg's ordinary cursor would fetch every row first, so PostgreSQL gets a server-side one (in a transaction,
    or a savepoint of the caller's)."""
    if tx.backend is Backend.SQLITE:
        yield from tx.run(stmt, params)
        return
    with tx.raw.transaction(), tx.raw.cursor(name=f"fe_stream_{next(_cursor_names)}") as cur:
        cur.itersize = STREAM_ROWS
        cur.execute(stmt.for_backend(tx.backend), params)
        yield from cur

# PostgreSQL: FOR UPDATE holds the row until the transaction ends, so two writers never append at one index. SQLite
# does not parse FOR UPDATE and needs no lock: a write transaction (BEGIN IMMEDIATE) already excludes every other.
_FRONTIER = "SELECT frontier FROM log_state WHERE id = 1"
_LOCK_FRONTIER = sql(_FRONTIER, postgresql=_FRONTIER + " FOR UPDATE")
_READ_FRONTIER = sql(_FRONTIER)
# The row exists from the first append on; two first appenders at once: the second one's insert does nothing.
_START_LOG = sql("INSERT INTO log_state(id, frontier, size) VALUES (1, :frontier, 0) ON CONFLICT (id) DO NOTHING")
_SAVE_FRONTIER = sql("UPDATE log_state SET frontier = :frontier, size = :size WHERE id = 1")
_APPEND = sql("INSERT INTO evidence_log(idx, event_id, leaf_hash, appended_ms) VALUES (:idx, :event_id, :leaf_hash, :appended_ms)")
_LOG_SIZE = sql("SELECT coalesce(max(size), 0) FROM log_state")
_INDEXES = sql("SELECT event_id, idx FROM evidence_log WHERE event_id IN (:ids) ORDER BY idx")
_LEAVES = sql("SELECT leaf_hash FROM evidence_log ORDER BY idx")
_FIRST_LEAVES = sql("SELECT leaf_hash FROM evidence_log ORDER BY idx LIMIT :n")
_ADD_HEAD = sql("""
    INSERT INTO tree_heads(tree_size, timestamp_ms, root_hash, signature) VALUES (:tree_size, :timestamp_ms, :root_hash, :signature)
    ON CONFLICT (tree_size, timestamp_ms) DO NOTHING
""")
_LATEST_HEAD = sql("SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads ORDER BY timestamp_ms DESC, tree_size DESC LIMIT 1")
_HEADS = sql("SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads ORDER BY timestamp_ms, tree_size")
# The first head signed at a size (several may be: the same size signed again later); the primary key's index.
_HEAD_OF_SIZE = sql("SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads WHERE tree_size = :n ORDER BY timestamp_ms LIMIT 1")
# The last head signed before a moment (tree_heads_by_time, migration 0012).
_HEAD_BEFORE = sql("""
    SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads WHERE timestamp_ms < :before
    ORDER BY timestamp_ms DESC, tree_size DESC LIMIT 1
""")


def lock_frontier(tx: Tx, empty: bytes) -> bytes:
    """The serialised frontier, locked until the transaction ends (PostgreSQL); ``empty`` starts a new log."""
    row = tx.one(_LOCK_FRONTIER)
    if row is None:
        tx.run(_START_LOG, frontier=empty)
        row = tx.one(_LOCK_FRONTIER)
    return bytes(row[0])  # type: ignore[index]


def read_frontier(tx: Tx) -> bytes | None:
    """The serialised frontier as committed (no lock), or None before the first append."""
    row = tx.one(_READ_FRONTIER)
    return None if row is None else bytes(row[0])


def append_leaves(tx: Tx, first_index: int, leaves: Sequence[tuple[str, bytes]], now_ms: int) -> None:
    """Insert (event_id, leaf hash) pairs at ``first_index`` and on."""
    tx.many(_APPEND, [{"idx": first_index + i, "event_id": e, "leaf_hash": h, "appended_ms": now_ms} for i, (e, h) in enumerate(leaves)])


def save_frontier(tx: Tx, frontier: bytes, size: int) -> None:
    """Store the frontier after the appends (the row exists: ``lock_frontier`` made it)."""
    tx.run(_SAVE_FRONTIER, frontier=frontier, size=size)


def log_size(tx: Tx) -> int:
    """How many leaves the log holds."""
    return int(tx.scalar(_LOG_SIZE))


def indexes_of(tx: Tx, event_ids: Sequence[str]) -> dict[str, int]:
    """event_id -> its index in the log, for those of these events that are logged."""
    if not event_ids:
        return {}
    return {e: int(i) for e, i in tx.all(_INDEXES, ids=sorted(set(event_ids)))}


def leaf_hashes(tx: Tx, size: int | None = None) -> Iterator[bytes]:
    """The log's leaf hashes in order (the first ``size``)."""
    rows = _stream(tx, _LEAVES) if size is None else tx.run(_FIRST_LEAVES, n=size)
    return (bytes(h) for (h,) in rows)


def add_tree_head(tx: Tx, *, tree_size: int, timestamp_ms: int, root_hash: bytes, signature: bytes) -> bool:
    """Record a signed tree head; False if a head of that size and time is already there."""
    return bool(tx.run(_ADD_HEAD, tree_size=tree_size, timestamp_ms=timestamp_ms, root_hash=root_hash, signature=signature).rowcount)


def latest_tree_head(tx: Tx) -> tuple[int, int, bytes, bytes] | None:
    """(size, time, root, signature) of the newest head."""
    row = tx.one(_LATEST_HEAD)
    return None if row is None else (row[0], row[1], bytes(row[2]), bytes(row[3]))


def tree_head_of_size(tx: Tx, size: int) -> tuple[int, int, bytes, bytes] | None:
    """(size, time, root, signature) of the first head signed at this size."""
    row = tx.one(_HEAD_OF_SIZE, n=size)
    return None if row is None else (row[0], row[1], bytes(row[2]), bytes(row[3]))


def tree_head_before(tx: Tx, before_ms: int) -> tuple[int, int, bytes, bytes] | None:
    """(size, time, root, signature) of the last head signed before ``before_ms``."""
    row = tx.one(_HEAD_BEFORE, before=before_ms)
    return None if row is None else (row[0], row[1], bytes(row[2]), bytes(row[3]))


def tree_heads(tx: Tx) -> list[tuple[int, int, bytes, bytes]]:
    """(size, time, root, signature) of every head, oldest first."""
    return [(s, t, bytes(r), bytes(g)) for s, t, r, g in tx.all(_HEADS)]


# --- what verify reads ----------------------------------------------------------------------------------------

LEAF_COLUMNS = ("event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms", "wire_format", "body", "sig")
_LEAF_ROW = sql(f"SELECT {', '.join(LEAF_COLUMNS)} FROM events WHERE event_id = :event_id")
# In the order of the (device_id, seq) key: a walk of its index, no sort of the whole table.
_EVENTS_AND_LEAVES = sql(f"""
    SELECT {', '.join(f'e.{c}' for c in LEAF_COLUMNS)}, e.body_json, l.idx, l.leaf_hash
    FROM events e LEFT JOIN evidence_log l ON l.event_id = e.event_id ORDER BY e.device_id, e.seq
""")
_REMOVED = sql("""
    SELECT l.idx, l.event_id FROM evidence_log l
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = l.event_id)
      AND NOT EXISTS (SELECT 1 FROM records s WHERE s.record_id = l.event_id)
      AND NOT EXISTS (SELECT 1 FROM retention_removed r WHERE r.event_id = l.event_id)
    ORDER BY l.idx
""")
_DEVICE_KEYS = sql("SELECT device_id, public_key FROM devices ORDER BY device_id")
_CHAIN = sql("SELECT seq, prev_hash, body FROM events WHERE device_id = :device_id ORDER BY seq")
_REMOVED_SEQS = sql("SELECT seq FROM retention_removed WHERE device_id = :device_id ORDER BY seq")


def leaf_row(tx: Tx, event_id: str) -> tuple[Any, ...] | None:
    """An event's values in LEAF_COLUMNS order."""
    return tx.one(_LEAF_ROW, event_id=event_id)


def events_with_leaves(tx: Tx) -> Iterator[tuple[Any, ...]]:
    """Every event: its LEAF_COLUMNS values, body_json, then its log index and leaf hash (None when not logged)."""
    yield from _stream(tx, _EVENTS_AND_LEAVES)


def removed_leaves(tx: Tx) -> list[tuple[int, str]]:
    """(index, id) of logged events and records with no row, other than the events the retention policy removed."""
    return [(i, e) for i, e in tx.all(_REMOVED)]


def device_keys(tx: Tx) -> list[tuple[str, str]]:
    """(device_id, public key hex) of every registered device."""
    return [(d, k) for d, k in tx.all(_DEVICE_KEYS)]


def chain(tx: Tx, device_id: str) -> Iterator[tuple[int, str | None, bytes]]:
    """(seq, prev_hash, body) of a device's events in order."""
    for seq, prev, body in _stream(tx, _CHAIN, device_id=device_id):
        yield seq, prev, bytes(body)


def removed_seqs(tx: Tx, device_id: str) -> set[int]:
    """Sequence numbers of the device's events the retention policy removed."""
    return {s for (s,) in tx.all(_REMOVED_SEQS, device_id=device_id)}


# --- verify split into ranges of the (device_id, seq) key, one read connection per worker ---------------------------

#: What a range of ``verify`` reads per event: LEAF_COLUMNS, body_json, prev_hash, log index, leaf hash.
_RANGE_SELECT = f"""
    SELECT {', '.join(f'e.{c}' for c in LEAF_COLUMNS)}, e.body_json, e.prev_hash, l.idx, l.leaf_hash
    FROM events e LEFT JOIN evidence_log l ON l.event_id = e.event_id
"""
# Row values compare as the (device_id, seq) UNIQUE index orders (SQLite >= 3.15 and PostgreSQL search the index).
_RANGE_FROM = "(e.device_id, e.seq) >= (:lo_device, :lo_seq)"
_RANGE_TO = "(e.device_id, e.seq) < (:hi_device, :hi_seq)"
_RANGES = {
    (lo, hi): sql(_RANGE_SELECT + (" WHERE " if lo or hi else "") + " AND ".join(w for w, on in ((_RANGE_FROM, lo), (_RANGE_TO, hi)) if on) + " ORDER BY e.device_id, e.seq")
    for lo in (False, True)
    for hi in (False, True)
}
# Every ``every``-th key in index order (the first included): the starts of ranges of about ``every`` events each.
_BOUNDARIES = sql("""
    SELECT device_id, seq FROM (SELECT device_id, seq, row_number() OVER (ORDER BY device_id, seq) AS n FROM events) k
    WHERE n % :every = 1 ORDER BY device_id, seq
""")


def range_starts(tx: Tx, every: int) -> list[tuple[str, int]]:
    """(device_id, seq) of every ``every``-th event in key order: ranges of about ``every`` events for workers."""
    return [(d, int(s)) for d, s in tx.all(_BOUNDARIES, every=every)]


def events_in_range(tx: Tx, lo: tuple[str, int] | None, hi: tuple[str, int] | None) -> Iterator[tuple[Any, ...]]:
    """The events with lo <= (device_id, seq) < hi (None: open end) in key order: LEAF_COLUMNS values, body_json,
    prev_hash, then the log index and leaf hash (None when not logged)."""
    params: dict[str, Any] = {}
    if lo is not None:
        params.update(lo_device=lo[0], lo_seq=lo[1])
    if hi is not None:
        params.update(hi_device=hi[0], hi_seq=hi[1])
    yield from _stream(tx, _RANGES[(lo is not None, hi is not None)], **params)
