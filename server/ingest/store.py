"""Validate a batch of MQTT messages and store its events inside the ingest's transaction, exactly once per event.

Order of checks for each message: size, envelope, topic, registered and not revoked device (of the
topic), signature (verified before the body is parsed), schema, device id vs topic. A message failing
any of them goes to the ``rejected`` table with its reason, size, SHA-256 and first bytes (bounded:
see ``Rejects``) and is never receipted. The register is read in each batch's transaction, so a revocation
applies from the next batch on. Dedupe lives in the database: ``event_id`` is the primary key and
``(device_id, seq)`` is unique; a resend with identical bytes is merged and receipted again.

The ingest composes one transaction (server/ingest/batch.py): ``store_events``, then the projector, then the
evidence log, locked as late as possible. The rows are
server/storage/devices.py's and server/storage/evidence.py's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocol import topics
from protocol.codec import ProtocolError, WireFormat, decode_device_body, open_envelope, read_device_body
from protocol.messages import DeviceMessage, Envelope, ReceiptItem, RejectionItem, ScanDecision, type_tag
from protocol.signing import VerifyKey
from server.ingest import clocks
from server.ingest.verify_worker import VerifyMany, verify_here
from server.rules.alerts import raise_alert
from server.storage import devices
from server.storage.devices import DeviceDelta, EventRow, RejectedRow
from server.storage.engine import Tx

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

    def __init__(self, db: object = None) -> None:
        # ``db`` is accepted for callers that make one per connection; every read names its transaction.
        self._known: dict[str, Registration] = {}

    def read(self, db: Tx, device_ids: Collection[str]) -> dict[str, Registration]:
        """The registrations of these devices (revoked ones included), in one query; remembered."""
        if not device_ids:
            return {}
        rows = devices.registrations(db, device_ids)
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


@dataclass(frozen=True, slots=True)
class _Opened:
    """A message that passed every check before its signature."""

    inc: Incoming
    fmt: WireFormat
    env: Envelope
    topic_device: str
    key: VerifyKey


def _open(inc: Incoming, registrations: Mapping[str, Registration]) -> _Opened:
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
    return _Opened(inc, fmt, env, topic_device, reg.key)


def _read(o: _Opened, verified: bool) -> _Valid:
    """Verify first, then parse: only bytes the device signed are decoded into a message."""
    if not verified:
        claimed = _claimed_device(o.env.body, o.fmt)
        if claimed is not None and claimed != o.topic_device:
            raise ProtocolError("topic_mismatch", f"message of device {claimed!r} published on the topic of device {o.topic_device!r}")
        raise ProtocolError("bad_signature", f"signature does not verify with the registered key of device {o.topic_device!r}")
    msg = read_device_body(o.env.body, o.fmt)
    if msg.device_id != o.topic_device:
        raise ProtocolError("topic_mismatch", f"message of device {msg.device_id!r} published on the topic of device {o.topic_device!r}")
    return _Valid(o.inc, o.fmt, o.env, msg)


def _check(batch: list[Incoming], registrations: Mapping[str, Registration], verify_many: VerifyMany = verify_here) -> list[_Valid | ProtocolError]:
    """Each message checked in the order the module's docstring gives; the signatures of the batch in one call."""
    opened: list[_Opened | ProtocolError] = []
    for inc in batch:
        try:
            opened.append(_open(inc, registrations))
        except ProtocolError as e:
            opened.append(e)
    to_verify = [o for o in opened if isinstance(o, _Opened)]
    verdicts = iter(verify_many([(o.key, o.env.body, o.env.sig) for o in to_verify]))
    out: list[_Valid | ProtocolError] = []
    for o in opened:
        if isinstance(o, ProtocolError):
            out.append(o)
            continue
        try:
            out.append(_read(o, next(verdicts)))
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


@dataclass(slots=True)
class Rejects:
    """The refused messages of one transaction: each kept as it comes, the totals and the bound applied once at the end."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # reason -> (messages, latest received_ms)
    newest: int = 0

    def add(
        self, tx: Tx, out: BatchOutcome, inc: Incoming, code: str, reason: str, device_id: str | None = None, event_id: str | None = None, *, whole: bool = False
    ) -> None:
        """Keep a refused message aside: its first bytes (all of them if ``whole``: authentic messages, at most the
        protocol's 64 KiB), size and SHA-256, and count it."""
        payload = inc.payload
        row = RejectedRow(
            received_ms=inc.received_ms, topic=inc.topic[:REJECTED_TOPIC_CHARS], device_id=device_id, event_id=event_id, reason_code=code, reason=reason,
            raw=payload if whole else payload[:REJECTED_PREFIX_BYTES], size=len(payload), sha256=_sha256_hex(payload),
        )  # fmt: skip
        self.newest = devices.add_rejected(tx, row)
        n, last = self.counts.get(code, (0, inc.received_ms))
        self.counts[code] = (n + 1, max(last, inc.received_ms))
        out.rejected[code] += 1

    def close(self, tx: Tx) -> None:
        """Add to the reasons' totals, and bound the rejected table below its newest row: the oldest rows lose their
        bytes, then go (the totals stay). Once per transaction: ids only grow, so the newest row's bounds cover
        every earlier one's."""
        if not self.newest:
            return
        devices.count_rejected(tx, self.counts)
        keep_bytes_above = self.newest - REJECTED_RAW_ROWS
        # Rows from before migration 10 have no SHA-256 yet: it is taken from their whole bytes before these go.
        devices.set_rejected_hashes(tx, {i: _sha256_hex(raw) for i, raw in devices.unhashed_rejected(tx, keep_bytes_above)})
        devices.drop_rejected_bytes(tx, keep_bytes_above)
        devices.delete_rejected(tx, self.newest - REJECTED_MAX_ROWS)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class RejectedCount:
    """How many messages were refused for one reason, ever (pruning and retention do not lower it)."""

    reason_code: str
    count: int
    last_ms: int


def rejected_counts(db: Tx) -> list[RejectedCount]:
    """Every reason's total of refused messages, most frequent first."""
    return [RejectedCount(*r) for r in devices.rejected_counts(db)]


#: Columns of a rejected row as the API and the CLI show it (``kept``: bytes of the payload still stored).
REJECTED_COLUMNS = ("id", "received_ms", "topic", "device_id", "event_id", "reason_code", "reason", "size", "sha256", "kept")


def recent_rejected(db: Tx, limit: int) -> list[tuple[Any, ...]]:
    """The newest rejected rows, as REJECTED_COLUMNS (no bytes)."""
    return devices.recent_rejected(db, limit)


# --------------------------------------------------------------------------- one batch, in three steps


@dataclass(frozen=True, slots=True)
class Checked:
    """A batch with its signatures checked against what the ingest last knew of its devices (before the transaction)."""

    batch: list[Incoming]
    device_of: list[str | None]
    before: dict[str, Registration]
    results: list[_Valid | ProtocolError]

    @property
    def device_ids(self) -> set[str]:
        return {d for d in self.device_of if d is not None}


def precheck(
    batch: list[Incoming], keys: DeviceKeys, read: Callable[[Callable[[Tx], dict[str, Registration]]], dict[str, Registration]], verify_many: VerifyMany = verify_here
) -> Checked:
    """Check signatures outside the write transaction (and its lock), with what the last batch read, or a fresh read
    (``read(fn)`` runs ``fn`` on a reading Tx) for devices not seen yet; ``store_events`` checks again what changed."""
    device_of = [_topic_device(inc.topic) for inc in batch]
    wanted = {d for d in device_of if d is not None}
    before = keys.remembered(wanted)
    missing = wanted - before.keys()
    if missing:
        before.update(read(lambda tx: keys.read(tx, missing)))
    return Checked(batch, device_of, before, _check(batch, before, verify_many))


@dataclass(slots=True)
class Stored:
    """What ``store_events`` did, for the projector and the evidence log: valid events in batch order, each new or a copy."""

    order: list[tuple[DeviceMessage, str]] = field(default_factory=list)  # (message, "stored" | "duplicate")
    new: list[tuple[DeviceMessage, EventRow]] = field(default_factory=list)  # batch order: the order of the log
    deltas: list[DeviceDelta] = field(default_factory=list)  # per device: counts for device_state (count_devices)


def _event_row(v: _Valid, now_ms: int) -> EventRow:
    m = v.msg
    return EventRow(
        event_id=m.event_id, device_id=m.device_id, seq=m.seq, type=type_tag(type(m)), device_time_ms=m.device_time_ms, clock_error_ms=m.clock_error_ms,
        received_ms=v.inc.received_ms, stored_ms=now_ms, wire_format=v.fmt, body=v.env.body, sig=v.env.sig, body_json=msgspec.json.encode(m).decode(),
        prev_hash=m.prev_hash, body_sha256=_sha256_hex(v.env.body),
    )  # fmt: skip


def store_events(tx: Tx, checked: Checked, keys: DeviceKeys, out: BatchOutcome, now_ms: int) -> Stored:
    """Step 1 of a batch's transaction: check what changed in the register, insert the valid events (new ones only),
    tell resends from conflicts, keep the refused messages aside, count per device (written by ``count_devices``)."""
    results = list(checked.results)
    # The truth for this batch: a revocation or a new key committed before this point applies to it.
    current = keys.read(tx, checked.device_ids)
    changed = {d for d in checked.device_ids if current.get(d) != checked.before.get(d)}
    if changed:
        again = [i for i, d in enumerate(checked.device_of) if d in changed]
        for i, result in zip(again, _check([checked.batch[i] for i in again], current), strict=True):
            results[i] = result
    rejects = Rejects()
    for inc, result in zip(checked.batch, results, strict=True):
        if isinstance(result, ProtocolError):
            rejects.add(tx, out, inc, result.code, str(result))
    valid = [r for r in results if isinstance(r, _Valid)]
    rows = [_event_row(v, now_ms) for v in valid]
    inserted = devices.insert_events(tx, rows)
    new: list[bool] = []
    for row in rows:  # a resend inside the batch is a copy of the first
        new.append(row.event_id in inserted)
        inserted.discard(row.event_id)
    bodies = devices.stored_bodies(tx, {row.event_id for row, is_new in zip(rows, new, strict=True) if not is_new})
    stored = Stored()
    per_device: dict[str, list[int]] = {}  # device -> [max seq stored now, stored, duplicates]
    for v, row, is_new in zip(valid, rows, new, strict=True):
        m = v.msg
        out.formats[m.device_id] = v.fmt
        counts = per_device.setdefault(m.device_id, [0, 0, 0])
        if is_new:
            stored.new.append((m, row))
            stored.order.append((m, "stored"))
            out.stored += 1
            counts[0] = max(counts[0], m.seq)
            counts[1] += 1
            out.delivery_delays_s.append(max(0.0, (now_ms - m.device_time_ms) / 1000))
            continue
        body = bodies.get(m.event_id)
        if body != v.env.body:
            if body is not None:
                code, reason = "event_id_conflict", f"event id {m.event_id} is already stored with different content"
            else:
                code, reason = "seq_conflict", f"sequence number {m.seq} of device {m.device_id} is already stored under another event id"
            rejects.add(tx, out, v.inc, code, reason, m.device_id, m.event_id, whole=True)  # signed by the device: kept whole
            out.rejections.setdefault(m.device_id, []).append(RejectionItem(event_id=m.event_id, seq=m.seq, reason_code=code, reason=reason))
            continue
        stored.order.append((m, "duplicate"))
        out.duplicates += 1
        counts[2] += 1
    stored.deltas = [DeviceDelta(d, *c) for d, c in per_device.items()]
    rejects.close(tx)
    return stored


def count_devices(tx: Tx, stored: Stored, now_ms: int) -> None:
    """The batch's per-device rows: clock checks and device_state counts. The ingest runs this after it has locked
    the evidence log, not with the inserts: every batch of a shared subscription touches most devices, and rows
    locked early would make the other ingest processes wait for them through this one's projection."""
    # Kept whatever its time; a suspect one is flagged. In device order, each device's events in sequence order.
    clocks.check_stored(tx, [(m, row.received_ms) for m, row in sorted(stored.new, key=lambda mr: (mr[1].device_id, mr[1].seq))], now_ms)
    devices.bump_device_state(tx, stored.deltas, now_ms)


def check_links(tx: Tx, rows: Sequence[EventRow], now_ms: int) -> None:
    """Check the hash chain at each link that has both ends stored now and one of them in ``rows``, once.

    A device's event names its predecessor's body hash (``prev_hash``). An event whose neighbour is not stored
    yet (another ingest process holds it, or it is still in the device's outbox) is not a break: that link is
    checked when the neighbour arrives. Each link is checked by the transaction that stores its second end.
    """
    by_device: defaultdict[str, dict[int, EventRow]] = defaultdict(dict)
    for row in rows:
        by_device[row.device_id][row.seq] = row
    for device_id, mine in sorted(by_device.items()):
        around = devices.links_around(tx, device_id, mine.keys())  # seq -> (prev_hash, body_sha256)
        broken: set[int] = set()
        for seq, row in mine.items():
            before = around.get(seq - 1)
            if before is not None and before[1] is not None and row.prev_hash is not None and before[1] != row.prev_hash:
                broken.add(seq)
            after = around.get(seq + 1)
            if seq + 1 not in mine and after is not None and after[0] is not None and after[0] != row.body_sha256:
                broken.add(seq + 1)  # the successor, stored earlier, names another body than this one
        for seq in sorted(broken):
            raise_alert(
                tx, "chain_break", now_ms,
                f"设备 {device_id} 的事件链在序号 {seq} 处断裂：前一事件在设备上被删除或篡改。",
                f"The event chain of device {device_id} breaks at seq {seq}: the previous event was deleted or altered on the device.",
                device_id=device_id, ref=str(seq),
            )  # fmt: skip


def sequence_gaps(db: Tx, device_id: str) -> list[tuple[int, int]]:
    """Ranges of sequence numbers the device used (below its highest stored one) that never arrived."""
    first, holes = devices.sequence_holes(db, device_id)
    return ([(1, first - 1)] if first is not None and first > 1 else []) + holes

