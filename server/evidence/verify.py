"""``fe-server verify``: recompute the evidence log from the database and report every tampering.

What is checked:
- every event row against its leaf in the log: a row changed after the fact (its leaf differs), added
  behind the server's back (no leaf), or removed (a leaf without its row);
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
from server.evidence import merkle
from server.evidence.log import row_leaf_hash, tree_heads
from server.storage import evidence as evstore
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


def _chains(tx: Tx) -> list[ChainReport]:
    reports = []
    for device_id, _ in evstore.device_keys(tx):
        prev_seq, prev_hash = None, None
        n = verified = by_policy = 0
        removed = evstore.removed_seqs(tx, device_id)
        broken: list[int] = []
        missing: list[int] = []
        restarts: list[int] = []
        for seq, link, body in evstore.chain(tx, device_id):
            n += 1
            if seq > 1:
                if link is None:
                    restarts.append(seq)
                elif prev_seq != seq - 1:
                    if seq - 1 in removed:
                        by_policy += 1
                    else:
                        missing.append(seq)
                elif link == prev_hash:
                    verified += 1
                else:
                    broken.append(seq)
            prev_seq, prev_hash = seq, hashlib.sha256(body).hexdigest()
        if n:
            reports.append(ChainReport(device_id=device_id, events=n, verified_links=verified, broken_at=broken, missing_predecessor=missing, predecessor_removed_by_policy=by_policy, restarts=restarts))
    return reports


def verify(tx: Tx, server_public_key: str, *, signatures: bool = False) -> VerifyReport:
    """Check the database against its evidence log, tree heads and device chains.

    Everything streams (a server-side cursor on PostgreSQL): rows are matched to their leaves in SQL and the log's
    leaves are folded into a Merkle frontier in order, so memory does not grow with the number of records.
    """
    started = time.perf_counter()
    keys = {d: VerifyKey.from_hex(k) for d, k in evstore.device_keys(tx)} if signatures else {}
    problems: list[RowProblem] = []
    n = 0
    for *row, body_json, idx, leaf in evstore.events_with_leaves(tx):
        n += 1
        event_id, device_id, seq = row[0], row[1], row[2]
        if idx is None:
            problems.append(RowProblem(problem="added", event_id=event_id, device_id=device_id, seq=seq, detail="row is not in the evidence log"))
        elif row_leaf_hash(row) != bytes(leaf):
            problems.append(RowProblem(problem="changed", event_id=event_id, log_index=idx, device_id=device_id, seq=seq, detail="row differs from its logged leaf"))
        body, sig, fmt = bytes(row[9]), bytes(row[10]), row[8]
        if not _same_content(body, fmt, body_json):
            problems.append(RowProblem(problem="body_json_changed", event_id=event_id, device_id=device_id, seq=seq, detail="decoded copy differs from the signed body"))
        if signatures:
            key = keys.get(device_id)
            if key is None or not key.verify(body, sig):
                problems.append(RowProblem(problem="forged", event_id=event_id, device_id=device_id, seq=seq, detail="device signature does not verify"))
    problems += [RowProblem(problem="removed", event_id=event_id, log_index=idx, detail="logged record has no row") for idx, event_id in evstore.removed_leaves(tx)]
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
    chains = _chains(tx)
    ok = not problems and all(h.root_matches and h.signature_valid for h in checks) and all(not c.broken_at and not c.missing_predecessor for c in chains)
    return VerifyReport(
        ok=ok, events=n, log_size=frontier.size, problems=problems, tree_heads=checks, chains=chains, signatures_checked=signatures, seconds=round(time.perf_counter() - started, 3)
    )
