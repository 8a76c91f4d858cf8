"""Two write transactions that overlap: the second starts while the first, having done its work, still holds its
transaction open. What a race test of a rule needs (two agencies, two officers, two clicks at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from server.storage.engine import Backend, Storage, Tx, sql
from tests.support.waiting import wait_for

#: Locks of this database's sessions that someone waits for (PostgreSQL).
_WAITING = sql(
    """SELECT count(*) FROM pg_locks
       WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())"""
)


def overlapping_writes(store: Storage, first: Callable[[Tx], Any], second: Callable[[Tx], Any], timeout: float = 10.0) -> list[Any]:
    """Run ``first`` and ``second`` in two write transactions on two threads; ``second`` starts once ``first`` has
    run, and ``first`` commits only once ``second`` waits for a lock or is done (PostgreSQL; SQLite's writers take
    turns anyway). Each outcome is the function's result, or the exception it raised."""
    outcomes: list[Any] = [None, None]
    first_ran = threading.Event()

    def run_first() -> None:
        try:
            with store.writing() as tx:
                outcomes[0] = first(tx)
                first_ran.set()
                if store.backend is Backend.POSTGRES:
                    wait_for(lambda: not t2.is_alive() or store.read(lambda r: r.scalar(_WAITING)), timeout, message="the second writer")
        except Exception as e:  # noqa: BLE001 - the outcome under test
            outcomes[0] = e
        finally:
            first_ran.set()

    def run_second() -> None:
        first_ran.wait(timeout)
        try:
            outcomes[1] = store.write(second)
        except Exception as e:  # noqa: BLE001 - the outcome under test
            outcomes[1] = e

    t1, t2 = threading.Thread(target=run_first), threading.Thread(target=run_second)
    t2.start()
    t1.start()
    for t in (t1, t2):
        t.join(timeout * 3)
        assert not t.is_alive(), "a writer hangs"
    return outcomes
