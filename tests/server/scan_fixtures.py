"""Scan-to-inspect rules on a real database, on both backends: seeded registers with codes issued, emptied between
examples, and the means to run two transactions against each other as two server processes would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from protocol.config import load_toml
from protocol.decision import DAY_MS, Policy
from server.rules.codes import issue_code
from server.storage.engine import Backend, Storage, Tx, backend_of, sql, sqlite_connect, sqlite_transaction, storage_for
from tests.server.conftest import FRAGILE, GOOD, NOW_MS, PLAIN

POLICY = load_toml(Path(__file__).resolve().parents[2] / "server" / "policy.toml", Policy)
ENTERPRISES = [PLAIN, GOOD, FRAGILE]
T = TypeVar("T")

_ASSIGNMENT = sql("""
    INSERT INTO exception_bases(kind, reference, credit_code, agency_id, issued_by, valid_from_ms, valid_to_ms, created_by, created_ms)
    VALUES ('superior_assignment', 'ASSIGN-1', :credit_code, 'SAMR', '市局', :since, :until, 'test', :now)
""")
#: What scans leave behind, emptied between examples (children first).
_CLEAR = [sql(f"DELETE FROM {t}") for t in ("exception_reviews", "provisional_decisions", "alerts", "scans", "inspection_parts", "inspections")]


@dataclass
class Registers:
    """A seeded database with an assignment registered and every enterprise's code issued."""

    url: str
    store: Storage
    texts: dict[str, str]

    def clear(self) -> None:
        """Forget every scan, inspection and alert (the registers and codes stay)."""
        with self.store.writing() as tx:
            for stmt in _CLEAR:
                tx.run(stmt)


@pytest.fixture
def registers(seeded_url: str, tmp_path: Path) -> Registers:
    store = storage_for(seeded_url)
    with store.writing() as tx:
        tx.run(_ASSIGNMENT, credit_code=PLAIN, since=NOW_MS - DAY_MS, until=NOW_MS + 90 * DAY_MS, now=NOW_MS)
        texts = {c: issue_code(tx, tmp_path / "server", c)[0] for c in ENTERPRISES}
    return Registers(seeded_url, store, texts)


@contextmanager
def own_transaction(url: str) -> Iterator[Tx]:
    """A write transaction on a connection of its own, as another server process would have it: no pool and no
    lock of this process between two of them, only the database."""
    if backend_of(url) is Backend.SQLITE:
        con = sqlite_connect(url)
        try:
            with sqlite_transaction(con):
                yield Tx(con, Backend.SQLITE)
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg, pg.transaction():
            yield Tx(pg, Backend.POSTGRES)


def race(*jobs: Callable[[Tx], T], url: str) -> list[T]:
    """Run each job in its own thread and transaction (own_transaction), all released at once; their results."""
    barrier = threading.Barrier(len(jobs))
    results: list[T] = [None] * len(jobs)  # type: ignore[list-item]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(10)
            with own_transaction(url) as tx:
                results[n] = jobs[n](tx)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def interleave(first: Callable[[Tx], object], second: Callable[[Tx], object], url: str) -> None:
    """``first`` runs in a transaction left open while ``second`` runs in another one (its own thread), then
    ``first`` commits: the order two processes would produce when the second starts before the first commits."""
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            with own_transaction(url) as tx:
                second(tx)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    with own_transaction(url) as tx:
        first(tx)
        t = threading.Thread(target=run_second)
        t.start()
        t.join(0.3)  # the second does what it can before the first commits (or waits for it)
    t.join(30)
    assert not errors and not t.is_alive(), errors
