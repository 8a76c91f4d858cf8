"""The evidence log: every stored event appended to a Merkle tree in the manner of RFC 6962.

Each stored event row becomes a leaf: ``leaf_hash(leaf_data(row))`` where ``leaf_data`` is a canonical
encoding of every column that matters as evidence (the device's signed body and signature included).
The log is appended in the same transaction as the event, so a receipt can name the record's index.
Signed tree heads (STH) commit to the log's size and root; a later head must be consistent with an
earlier one (the log only grew), which an outside party checks with a consistency proof.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from protocol.signing import SigningKey, VerifyKey
from server import merkle

#: Prefix of a leaf's data; a new layout gets a new prefix.
LEAF_PREFIX = b"FE-EVIDENCE-LEAF-1\n"
#: Prefix of the bytes a tree head's signature covers.
STH_PREFIX = b"FE-TREE-HEAD-1\n"
#: Event columns a leaf commits to, in this order.
LEAF_COLUMNS = ("event_id", "device_id", "seq", "type", "device_time_ms", "clock_error_ms", "received_ms", "stored_ms", "wire_format", "body", "sig")
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
    """Appends to the log inside the caller's transaction; the frontier makes each append O(log n)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT frontier FROM log_state WHERE id = 1").fetchone()
        self.frontier = merkle.Frontier.from_bytes(bytes(row[0])) if row else merkle.Frontier()

    def append(self, db: sqlite3.Connection, event_id: str, row: Sequence[Any], now_ms: int) -> int:
        """Append one event row; returns its index."""
        leaf = row_leaf_hash(row)
        index = self.frontier.size
        db.execute("INSERT INTO evidence_log(idx, event_id, leaf_hash, appended_ms) VALUES (?, ?, ?, ?)", (index, event_id, leaf, now_ms))
        self.frontier.append(leaf)
        return index

    def save(self, db: sqlite3.Connection) -> None:
        """Persist the frontier (in the same transaction as the appends)."""
        db.execute(
            "INSERT INTO log_state(id, frontier, size) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET frontier = excluded.frontier, size = excluded.size",
            (self.frontier.to_bytes(), self.frontier.size),
        )


def index_of(db: sqlite3.Connection, event_id: str) -> int | None:
    """An event's index in the log."""
    row = db.execute("SELECT idx FROM evidence_log WHERE event_id = ?", (event_id,)).fetchone()
    return None if row is None else int(row[0])


def leaf_hashes(db: sqlite3.Connection, size: int | None = None) -> list[bytes]:
    """The log's leaf hashes in order (the first ``size``)."""
    sql = "SELECT leaf_hash FROM evidence_log ORDER BY idx" + ("" if size is None else " LIMIT ?")
    return [bytes(r[0]) for r in db.execute(sql, () if size is None else (size,))]


def sign_tree_head(db: sqlite3.Connection, key: SigningKey, now_ms: int | None = None) -> TreeHead:
    """Sign and record a tree head for the log as it is now (call inside a write transaction)."""
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
    log = EvidenceLog(db)
    root = log.frontier.root()
    sth = TreeHead(
        tree_size=log.frontier.size, timestamp_ms=ts, root_hash=root.hex(), signature=key.sign(sth_bytes(log.frontier.size, ts, root)).hex(), public_key=key.public_hex
    )
    db.execute(
        "INSERT OR IGNORE INTO tree_heads(tree_size, timestamp_ms, root_hash, signature) VALUES (?, ?, ?, ?)",
        (sth.tree_size, ts, root, bytes.fromhex(sth.signature)),
    )
    return sth


def latest_tree_head(db: sqlite3.Connection, public_key: str) -> TreeHead | None:
    """The most recent signed tree head."""
    row = db.execute("SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads ORDER BY timestamp_ms DESC, tree_size DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return TreeHead(tree_size=row[0], timestamp_ms=row[1], root_hash=bytes(row[2]).hex(), signature=bytes(row[3]).hex(), public_key=public_key)


def tree_heads(db: sqlite3.Connection, public_key: str) -> Iterable[TreeHead]:
    """Every recorded tree head, oldest first."""
    for size, ts, root, sig in db.execute("SELECT tree_size, timestamp_ms, root_hash, signature FROM tree_heads ORDER BY timestamp_ms, tree_size"):
        yield TreeHead(tree_size=size, timestamp_ms=ts, root_hash=bytes(root).hex(), signature=bytes(sig).hex(), public_key=public_key)
