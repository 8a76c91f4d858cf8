"""The ingest's transaction: a batch's events stored, projected and logged together, or not at all.

Storing (server/ingest/store.py) knows nothing of the projector; the ingest composes the steps in one write
transaction (docs/storage-seam.md §2): ``store_events``, then ``Projector.stored``/``duplicate`` on the same
Tx, then ``log_events``, which locks the evidence log as late as possible. On PostgreSQL the whole
transaction is run again after a deadlock or serialization failure, so nothing here acts outside the
database: receipts and notices are returned and published by the caller after the commit.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from protocol.messages import ReceiptItem
from server.evidence.log import EvidenceLog, indexes_of
from server.storage.engine import Tx, sqlite_transaction, storage_for
from server.storage.failures import CANNOT_WRITE
from server.ingest.store import BatchOutcome, Checked, DeviceKeys, Incoming, Rejects, Stored, check_links, count_devices, precheck, store_events
from server.ingest.verify_worker import VerifyMany, verify_here

if TYPE_CHECKING:
    from server.ingest.projector import Projector

log = logging.getLogger(__name__)
T = TypeVar("T")


def record_batch(tx: Tx, checked: Checked, keys: DeviceKeys, projector: Projector | None, now_ms: int, *, pause_before_commit_s: float = 0.0) -> BatchOutcome:
    """Store, project and log a checked batch in ``tx``; the outcome is for after the commit."""
    out = BatchOutcome()
    stored = store_events(tx, checked, keys, out, now_ms)
    if projector is not None:
        for m, status in stored.order:  # batch order: a scan decides against the scans before it
            notices = projector.stored(tx, m, now_ms) if status == "stored" else projector.duplicate(tx, m, now_ms)
            out.notices.setdefault(m.device_id, []).extend(notices)
    log_events(tx, stored, out, now_ms)
    if pause_before_commit_s:
        time.sleep(pause_before_commit_s)  # fault injection, see server.settings.FAULT_PAUSE_ENV
    return out


def log_events(tx: Tx, stored: Stored, out: BatchOutcome, now_ms: int) -> None:
    """Last step of a batch's transaction: lock the evidence log, write the per-device rows (store.count_devices),
    append the new events to the log and write the receipts.

    The log's state row is locked here, after the events were inserted and projected, so several ingest processes
    do everything else in parallel and queue only for this and their commit; transactions that append commit in
    the order they took that lock, so the chain is checked here too: a link whose other end another process
    stored is seen by whichever of the two comes second (docs/storage-seam.md §4.2, §4.4).
    """
    indexes: dict[str, int] = {}
    evidence_log = EvidenceLog(tx) if stored.new else None  # the log lock: from here on this batch has the writers' turn
    count_devices(tx, stored, now_ms)
    if evidence_log is not None:
        check_links(tx, [row for _, row in stored.new], now_ms)
        appended = evidence_log.append_rows(tx, [(row.event_id, row.leaf_values()) for _, row in stored.new], now_ms)
        evidence_log.save(tx)
        indexes = {row.event_id: i for (_, row), i in zip(stored.new, appended, strict=True)}
    copies = [m.event_id for m, status in stored.order if status == "duplicate"]
    indexes.update(indexes_of(tx, copies))
    receipted: set[str] = set()
    for m, status in stored.order:
        if m.event_id in receipted:  # a resend within one batch is receipted once
            continue
        receipted.add(m.event_id)
        out.receipts.setdefault(m.device_id, []).append(ReceiptItem(event_id=m.event_id, seq=m.seq, status=status, log_index=indexes.get(m.event_id)))


Db = str | Path | sqlite3.Connection


def _read(db: Db, fn: Callable[[Tx], T]) -> T:
    if isinstance(db, sqlite3.Connection):  # a caller's own SQLite connection, outside a transaction
        return fn(Tx(db))
    return storage_for(db).read(fn)


def _write(db: Db, fn: Callable[[Tx], T]) -> T:
    if isinstance(db, sqlite3.Connection):
        with sqlite_transaction(db):
            return fn(Tx(db))
    return storage_for(db).write(fn)


def check_batch(db: Db, batch: list[Incoming], keys: DeviceKeys, verify_many: VerifyMany = verify_here) -> Checked:
    """A batch's signatures checked against what the ingest last knew of its devices, outside any transaction (the
    ingest's verifier thread does this for the next batch while the writer stores the one before)."""
    return precheck(batch, keys, lambda fn: _read(db, fn), verify_many)


def store_batch(
    db: Db, batch: list[Incoming], keys: DeviceKeys, *, projector: Projector | None = None, pause_before_commit_s: float = 0.0, checked: Checked | None = None
) -> BatchOutcome:
    """Validate, store, project and log a batch in one transaction of ``db`` (a path, a ``postgresql://`` URL, or a
    SQLite connection); the caller publishes receipts only after this returns. ``checked``: the batch as
    ``check_batch`` checked it earlier (what changed in the register since is checked again in the transaction)."""
    if checked is None or checked.batch is not batch:
        checked = check_batch(db, batch, keys)
    now_ms = int(time.time() * 1000)
    return _write(db, lambda tx: record_batch(tx, checked, keys, projector, now_ms, pause_before_commit_s=pause_before_commit_s))


def store_or_isolate(
    db: Db, batch: list[Incoming], keys: DeviceKeys, *, projector: Projector | None = None, pause_before_commit_s: float = 0.0, checked: Checked | None = None
) -> BatchOutcome:
    """store_batch; if the batch fails on something other than storage itself, store its messages one
    by one and keep aside, with the error as its reason, the one that cannot be processed, so a single
    bad message never stops the ingest. Storage failures (disk full, I/O) still propagate."""
    try:
        return store_batch(db, batch, keys, projector=projector, pause_before_commit_s=pause_before_commit_s, checked=checked)
    except CANNOT_WRITE:
        raise  # the database itself is in trouble: stop loudly rather than reject good messages
    except Exception:
        if len(batch) == 1:
            log.exception("message on %s could not be processed; kept aside", batch[0].topic)
            reason = f"the server could not process this message: {traceback.format_exc(limit=3)[-1500:]}"
            return _write(db, lambda tx: _keep_aside(tx, batch[0], reason))
    merged = BatchOutcome()
    for inc in batch:
        _merge(merged, store_or_isolate(db, [inc], keys, projector=projector, pause_before_commit_s=pause_before_commit_s))
    return merged


def _keep_aside(tx: Tx, inc: Incoming, reason: str) -> BatchOutcome:
    out = BatchOutcome()
    rejects = Rejects()
    rejects.add(tx, out, inc, "processing_error", reason)
    rejects.close(tx)
    return out


def _merge(into: BatchOutcome, one: BatchOutcome) -> None:
    per_device: list[tuple[dict[str, list[Any]], dict[str, list[Any]]]] = [
        (into.receipts, one.receipts), (into.rejections, one.rejections), (into.notices, one.notices),  # type: ignore[list-item]
    ]  # fmt: skip
    for target, source in per_device:
        for device_id, items in source.items():
            target.setdefault(device_id, []).extend(items)
    into.formats.update(one.formats)
    into.stored += one.stored
    into.duplicates += one.duplicates
    into.rejected.update(one.rejected)
    into.delivery_delays_s += one.delivery_delays_s
