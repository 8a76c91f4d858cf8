"""Validate a batch of MQTT messages and store it in one transaction, exactly once per event.

Order of checks for each message: size, envelope, topic, registered and not revoked device (of the
topic), signature (verified before the body is parsed), schema, device id vs topic. A message failing
any of them goes to the ``rejected`` table with its reason, size, SHA-256 and first bytes (bounded:
see ``_reject``) and is never receipted. The
register is read in each batch's transaction, so a revocation applies from the next batch on. Dedupe lives in the database: ``event_id`` is the primary key and
``(device_id, seq)`` is unique; a resend with identical bytes is merged and receipted again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import msgspec

from protocol import topics
from protocol.codec import ProtocolError, WireFormat, decode_device_body, open_envelope, read_device_body
from protocol.messages import DeviceMessage, Envelope, ReceiptItem, RejectionItem, ScanDecision, type_tag
from protocol.signing import VerifyKey
from server import clocks
from server.db import transaction
from server.evidence import EvidenceLog, index_of
from server.projector import Projector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as it came off the broker."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class _Valid:
    inc: Incoming
    fmt: WireFormat
    env: Envelope
    msg: DeviceMessage


@dataclass(slots=True)
class BatchOutcome:
    """What a committed batch means for the devices and the metrics."""

    receipts: dict[str, list[ReceiptItem]] = field(default_factory=dict)
    rejections: dict[str, list[RejectionItem]] = field(default_factory=dict)
    formats: dict[str, WireFormat] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    delivery_delays_s: list[float] = field(default_factory=list)
    notices: dict[str, list[ScanDecision]] = field(default_factory=dict)  # further answers for devices


@dataclass(frozen=True, slots=True)
class Registration:
    """A device's entry in the register, as the ingest checks it."""

    public_key: str  # hex, as registered
    revoked_ms: int | None
    key: VerifyKey = field(compare=False)  # parsed once per registered key


class DeviceKeys:
    """Registered devices' keys for the ingest, checked against the database in every batch.

    The register is the truth, for every server process alike: each batch reads its devices'
    registrations in one query inside its write transaction, so a revocation or a new key committed
    before that transaction applies to the whole batch. What the previous batch read is remembered only
    to check signatures before the transaction (outside the write lock), and re-checked inside it.
    Devices that are not registered are never remembered, so junk topics cannot grow this cache.
    """

    def __init__(self, db: sqlite3.Connection | None = None) -> None:
        # ``db`` is accepted for callers that make one per connection; every read names its connection.
        self._known: dict[str, Registration] = {}

    def read(self, db: sqlite3.Connection, device_ids: Collection[str]) -> dict[str, Registration]:
        """The registrations of these devices (revoked ones included), in one query; remembered."""
        if not device_ids:
            return {}
        rows = db.execute(
            "SELECT device_id, public_key, revoked_ms FROM devices WHERE device_id IN (SELECT value FROM json_each(?)) ORDER BY device_id",
            (json.dumps(sorted(device_ids)),),
        ).fetchall()
        found: dict[str, Registration] = {}
        for device_id, public_key, revoked_ms in rows:
            old = self._known.get(device_id)
            key = old.key if old is not None and old.public_key == public_key else VerifyKey.from_hex(public_key)
            found[device_id] = Registration(public_key, revoked_ms, key)
        for device_id in device_ids:
            self._known.pop(device_id, None)  # a device removed from the register is forgotten too
        self._known.update(found)
        return found

    def remembered(self, device_ids: Collection[str]) -> dict[str, Registration]:
        """What the last read said about these devices (possibly out of date: re-checked in the transaction)."""
        return {d: r for d in device_ids if (r := self._known.get(d)) is not None}


def _topic_device(topic: str) -> str | None:
    try:
        return topics.device_id_from_up(topic)
    except topics.TopicError:
        return None


def _validate(inc: Incoming, registrations: Mapping[str, Registration]) -> _Valid:
    fmt, env = open_envelope(inc.payload)
    try:
        topic_device = topics.device_id_from_up(inc.topic)
    except topics.TopicError as e:
        raise ProtocolError("bad_topic", str(e)) from None
    reg = registrations.get(topic_device)
    if reg is None:
        raise ProtocolError("unknown_device", f"device {topic_device!r} is not registered")
    if reg.revoked_ms is not None:
        when = dt.datetime.fromtimestamp(reg.revoked_ms / 1000, dt.UTC).isoformat(timespec="seconds")
        raise ProtocolError("unknown_device", f"device {topic_device!r} was revoked at {when}: its messages are refused")
    # Verify first, then parse: only bytes the device signed are decoded into a message.
    if not reg.key.verify(env.body, env.sig):
        claimed = _claimed_device(env.body, fmt)
        if claimed is not None and claimed != topic_device:
            raise ProtocolError("topic_mismatch", f"message of device {claimed!r} published on the topic of device {topic_device!r}")
        raise ProtocolError("bad_signature", f"signature does not verify with the registered key of device {topic_device!r}")
    msg = read_device_body(env.body, fmt)
    if msg.device_id != topic_device:
        raise ProtocolError("topic_mismatch", f"message of device {msg.device_id!r} published on the topic of device {topic_device!r}")
    return _Valid(inc, fmt, env, msg)


def _check(batch: list[Incoming], registrations: Mapping[str, Registration]) -> list[_Valid | ProtocolError]:
    out: list[_Valid | ProtocolError] = []
    for inc in batch:
        try:
            out.append(_validate(inc, registrations))
        except ProtocolError as e:
            out.append(e)
    return out


def _claimed_device(body: bytes, fmt: WireFormat) -> str | None:
    """The device id an unverified body claims, only to name the reason of a rejection."""
    try:
        return decode_device_body(body, fmt).device_id
    except ProtocolError:
        return None


#: Bytes of a rejected payload kept (with its full size and SHA-256): junk must not fill the disk.
REJECTED_PREFIX_BYTES = 4096
#: Only the newest this many rejected rows keep their bytes; older rows keep reason, size and SHA-256.
REJECTED_RAW_ROWS = 1000
#: Rejected rows kept at all (older ones are deleted; ``rejected_counts`` keeps every reason's total).
REJECTED_MAX_ROWS = 100_000
#: Characters of a rejected message's topic kept (a topic may be 65535 bytes long).
REJECTED_TOPIC_CHARS = 1024


def _reject(
    db: sqlite3.Connection, out: BatchOutcome, inc: Incoming, code: str, reason: str, device_id: str | None = None, event_id: str | None = None, *, whole: bool = False
) -> int:
    """Keep a refused message aside: its first bytes (all of them if ``whole``: authentic messages, at most the
    protocol's 64 KiB), size and SHA-256, and count it; returns its row id (the transaction then calls
    ``_prune_rejected`` once)."""
    payload = inc.payload
    cur = db.execute(
        "INSERT INTO rejected(received_ms, topic, device_id, event_id, reason_code, reason, raw, size, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (inc.received_ms, inc.topic[:REJECTED_TOPIC_CHARS], device_id, event_id, code, reason, payload if whole else payload[:REJECTED_PREFIX_BYTES],
         len(payload), _sha256_hex(payload)),
    )  # fmt: skip
    db.execute(
        "INSERT INTO rejected_counts(reason_code, count, last_ms) VALUES (?, 1, ?)"
        " ON CONFLICT(reason_code) DO UPDATE SET count = count + 1, last_ms = MAX(last_ms, excluded.last_ms)",
        (code, inc.received_ms),
    )
    out.rejected[code] += 1
    return cur.lastrowid or 0


def _prune_rejected(db: sqlite3.Connection, newest: int) -> None:
    """Bound the rejected table below its newest row: the oldest rows lose their bytes, then go (the totals
    stay). Once per transaction: ids only grow, so the newest row's bounds cover every earlier one's."""
    # Both use an index (rejected_with_raw, the primary key) and touch only the rows they change. Rows from
    # before migration 10 have no SHA-256 yet: it is taken from their whole bytes before these go.
    db.create_function("fe_sha256", 1, _sha256_hex, deterministic=True)
    db.execute(
        "UPDATE rejected SET sha256 = COALESCE(sha256, fe_sha256(raw)), raw = x'' WHERE LENGTH(raw) > 0 AND id <= ?", (newest - REJECTED_RAW_ROWS,)
    )
    db.execute("DELETE FROM rejected WHERE id <= ?", (newest - REJECTED_MAX_ROWS,))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class RejectedCount:
    """How many messages were refused for one reason, ever (pruning and retention do not lower it)."""

    reason_code: str
    count: int
    last_ms: int


def rejected_counts(db: sqlite3.Connection) -> list[RejectedCount]:
    """Every reason's total of refused messages, most frequent first."""
    rows = db.execute("SELECT reason_code, count, last_ms FROM rejected_counts ORDER BY count DESC, reason_code").fetchall()
    return [RejectedCount(*r) for r in rows]


#: Columns of a rejected row as the API and the CLI show it (``kept``: bytes of the payload still stored).
REJECTED_COLUMNS = ("id", "received_ms", "topic", "device_id", "event_id", "reason_code", "reason", "size", "sha256", "kept")


def recent_rejected(db: sqlite3.Connection, limit: int) -> list[tuple]:  # type: ignore[type-arg]
    """The newest rejected rows, as REJECTED_COLUMNS (no bytes)."""
    return db.execute(
        "SELECT id, received_ms, topic, device_id, event_id, reason_code, reason, COALESCE(size, LENGTH(raw)), sha256, LENGTH(raw)"
        " FROM rejected ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()


def store_batch(
    db: sqlite3.Connection, batch: list[Incoming], keys: DeviceKeys, *, projector: Projector | None = None, pause_before_commit_s: float = 0.0
) -> BatchOutcome:
    """Validate and store a batch in one transaction; the caller publishes receipts only after this returns.

    With a projector, each stored event is also applied to the registers in the same transaction, so
    an event and what it means are committed together or not at all.
    """
    out = BatchOutcome()
    device_of = [_topic_device(inc.topic) for inc in batch]
    devices = {d for d in device_of if d is not None}
    # Signatures are checked before the write lock is taken, with what the last batch read (or a fresh
    # read for devices not seen yet); the registrations are then read again inside the transaction.
    before = keys.remembered(devices)
    if devices - before.keys():
        before.update(keys.read(db, devices - before.keys()))
    checked = _check(batch, before)
    now_ms = int(time.time() * 1000)
    log = EvidenceLog(db)
    per_device: dict[str, list[int]] = {}  # device -> [max seq stored now, stored, duplicates]
    receipted: set[str] = set()
    db.execute("BEGIN IMMEDIATE")
    try:
        # The truth for this batch: a revocation or a new key committed before this point applies to it.
        current = keys.read(db, devices)
        changed = {d for d in devices if current.get(d) != before.get(d)}
        if changed:
            again = [i for i, d in enumerate(device_of) if d in changed]
            for i, result in zip(again, _check([batch[i] for i in again], current), strict=True):
                checked[i] = result
        valid = [c for c in checked if isinstance(c, _Valid)]
        invalid = [(inc, c) for inc, c in zip(batch, checked, strict=True) if isinstance(c, ProtocolError)]
        newest_rejected = 0
        for inc, err in invalid:
            newest_rejected = _reject(db, out, inc, err.code, str(err))
        for v in valid:
            m = v.msg
            row = (m.event_id, m.device_id, m.seq, type_tag(type(m)), m.device_time_ms, m.clock_error_ms, v.inc.received_ms, now_ms, v.fmt, v.env.body, v.env.sig)
            cur = db.execute(
                "INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json,"
                " prev_hash, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*row, msgspec.json.encode(m).decode(), m.prev_hash, hashlib.sha256(v.env.body).hexdigest()),
            )
            out.formats[m.device_id] = v.fmt
            counts = per_device.setdefault(m.device_id, [0, 0, 0])
            if cur.rowcount == 1:
                status = "stored"
                log_index: int | None = log.append(db, m.event_id, row, now_ms)
                clocks.check_stored(db, m, v.inc.received_ms, now_ms)  # kept whatever its time; a suspect one is flagged
                out.stored += 1
                counts[0] = max(counts[0], m.seq)
                counts[1] += 1
                out.delivery_delays_s.append(max(0.0, (now_ms - m.device_time_ms) / 1000))
                if projector is not None:
                    out.notices.setdefault(m.device_id, []).extend(projector.stored(db, m, now_ms))
            else:
                row = db.execute("SELECT body FROM events WHERE event_id = ?", (m.event_id,)).fetchone()
                if row is None or bytes(row[0]) != v.env.body:
                    if row is not None:
                        code, reason = "event_id_conflict", f"event id {m.event_id} is already stored with different content"
                    else:
                        code, reason = "seq_conflict", f"sequence number {m.seq} of device {m.device_id} is already stored under another event id"
                    newest_rejected = _reject(db, out, v.inc, code, reason, m.device_id, m.event_id, whole=True)  # signed by the device: kept whole
                    out.rejections.setdefault(m.device_id, []).append(RejectionItem(event_id=m.event_id, seq=m.seq, reason_code=code, reason=reason))
                    continue
                status = "duplicate"
                log_index = index_of(db, m.event_id)
                out.duplicates += 1
                counts[2] += 1
                if projector is not None:
                    out.notices.setdefault(m.device_id, []).extend(projector.duplicate(db, m, now_ms))
            if m.event_id not in receipted:  # a resend within one batch is receipted once
                receipted.add(m.event_id)
                out.receipts.setdefault(m.device_id, []).append(ReceiptItem(event_id=m.event_id, seq=m.seq, status=status, log_index=log_index))
        for device_id, (max_seq, stored, dups) in per_device.items():
            db.execute(
                "INSERT INTO device_state(device_id, last_seen_ms, max_seq, stored_count, duplicate_count) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,"
                " max_seq = MAX(device_state.max_seq, excluded.max_seq),"
                " stored_count = device_state.stored_count + excluded.stored_count,"
                " duplicate_count = device_state.duplicate_count + excluded.duplicate_count",
                (device_id, now_ms, max_seq, stored, dups),
            )
        if newest_rejected:
            _prune_rejected(db, newest_rejected)
        log.save(db)
        if pause_before_commit_s:
            time.sleep(pause_before_commit_s)  # fault injection, see server.settings.FAULT_PAUSE_ENV
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite already rolled back after some errors (e.g. SQLITE_FULL)
            db.execute("ROLLBACK")
        raise
    return out


def store_or_isolate(
    db: sqlite3.Connection, batch: list[Incoming], keys: DeviceKeys, *, projector: Projector | None = None, pause_before_commit_s: float = 0.0
) -> BatchOutcome:
    """store_batch; if the batch fails on something other than storage itself, store its messages one
    by one and keep aside, with the error as its reason, the one that cannot be processed, so a single
    bad message never stops the ingest. Storage failures (disk full, I/O) still propagate."""
    try:
        return store_batch(db, batch, keys, projector=projector, pause_before_commit_s=pause_before_commit_s)
    except sqlite3.OperationalError:
        raise  # the database itself is in trouble: stop loudly rather than reject good messages
    except Exception:
        if len(batch) == 1:
            inc = batch[0]
            log.exception("message on %s could not be processed; kept aside", inc.topic)
            out = BatchOutcome()
            with transaction(db):
                _prune_rejected(db, _reject(db, out, inc, "processing_error", f"the server could not process this message: {traceback.format_exc(limit=3)[-1500:]}"))
            return out
    merged = BatchOutcome()
    for inc in batch:
        one = store_or_isolate(db, [inc], keys, projector=projector, pause_before_commit_s=pause_before_commit_s)
        for device_id, items in one.receipts.items():
            merged.receipts.setdefault(device_id, []).extend(items)
        for device_id, items in one.rejections.items():
            merged.rejections.setdefault(device_id, []).extend(items)
        for device_id, notices in one.notices.items():
            merged.notices.setdefault(device_id, []).extend(notices)
        merged.formats.update(one.formats)
        merged.stored += one.stored
        merged.duplicates += one.duplicates
        merged.rejected.update(one.rejected)
        merged.delivery_delays_s += one.delivery_delays_s
    return merged


def sequence_gaps(db: sqlite3.Connection, device_id: str) -> list[tuple[int, int]]:
    """Ranges of sequence numbers the device used (below its highest stored one) that never arrived."""
    # Records removed by the retention policy arrived once: they are not gaps.
    seqs = "SELECT seq FROM events WHERE device_id = ?1 UNION ALL SELECT seq FROM retention_removed WHERE device_id = ?1"
    rows = db.execute(
        f"SELECT seq + 1, next_seq - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS next_seq FROM ({seqs})) WHERE next_seq > seq + 1 ORDER BY seq",
        (device_id,),
    ).fetchall()
    first = db.execute(f"SELECT MIN(seq) FROM ({seqs})", (device_id,)).fetchone()[0]
    gaps = [(1, first - 1)] if first is not None and first > 1 else []
    return gaps + [(a, b) for a, b in rows]
