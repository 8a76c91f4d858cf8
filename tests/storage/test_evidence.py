"""server/storage/evidence.py on both backends: the frontier row and its lock, leaves, tree heads, what verify reads."""

from __future__ import annotations

import threading
import time

import pytest

from protocol import merkle
from server.storage import devices
from server.storage import evidence as evstore
from server.storage.engine import Backend, Storage, sql
from tests.storage.test_devices import register, row

EMPTY = merkle.Frontier().to_bytes()


def leaf(n: int) -> bytes:
    return merkle.leaf_hash(bytes([n]))


def test_a_new_log_starts_empty_and_grows(store: Storage) -> None:
    with store.reading() as tx:
        assert evstore.read_frontier(tx) is None and evstore.log_size(tx) == 0
    with store.writing() as tx:
        assert evstore.lock_frontier(tx, EMPTY) == EMPTY
        frontier = merkle.Frontier.from_leaves([leaf(0), leaf(1)])
        evstore.append_leaves(tx, 0, [("e0", leaf(0)), ("e1", leaf(1))], now_ms=7)
        evstore.save_frontier(tx, frontier.to_bytes(), frontier.size)
    with store.reading() as tx:
        assert evstore.read_frontier(tx) == frontier.to_bytes() and evstore.log_size(tx) == 2
        assert list(evstore.leaf_hashes(tx)) == [leaf(0), leaf(1)]
        assert list(evstore.leaf_hashes(tx, 1)) == [leaf(0)]
        assert evstore.indexes_of(tx, ["e1", "e0", "e1", "nope"]) == {"e0": 0, "e1": 1}
        assert evstore.indexes_of(tx, []) == {}


def test_tree_heads_once_per_size_and_time(store: Storage) -> None:
    with store.writing() as tx:
        assert evstore.latest_tree_head(tx) is None
        assert evstore.add_tree_head(tx, tree_size=2, timestamp_ms=10, root_hash=b"r" * 32, signature=b"s" * 64)
        assert not evstore.add_tree_head(tx, tree_size=2, timestamp_ms=10, root_hash=b"x" * 32, signature=b"y" * 64)
        assert evstore.add_tree_head(tx, tree_size=3, timestamp_ms=20, root_hash=b"q" * 32, signature=b"t" * 64)
        assert evstore.latest_tree_head(tx) == (3, 20, b"q" * 32, b"t" * 64)
        assert [h[:2] for h in evstore.tree_heads(tx)] == [(2, 10), (3, 20)]


def test_the_frontier_lock_makes_a_second_appender_wait(store: Storage) -> None:
    """Two ingest processes never append at one index: the second reads the frontier after the first commits."""
    if store.backend is not Backend.POSTGRES:
        pytest.skip("SQLite has one writer at a time")
    with store.writing() as tx:
        evstore.lock_frontier(tx, EMPTY)
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with store.writing() as tx:
            evstore.lock_frontier(tx, EMPTY)
            holding.set()
            time.sleep(0.3)
            evstore.save_frontier(tx, merkle.Frontier.from_leaves([leaf(0)]).to_bytes(), 1)
            order.append("first committed")

    t = threading.Thread(target=first)
    t.start()
    assert holding.wait(10)
    with store.writing() as tx:
        seen = merkle.Frontier.from_bytes(evstore.lock_frontier(tx, EMPTY))
        order.append("second read")
    t.join()
    assert order == ["first committed", "second read"] and seen.size == 1


def test_what_verify_reads(store: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evstore, "STREAM_ROWS", 2)  # PostgreSQL's server-side cursor fetches in several pages
    with store.writing() as tx:
        register(tx, "D1")
        devices.insert_events(tx, [row(2, prev_hash="h1"), row(1), row(3)])
        evstore.lock_frontier(tx, EMPTY)
        evstore.append_leaves(tx, 0, [("D1-e1", leaf(0)), ("D1-e2", leaf(1)), ("gone", leaf(2)), ("policy", leaf(3))], now_ms=1)
        tx.run(sql("INSERT INTO retention_removed(event_id, device_id, seq, log_index, type, removed_ms, rule) VALUES ('policy', 'D1', 9, 3, 't', 0, 'r')"))
    with store.reading() as tx:
        rows = list(evstore.events_with_leaves(tx))
        assert [(r[0], r[-2]) for r in rows] == [("D1-e1", 0), ("D1-e2", 1), ("D1-e3", None)]
        assert bytes(rows[0][-1]) == leaf(0) and rows[0][:3] == ("D1-e1", "D1", 1) and bytes(rows[0][9]) == b"D1-1"
        assert evstore.removed_leaves(tx) == [(2, "gone")]
        assert list(evstore.leaf_hashes(tx)) == [leaf(i) for i in range(4)]
        assert evstore.device_keys(tx) == [("D1", "key-D1")]
        assert list(evstore.chain(tx, "D1")) == [(1, None, b"D1-1"), (2, "h1", b"D1-2"), (3, None, b"D1-3")]
        assert evstore.removed_seqs(tx, "D1") == {9}
        got = evstore.leaf_row(tx, "D1-e2")
        assert got is not None and got[:3] == ("D1-e2", "D1", 2) and len(got) == len(evstore.LEAF_COLUMNS)
        assert evstore.leaf_row(tx, "nope") is None
