"""The durable outbox: every accepted event is on disk (WAL, synchronous=FULL) before the caller hears "accepted".

Rows leave only when the server's verified receipt names them. Sequence numbers are allocated in the
same transaction as the insert, so they are contiguous and never reused; a small side file reserves them
in blocks so that even a database kept aside after corruption cannot make a number repeat.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import DiskFull, OutboxFull

log = logging.getLogger(__name__)

#: Sequence numbers reserved per write of the side file (one fsync per block, not per event).
SEQ_RESERVE_BLOCK = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    low_priority INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, body_hash TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One stored, unreceipted event."""

    seq: int
    event_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of one append: stored now, or already stored under this event id."""

    seq: int
    event_id: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Draft:
    """An event to append: ``build(seq, prev_hash)`` returns ``(type, payload, body hash)`` once its
    number and the hash of the device's previous event body are known."""

    event_id: str
    low_priority: bool
    build: Callable[[int, str | None], tuple[str, bytes, str]]


@dataclass(frozen=True, slots=True)
class Recovery:
    """What happened when the database failed its integrity check at start."""

    kept_aside_as: str
    reason: str
    reserved_seq_ceiling: int


class Outbox:
    """SQLite-backed outbox shared by the accepting, sending and receipt threads."""

    def __init__(self, path: str | Path, *, max_bytes: int, low_priority_max_bytes: int, max_page_count: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.low_priority_max_bytes = low_priority_max_bytes
        self._lock = threading.Lock()
        self._seq_file = self.path.with_name(self.path.name + ".seq")
        self.recovery: Recovery | None = self._check_integrity()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if max_page_count:
            self._db.execute(f"PRAGMA max_page_count={int(max_page_count)}")
        self._db.executescript(_SCHEMA)
        self._seq_ceiling = self._read_seq_file()
        last = self._meta("last_seq")
        if last is None:
            # A new database: continue above every number that may ever have been used.
            last = self._seq_ceiling
            self._set_meta("last_seq", last)
        self.last_seq = last
        head = self._db.execute("SELECT seq, body_hash FROM chain_head WHERE id = 1").fetchone()
        # The chain links event seq to seq - 1 only; after a new outbox it starts again (the alarm says why).
        self._chain: tuple[int, str] | None = (head[0], head[1]) if head else None
        self.depth, self.bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()

    # ------------------------------------------------------------------ start-up

    def _check_integrity(self) -> Recovery | None:
        if not self.path.exists():
            return None
        reason = ""
        try:
            con = sqlite3.connect(self.path)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
            if [r[0] for r in rows] != ["ok"]:
                reason = "; ".join(str(r[0]) for r in rows[:5])
        except sqlite3.DatabaseError as e:
            reason = str(e)
        if not reason:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        _fsync_dir(self.path.parent)
        log.error("ALARM outbox %s failed its integrity check (%s); kept aside as %s, starting a new one", self.path, reason, aside)
        return Recovery(kept_aside_as=str(aside), reason=reason, reserved_seq_ceiling=self._read_seq_file())

    def _read_seq_file(self) -> int:
        try:
            return int(self._seq_file.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _reserve_seq(self, needed: int) -> None:
        """Make sure the side file covers ``needed`` before any such number is committed."""
        if needed <= self._seq_ceiling:
            return
        ceiling = needed + SEQ_RESERVE_BLOCK
        tmp = self._seq_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{ceiling}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._seq_file)
        _fsync_dir(self._seq_file.parent)
        self._seq_ceiling = ceiling

    def _meta(self, key: str) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # ------------------------------------------------------------------ accepting

    def append(self, drafts: Sequence[Draft]) -> list[Accepted | OutboxFull]:
        """Store drafts in one transaction (group commit); each gets its outcome, in order."""
        with self._lock:
            try:
                return self._append_locked(drafts)
            except sqlite3.OperationalError as e:
                if "full" not in str(e).lower() or len(drafts) == 1:
                    if "full" in str(e).lower():
                        return [DiskFull(f"storage is full, event not accepted: {e}")]
                    raise
            # The batch did not fit: store one by one so that whatever fits is accepted.
            out: list[Accepted | OutboxFull] = []
            for d in drafts:
                try:
                    out.extend(self._append_locked([d]))
                except sqlite3.OperationalError as e:
                    if "full" not in str(e).lower():
                        raise
                    out.append(DiskFull(f"storage is full, event not accepted: {e}"))
            return out

    def _append_locked(self, drafts: Sequence[Draft]) -> list[Accepted | OutboxFull]:
        out: list[Accepted | OutboxFull] = []
        now = int(time.time() * 1000)
        seq, total, depth, chain = self.last_seq, self.bytes, self.depth, self._chain
        self._reserve_seq(seq + len(drafts))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for d in drafts:
                existing = db.execute("SELECT seq FROM outbox WHERE event_id = ?", (d.event_id,)).fetchone()
                if existing:
                    out.append(Accepted(seq=existing[0], event_id=d.event_id, duplicate=True))
                    continue
                prev = chain[1] if chain is not None and chain[0] == seq else None
                typ, payload, body_hash = d.build(seq + 1, prev)
                limit = self.low_priority_max_bytes if d.low_priority else self.max_bytes
                if total + len(payload) > limit:
                    which = "low-priority limit (status, media metadata)" if d.low_priority else "hard limit"
                    out.append(OutboxFull(f"outbox is at its {which} of {limit} bytes ({depth} events waiting for receipts); event not accepted"))
                    continue
                seq += 1
                db.execute(
                    "INSERT INTO outbox(seq, event_id, type, low_priority, created_ms, payload) VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, d.event_id, typ, int(d.low_priority), now, payload),
                )
                total += len(payload)
                depth += 1
                chain = (seq, body_hash)
                out.append(Accepted(seq=seq, event_id=d.event_id))
            self._set_meta("last_seq", seq)
            if chain is not None and chain != self._chain:
                db.execute("INSERT INTO chain_head(id, seq, body_hash) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, body_hash = excluded.body_hash", chain)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite already rolled back after some errors (e.g. SQLITE_FULL)
                db.execute("ROLLBACK")
            raise
        self.last_seq, self.bytes, self.depth, self._chain = seq, total, depth, chain
        return out

    # ------------------------------------------------------------------ sending and receipts

    def next_after(self, seq: int, limit: int) -> list[Row]:
        """Unreceipted events after ``seq``, in sequence order."""
        with self._lock:
            rows = self._db.execute("SELECT seq, event_id, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [Row(*r) for r in rows]

    def remove_receipted(self, items: Iterable[tuple[int, str]]) -> int:
        """Delete the events a verified receipt names (sequence number and event id must both match)."""
        pairs = list(items)
        if not pairs:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                freed = removed = 0
                for seq, event_id in pairs:
                    row = db.execute("DELETE FROM outbox WHERE seq = ? AND event_id = ? RETURNING LENGTH(payload)", (seq, event_id)).fetchone()
                    if row:
                        removed += 1
                        freed += row[0]
                if removed:
                    self._set_meta("receipted_total", (self._meta("receipted_total") or 0) + removed)
                    self._set_meta("last_receipt_ms", int(time.time() * 1000))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite already rolled back after some errors (e.g. SQLITE_FULL)
                    db.execute("ROLLBACK")
                raise
            self.depth -= removed
            self.bytes -= freed
        return removed

    def oldest_created_ms(self) -> int | None:
        """When the oldest unreceipted event was accepted."""
        with self._lock:
            row = self._db.execute("SELECT created_ms FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def counters(self) -> dict[str, int | None]:
        """Persistent counters: last sequence number, events receipted, last receipt time."""
        with self._lock:
            return {"last_seq": self.last_seq, "receipted_total": self._meta("receipted_total") or 0, "last_receipt_ms": self._meta("last_receipt_ms")}

    def integrity_ok(self) -> bool:
        """Run PRAGMA integrity_check now."""
        with self._lock:
            return [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall()] == ["ok"]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def alarm_record(recovery: Recovery) -> str:
    """A JSON line for the alarm log."""
    return json.dumps({"alarm": "outbox_corrupt", "kept_aside_as": recovery.kept_aside_as, "reason": recovery.reason, "time_ms": int(time.time() * 1000)})
