"""The evidence log: every stored event appended to a Merkle tree in the manner of RFC 6962.

Each stored event row becomes a leaf: ``leaf_hash(leaf_data(row))`` where ``leaf_data`` is a canonical
encoding of every column that matters as evidence (the device's signed body and signature included).
The log is appended in the same transaction as the event, so a receipt can name the record's index. Its rows
are server/storage/evidence.py's.
Signed tree heads (STH) commit to the log's size and root; a later head must be consistent with an
earlier one (the log only grew), which an outside party checks with a consistency proof.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from protocol.signing import SigningKey, VerifyKey
from protocol import merkle
from server.storage import evidence as evstore
from server.storage.engine import Tx
from server.storage.evidence import LEAF_COLUMNS as LEAF_COLUMNS  # the columns a leaf commits to, named here for callers

#: Prefix of a leaf's data; a new layout gets a new prefix.
LEAF_PREFIX = b"FE-EVIDENCE-LEAF-1\n"
#: Prefix of the bytes a tree head's signature covers.
STH_PREFIX = b"FE-TREE-HEAD-1\n"
_encoder = msgspec.json.Encoder()


class TreeHead(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head: the log had ``tree_size`` records with this root at this time."""

    tree_size: int
    timestamp_ms: int
    root_hash: str  # hex
    signature: str  # hex, Ed25519 by the server key over signed_bytes()
    public_key: str  # hex, the server key

    def signed_bytes(self) -> bytes:
        """What the signature covers: prefix, size and time (8-byte big-endian each), root."""
        return sth_bytes(self.tree_size, self.timestamp_ms, bytes.fromhex(self.root_hash))

    def verify(self, key: VerifyKey | None = None) -> bool:
        """The signature is the server's (the embedded key, or the one given)."""
        return (key or VerifyKey.from_hex(self.public_key)).verify(self.signed_bytes(), bytes.fromhex(self.signature))


def sth_bytes(tree_size: int, timestamp_ms: int, root: bytes) -> bytes:
    """The bytes a tree head's signature covers."""
    return STH_PREFIX + struct.pack(">QQ", tree_size, timestamp_ms) + root


def leaf_data(row: Sequence[Any]) -> bytes:
    """The canonical bytes of an event row (columns as in LEAF_COLUMNS)."""
    values = [bytes(v) if isinstance(v, (bytes, memoryview)) else v for v in row]
    return LEAF_PREFIX + _encoder.encode(values)


def row_leaf_hash(row: Sequence[Any]) -> bytes:
    """The Merkle leaf hash of an event row."""
    return merkle.leaf_hash(leaf_data(row))


class EvidenceLog:
    """Appends to the log inside the caller's write transaction; the frontier makes each append O(log n).

    Made inside the transaction, as late as possible: it locks the log's one state row (PostgreSQL) until the
    commit, so the appends of several ingest processes never share an index (docs/storage-seam.md §4.2).
    """

    def __init__(self, db: Tx) -> None:
        self.frontier = merkle.Frontier.from_bytes(evstore.lock_frontier(db, _EMPTY))
        self._first = self.frontier.size
        self._leaves: list[tuple[str, bytes]] = []

    def append(self, db: Tx, event_id: str, row: Sequence[Any], now_ms: int) -> int:
        """Append one event row (values in LEAF_COLUMNS order); returns its index."""
        return self.append_rows(db, [(event_id, row)], now_ms)[0]

    def append_rows(self, db: Tx, rows: Sequence[tuple[str, Sequence[Any]]], now_ms: int) -> list[int]:
        """Append event rows in this order (one statement for all); returns their indexes."""
        return self.append_leaves(db, [(event_id, row_leaf_hash(row)) for event_id, row in rows], now_ms)

    def append_leaves(self, db: Tx, leaves: Sequence[tuple[str, bytes]], now_ms: int) -> list[int]:
        """Append (id, leaf hash) pairs in this order: events' (above) or the server's records' (evidence/records.py)."""
        first = self.frontier.size
        for _, leaf in leaves:
            self.frontier.append(leaf)
        evstore.append_leaves(db, first, leaves, now_ms)
        return list(range(first, self.frontier.size))

    def save(self, db: Tx) -> None:
        """Persist the frontier (in the same transaction as the appends)."""
        evstore.save_frontier(db, self.frontier.to_bytes(), self.frontier.size)


#: The lock key processes take before deciding whether to sign a tree head.
TREE_HEAD_LOCK = "fe:tree-head"
#: The frontier of the empty log, as stored.
_EMPTY = merkle.Frontier().to_bytes()


def current_frontier(db: Tx) -> merkle.Frontier:
    """The log's frontier as committed (no lock: for reading and signing, not for appending)."""
    data = evstore.read_frontier(db)
    return merkle.Frontier() if data is None else merkle.Frontier.from_bytes(data)


def index_of(db: Tx, event_id: str) -> int | None:
    """An event's index in the log."""
    return indexes_of(db, [event_id]).get(event_id)


def indexes_of(db: Tx, event_ids: Sequence[str]) -> dict[str, int]:
    """event_id -> index in the log, for those of these events that are logged (one query)."""
    return evstore.indexes_of(db, event_ids)


def leaf_hashes(db: Tx, size: int | None = None) -> list[bytes]:
    """The log's leaf hashes in order (the first ``size``)."""
    return list(evstore.leaf_hashes(db, size))


def log_size(db: Tx) -> int:
    """How many records the evidence log holds."""
    return evstore.log_size(db)


def sign_tree_head(db: Tx, key: SigningKey, now_ms: int | None = None) -> TreeHead:
    """Sign and record a tree head for the log as it is now (call inside a write transaction)."""
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    frontier = current_frontier(db)
    root = frontier.root()
    sth = TreeHead(
        tree_size=frontier.size, timestamp_ms=ts, root_hash=root.hex(), signature=key.sign(sth_bytes(frontier.size, ts, root)).hex(), public_key=key.public_hex
    )
    evstore.add_tree_head(db, tree_size=sth.tree_size, timestamp_ms=ts, root_hash=root, signature=bytes.fromhex(sth.signature))
    return sth


def head_of_whole_log(tx: Tx, key: SigningKey) -> TreeHead:
    """The latest signed head if it covers the whole log, else a new one (call inside a write transaction; API
    processes asking at once take turns and the later ones get the first one's head)."""
    tx.lock(TREE_HEAD_LOCK)
    head = latest_tree_head(tx, key.public_hex)
    if head is not None and head.tree_size == log_size(tx):
        return head
    return sign_tree_head(tx, key)


def sign_tree_head_if_due(tx: Tx, key: SigningKey, interval_ms: int, now_ms: int | None = None) -> TreeHead | None:
    """Sign a tree head unless one was signed less than ``interval_ms`` ago (call inside a write transaction).

    Several ingest processes each find a head due: they take turns on one lock, and the later ones find the
    earlier one's head, so the cluster signs one head per interval.
    """
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    tx.lock(TREE_HEAD_LOCK)
    latest = evstore.latest_tree_head(tx)
    if latest is not None and ts - latest[1] < interval_ms:
        return None
    return sign_tree_head(tx, key, ts)


def _head(row: tuple[int, int, bytes, bytes], public_key: str) -> TreeHead:
    size, ts, root, sig = row
    return TreeHead(tree_size=size, timestamp_ms=ts, root_hash=root.hex(), signature=sig.hex(), public_key=public_key)


def latest_tree_head(db: Tx, public_key: str) -> TreeHead | None:
    """The most recent signed tree head."""
    row = evstore.latest_tree_head(db)
    return None if row is None else _head(row, public_key)


def tree_heads(db: Tx, public_key: str) -> Iterable[TreeHead]:
    """Every recorded tree head, oldest first."""
    return [_head(row, public_key) for row in evstore.tree_heads(db)]


def tree_head_of_size(db: Tx, size: int, public_key: str) -> TreeHead | None:
    """The first head signed at this size (every head signed is kept: none is ever deleted)."""
    row = evstore.tree_head_of_size(db, size)
    return None if row is None else _head(row, public_key)


def tree_head_before(db: Tx, before_ms: int, public_key: str) -> TreeHead | None:
    """The last head signed before ``before_ms``: the day's published head when that is the day's start."""
    row = evstore.tree_head_before(db, before_ms)
    return None if row is None else _head(row, public_key)
