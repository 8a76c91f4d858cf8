"""Rows of the server's own records (``records``) and what verify reads of them with their leaves. Rows only: what a
record's leaf is and who may append what are server/evidence/records.py's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.storage.engine import Tx, sql

RECORD_COLUMNS = ("record_id", "kind", "subject", "at_ms", "body")

_INSERT = sql("INSERT INTO records(record_id, kind, subject, at_ms, body) VALUES (:record_id, :kind, :subject, :at_ms, :body)")
# In the log's order: the order the acts were done in, whatever the clocks said.
_OF_SUBJECT = sql(f"""
    SELECT {', '.join(f'r.{c}' for c in RECORD_COLUMNS)} FROM records r LEFT JOIN evidence_log l ON l.event_id = r.record_id
    WHERE r.subject = :subject ORDER BY l.idx NULLS LAST, r.at_ms, r.record_id
""")
_ONE = sql(f"SELECT {', '.join(RECORD_COLUMNS)} FROM records WHERE record_id = :record_id")
_WITH_LEAVES = sql(f"""
    SELECT {', '.join(f'r.{c}' for c in RECORD_COLUMNS)}, l.idx, l.leaf_hash
    FROM records r LEFT JOIN evidence_log l ON l.event_id = r.record_id ORDER BY r.record_id
""")


def insert_record(tx: Tx, *, record_id: str, kind: str, subject: str, at_ms: int, body: bytes) -> None:
    """Insert one record row (its leaf is appended by the caller in the same transaction)."""
    tx.run(_INSERT, record_id=record_id, kind=kind, subject=subject, at_ms=at_ms, body=body)


def _row(r: Any) -> tuple[str, str, str, int, bytes]:
    return (r[0], r[1], r[2], int(r[3]), bytes(r[4]))


def records_of(tx: Tx, subject: str) -> list[tuple[str, str, str, int, bytes]]:
    """(record_id, kind, subject, at_ms, body) of a subject's records, in the order of the log."""
    return [_row(r) for r in tx.all(_OF_SUBJECT, subject=subject)]


def record(tx: Tx, record_id: str) -> tuple[str, str, str, int, bytes] | None:
    """One record's row."""
    r = tx.one(_ONE, record_id=record_id)
    return None if r is None else _row(r)


def records_with_leaves(tx: Tx) -> Iterator[tuple[tuple[str, str, str, int, bytes], int | None, bytes | None]]:
    """Every record with its log index and leaf hash (None, None when it is not in the log)."""
    for r in tx.all(_WITH_LEAVES):
        yield _row(r), (None if r[5] is None else int(r[5])), (None if r[6] is None else bytes(r[6]))
