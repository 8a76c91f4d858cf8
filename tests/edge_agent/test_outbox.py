"""The durable outbox on a real SQLite file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from edge_agent.errors import DiskFull, OutboxFull
from edge_agent.outbox import SEQ_RESERVE_BLOCK, Accepted, Draft, Outbox


def draft(event_id: str, size: int = 100, low: bool = False) -> Draft:
    def build(seq: int, prev: str | None) -> tuple[str, bytes, str]:
        payload = f"{seq}:{prev}:".encode() + b"x" * size
        return "enterprise_scanned", payload, hashlib.sha256(payload).hexdigest()

    return Draft(event_id=event_id, low_priority=low, build=build)


def open_outbox(path: Path, **kw: int) -> Outbox:
    return Outbox(path, max_bytes=kw.get("max_bytes", 10**6), low_priority_max_bytes=kw.get("low", 10**6), max_page_count=kw.get("pages", 0))


def test_sequence_numbers_are_contiguous_and_survive_reopening(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    res = ob.append([draft("a"), draft("b"), draft("c")])
    assert [r.seq for r in res if isinstance(r, Accepted)] == [1, 2, 3]
    assert ob.remove_receipted([(1, "a"), (2, "b"), (3, "c")]) == 3
    ob.close()
    ob = open_outbox(tmp_path / "o.db")
    (r,) = ob.append([draft("d")])
    assert isinstance(r, Accepted) and r.seq == 4  # never reused, even with an empty outbox
    assert ob.counters()["receipted_total"] == 3


def test_same_event_id_is_stored_once(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    first, again = ob.append([draft("a"), draft("a")])
    assert isinstance(again, Accepted) and again.duplicate and again.seq == first.seq  # type: ignore[union-attr]
    assert ob.depth == 1


def test_receipt_must_match_both_seq_and_event_id(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    ob.append([draft("a"), draft("b")])
    assert ob.remove_receipted([(1, "b"), (2, "a"), (9, "a")]) == 0
    assert ob.depth == 2
    assert [r.event_id for r in ob.next_after(0, 10)] == ["a", "b"]


def test_low_priority_refused_first_then_everything_at_the_hard_limit(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db", max_bytes=1000, low=500)
    results = ob.append([draft(f"e{i}", 90) for i in range(4)])  # ~380 bytes
    assert all(isinstance(r, Accepted) for r in results)
    low = ob.append([draft("status-1", 200, low=True)])[0]
    assert isinstance(low, OutboxFull) and "low-priority" in str(low)
    high = ob.append([draft(f"x{i}", 90) for i in range(8)])
    accepted = [r for r in high if isinstance(r, Accepted)]
    refused = [r for r in high if isinstance(r, OutboxFull)]
    assert accepted and refused and "hard limit" in str(refused[0])
    assert ob.bytes <= 1000
    depth = ob.depth
    ob.remove_receipted([(1, "e0")])
    assert ob.depth == depth - 1  # nothing is ever dropped to make room; only receipts free it


def test_sqlite_full_refuses_without_losing_anything(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db", pages=12)
    outcomes = []
    for i in range(400):
        outcomes += ob.append([draft(f"e{i}", 400)])
        if isinstance(outcomes[-1], DiskFull):
            break
    assert isinstance(outcomes[-1], DiskFull)
    stored = [r for r in outcomes if isinstance(r, Accepted)]
    assert len(ob.next_after(0, 10_000)) == len(stored) == ob.depth
    assert ob.integrity_ok()
    # a batch that does not fit as a whole stores what fits
    ob.remove_receipted([(r.seq, r.event_id) for r in stored[: len(stored) // 2]])  # frees whole pages
    mixed = ob.append([draft(f"m{i}", 400) for i in range(60)])
    assert any(isinstance(r, Accepted) for r in mixed) and isinstance(mixed[-1], DiskFull)


def test_corrupt_database_is_kept_aside_and_numbers_continue_above(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = open_outbox(path)
    ob.append([draft(f"e{i}") for i in range(5)])
    ob.close()
    with open(path, "r+b") as f:  # scribble over the header and first pages
        f.write(b"\xde\xad" * 4096)
    ob = open_outbox(path)
    assert ob.recovery is not None
    aside = Path(ob.recovery.kept_aside_as)
    assert aside.exists() and aside.name.startswith("o.db.corrupt-")
    (r,) = ob.append([draft("after")])
    assert isinstance(r, Accepted) and r.seq > 5 and r.seq > SEQ_RESERVE_BLOCK - 1
    assert ob.integrity_ok()
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(aside).execute("SELECT * FROM outbox").fetchall()


def test_each_event_carries_the_hash_of_the_previous_one_across_restarts(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    ob.append([draft("a"), draft("b"), draft("a")])  # the repeated id is a duplicate: it does not advance the chain
    ob.close()
    ob = open_outbox(tmp_path / "o.db")
    ob.append([draft("c")])
    rows = ob.next_after(0, 10)
    assert [r.event_id for r in rows] == ["a", "b", "c"]
    assert rows[0].payload.startswith(b"1:None:")
    for prev, row in zip(rows, rows[1:]):
        assert row.payload.startswith(f"{row.seq}:{hashlib.sha256(prev.payload).hexdigest()}:".encode())
