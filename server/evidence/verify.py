"""``fe-server verify``: recompute the evidence log from the database and report every tampering.

What is checked:
- every event row against its leaf in the log: a row changed after the fact (its leaf differs), added
  behind the server's back (no leaf), or removed (a leaf without its row); the same for the server's own records
  (findings, letters, replies: server/evidence/records.py);
- the log itself against every signed tree head: the root recomputed at each head's size must match,
  and its signature must be the server's (so rewriting the log along with the rows is caught too);
- optionally every row's device signature (``--signatures``; ~0.1 ms a row);
- each device's chain: every event's ``prev_hash`` against the body of its predecessor.
Rows removed by the retention job are listed in ``retention_removed`` and are not tampering.
"""

from __future__ import annotations

import hashlib
import json
import time

import msgspec

from protocol.codec import ProtocolError, decode_device_body
from protocol.signing import VerifyKey
from protocol import merkle
from server.evidence.log import LEAF_PREFIX, tree_heads
from server.evidence.records import Record
from server.storage import evidence as evstore
from server.storage import records as records_store
from server.storage.engine import Tx


class RowProblem(msgspec.Struct, frozen=True, kw_only=True):
    """One record that is not as it was logged."""

    problem: str  # changed | added | removed | forged | body_json_changed
    event_id: str
    log_index: int | None = None
    device_id: str | None = None
    seq: int | None = None
    detail: str = ""


class HeadCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head checked against the log."""

    tree_size: int
    timestamp_ms: int
    root_matches: bool
    signature_valid: bool


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """One device's chain of events."""

    device_id: str
    events: int
    verified_links: int
    broken_at: list[int]  # seq whose prev_hash does not match the stored predecessor's body
    missing_predecessor: list[int]  # seq whose predecessor never arrived (deleted on the device, or lost)
    predecessor_removed_by_policy: int  # links that cannot be checked because retention removed the predecessor
    restarts: list[int]  # seq > 1 without prev_hash (a new outbox after a device alarm)


class VerifyReport(msgspec.Struct, kw_only=True):
    """Everything ``fe-server verify`` found."""

    ok: bool
    events: int
    log_size: int
    records: int = 0  # the server's own records (findings, letters, ...) checked against their leaves
    problems: list[RowProblem]
    tree_heads: list[HeadCheck]
    chains: list[ChainReport]
    signatures_checked: bool
    seconds: float


def _same_content(body: bytes, fmt: str, body_json: str) -> bool:
    """The stored decoded copy says what the signed body says (fields added by later schemas aside)."""
    try:
        decoded_msg = decode_device_body(body, fmt)  # type: ignore[arg-type]
    except ProtocolError:
        return False
    if msgspec.json.encode(decoded_msg) == body_json.encode():  # the copy as the ingest wrote it: the usual case
        return True
    try:
        stored = json.loads(body_json)
    except json.JSONDecodeError:
        return False
    decoded = msgspec.to_builtins(decoded_msg)
    return isinstance(stored, dict) and all(decoded.get(k) == v for k, v in stored.items())


#: Events per range a worker checks (ranges of the (device_id, seq) key, so a device's chain is walked in order).
RANGE_EVENTS = 50_000
_sha256 = hashlib.sha256
_LEAF_HEAD = b"\x00" + LEAF_PREFIX  # merkle.leaf_hash(leaf_data(row)) without the intermediate objects
_leaf_encode = msgspec.json.Encoder().encode


class _Part(msgspec.Struct, array_like=True):
    """What one range of events found: its row problems, and each device's part of its chain. The check of a
    device's first event in the range needs its predecessor, which may be in the range before: it is left to
    ``_merge`` as (seq, link, predecessor removed by policy)."""

    events: int
    problems: list[RowProblem]
    # device_id -> [first seq, first link, first's predecessor removed by policy, events, verified, by policy,
    #               broken, missing, restarts, last seq, last body hash]
    chains: dict[str, list]


def _scan(tx: Tx, lo: tuple[str, int] | None, hi: tuple[str, int] | None, signatures: bool) -> _Part:
    """Check the events with lo <= (device_id, seq) < hi: leaf, decoded copy, signature, and chain links."""
    keys = {d: VerifyKey.from_hex(k) for d, k in evstore.device_keys(tx)} if signatures else {}
    problems: list[RowProblem] = []
    chains: dict[str, list] = {}
    n = 0
    cur: list | None = None
    cur_device = None
    removed: set[int] = set()
    prev_seq = prev_hash = None
    key = None
    for row in evstore.events_in_range(tx, lo, hi):
        n += 1
        event_id, device_id, seq = row[0], row[1], row[2]
        body, link, idx, leaf = row[9], row[12], row[13], row[14]
        if idx is None:
            problems.append(RowProblem(problem="added", event_id=event_id, device_id=device_id, seq=seq, detail="row is not in the evidence log"))
        elif _sha256(_LEAF_HEAD + _leaf_encode(row[:11])).digest() != leaf:
            problems.append(RowProblem(problem="changed", event_id=event_id, log_index=idx, device_id=device_id, seq=seq, detail="row differs from its logged leaf"))
        if not _same_content(body, row[8], row[11]):
            problems.append(RowProblem(problem="body_json_changed", event_id=event_id, device_id=device_id, seq=seq, detail="decoded copy differs from the signed body"))
        if device_id != cur_device:
            cur_device, key = device_id, keys.get(device_id)
            removed = evstore.removed_seqs(tx, device_id)
            cur = chains[device_id] = [seq, link, seq - 1 in removed, 0, 0, 0, [], [], [], None, None]
        elif seq > 1:
            if link is None:
                cur[8].append(seq)  # type: ignore[index]
            elif prev_seq != seq - 1:
                if seq - 1 in removed:
                    cur[5] += 1  # type: ignore[index]
                else:
                    cur[7].append(seq)  # type: ignore[index]
            elif link == prev_hash:
                cur[4] += 1  # type: ignore[index]
            else:
                cur[6].append(seq)  # type: ignore[index]
        cur[3] += 1  # type: ignore[index]
        prev_seq, prev_hash = seq, _sha256(body).hexdigest()
        cur[9], cur[10] = prev_seq, prev_hash  # type: ignore[index]
        if signatures and (key is None or not key.verify(body, row[10])):
            problems.append(RowProblem(problem="forged", event_id=event_id, device_id=device_id, seq=seq, detail="device signature does not verify"))
    return _Part(events=n, problems=problems, chains=chains)


def _merge(parts: list[_Part]) -> tuple[int, list[RowProblem], list[ChainReport]]:
    """The parts of consecutive ranges, in key order, as one result (chains joined across range ends)."""
    n = 0
    problems: list[RowProblem] = []
    acc: dict[str, list] = {}  # device -> [events, verified, by policy, broken, missing, restarts, last seq, last hash]
    for part in parts:
        n += part.events
        problems += part.problems
        for device_id, (seq, link, gap_by_policy, events, verified, by_policy, broken, missing, restarts, last_seq, last_hash) in part.chains.items():
            a = acc.setdefault(device_id, [0, 0, 0, [], [], [], None, None])
            if seq > 1:  # the range's first event of this device, against the predecessor the range before ended with
                if link is None:
                    a[5].append(seq)
                elif a[6] != seq - 1:
                    if gap_by_policy:
                        a[2] += 1
                    else:
                        a[4].append(seq)
                elif link == a[7]:
                    a[1] += 1
                else:
                    a[3].append(seq)
            a[0] += events
            a[1] += verified
            a[2] += by_policy
            a[3] += broken
            a[4] += missing
            a[5] += restarts
            a[6], a[7] = last_seq, last_hash
    chains = [
        ChainReport(device_id=d, events=a[0], verified_links=a[1], broken_at=a[3], missing_predecessor=a[4], predecessor_removed_by_policy=a[2], restarts=a[5])
        for d, a in sorted(acc.items())
    ]
    return n, problems, chains


def _scan_range(db: str, lo: tuple[str, int] | None, hi: tuple[str, int] | None, signatures: bool) -> bytes:
    """A worker process: one range, on a read connection of its own (msgpack back: fewer objects to pickle)."""
    from server import db as dbmod

    with dbmod.reading(db) as tx:
        return msgspec.msgpack.encode(_scan(tx, lo, hi, signatures))


def _records(tx: Tx) -> tuple[int, list[RowProblem]]:
    """The server's own records against their leaves: changed or added behind the server's back."""
    n, problems = 0, []
    for (record_id, kind, subject, at_ms, body), idx, leaf in records_store.records_with_leaves(tx):
        n += 1
        if idx is None:
            problems.append(RowProblem(problem="added", event_id=record_id, detail=f"server record ({kind}, {subject}) is not in the evidence log"))
        elif Record(record_id=record_id, kind=kind, subject=subject, at_ms=at_ms, body=body).leaf_hash() != leaf:
            problems.append(RowProblem(problem="changed", event_id=record_id, log_index=idx, detail=f"server record ({kind}, {subject}) differs from its logged leaf"))
    return n, problems


def _log(tx: Tx, server_public_key: str) -> tuple[list[RowProblem], list[HeadCheck], int]:
    """Removed events and records, and the log against every signed tree head."""
    problems = [RowProblem(problem="removed", event_id=event_id, log_index=idx, detail="logged record has no row") for idx, event_id in evstore.removed_leaves(tx)]
    heads = sorted(tree_heads(tx, server_public_key), key=lambda h: (h.tree_size, h.timestamp_ms))
    roots: dict[int, str] = {}
    frontier = merkle.Frontier()
    wanted = {h.tree_size for h in heads}
    if 0 in wanted:
        roots[0] = frontier.root().hex()
    for leaf in evstore.leaf_hashes(tx):
        frontier.append(leaf)
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root().hex()
    checks = [
        HeadCheck(tree_size=h.tree_size, timestamp_ms=h.timestamp_ms, root_matches=roots.get(h.tree_size) == h.root_hash, signature_valid=h.verify())
        for h in sorted(heads, key=lambda h: (h.timestamp_ms, h.tree_size))
    ]
    return problems, checks, frontier.size


def _report(tx: Tx, started: float, n: int, problems: list[RowProblem], checks: list[HeadCheck], log_size: int, chains: list[ChainReport], signatures: bool) -> VerifyReport:
    records, record_problems = _records(tx)
    problems = problems + record_problems
    ok = not problems and all(h.root_matches and h.signature_valid for h in checks) and all(not c.broken_at and not c.missing_predecessor for c in chains)
    return VerifyReport(
        ok=ok, events=n, log_size=log_size, records=records, problems=problems, tree_heads=checks, chains=chains, signatures_checked=signatures,
        seconds=round(time.perf_counter() - started, 3),
    )


def verify(tx: Tx, server_public_key: str, *, signatures: bool = False) -> VerifyReport:
    """Check the database against its evidence log, tree heads and device chains, in this process.

    Everything streams (a server-side cursor on PostgreSQL): rows are matched to their leaves in SQL and the log's
    leaves are folded into a Merkle frontier in order, so memory does not grow with the number of records.
    """
    started = time.perf_counter()
    n, problems, chains = _merge([_scan(tx, None, None, signatures)])
    removed, checks, log_size = _log(tx, server_public_key)
    return _report(tx, started, n, problems + removed, checks, log_size, chains, signatures)


def verify_parallel(db: str, server_public_key: str, *, signatures: bool = False, workers: int | None = None, range_events: int = RANGE_EVENTS) -> VerifyReport:
    """``verify`` with the events split into ranges of the (device_id, seq) key over ``workers`` processes (default:
    one per CPU), each on a read connection of its own; this process checks the log meanwhile. Same report."""
    import concurrent.futures
    import multiprocessing
    import os

    from server import db as dbmod

    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    with dbmod.reading(db) as tx:
        starts = evstore.range_starts(tx, range_events)
    bounds = [None, *starts[1:], None]
    ranges = list(zip(bounds[:-1], bounds[1:]))
    if workers <= 1 or len(ranges) <= 1:
        with dbmod.reading(db) as tx:
            return verify(tx, server_public_key, signatures=signatures)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads and open connections
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_scan_range, str(db), lo, hi, signatures) for lo, hi in ranges]
        decode = msgspec.msgpack.Decoder(_Part).decode
        with dbmod.reading(db) as tx:
            removed, checks, log_size = _log(tx, server_public_key)
            parts = [decode(f.result()) for f in futures]
            n, problems, chains = _merge(parts)
            return _report(tx, started, n, problems + removed, checks, log_size, chains, signatures)
