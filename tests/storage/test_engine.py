"""The storage seam's engine on both backends: statements, parameters, transactions, locks, retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from server.storage.engine import Backend, Retry, Storage, Tx, backend_of, redact, sql
from server.storage.statements import _to_pyformat

INSERT_FIELD = sql("INSERT INTO fields(field_id, name, name_en) VALUES (:id, :name, :en)")
FIELD_NAMES = sql("SELECT field_id, name FROM fields WHERE field_id IN (:ids) ORDER BY field_id")
COUNT_FIELDS = sql("SELECT count(*) FROM fields")


def test_the_backend_is_told_by_the_url() -> None:
    assert backend_of("/var/lib/fe/server.db") is Backend.SQLITE
    assert backend_of("postgresql://fe@db:5432/fe") is Backend.POSTGRES
    assert backend_of("postgres://fe@db/fe") is Backend.POSTGRES
    assert redact("postgresql://fe:s3cret@db:5432/fe") == "postgresql://fe:***@db:5432/fe"


def test_named_parameters_become_pyformat_outside_strings_and_casts() -> None:
    text = "SELECT ':not', \"a:b\", x::text, y LIKE '10%' || :pat, :a_1 FROM t WHERE z % 2 = 0 AND w = :w"
    assert _to_pyformat(text) == (
        "SELECT ':not', \"a:b\", x::text, y LIKE '10%%' || %(pat)s, %(a_1)s FROM t WHERE z %% 2 = 0 AND w = %(w)s"
    )


def test_rows_go_in_and_come_out_alike(store: Storage) -> None:
    with store.writing() as tx:
        tx.many(INSERT_FIELD, [{"id": f"f{i}", "name": f"领域{i}", "en": "x"} for i in range(5)])
    with store.reading() as tx:
        assert tx.scalar(COUNT_FIELDS) == 5
        assert tx.all(FIELD_NAMES, ids=["f1", "f3", "nope"]) == [("f1", "领域1"), ("f3", "领域3")]
        assert tx.all(FIELD_NAMES, ids=[]) == []
        assert tx.one(FIELD_NAMES, ids=("f4",)) == ("f4", "领域4")
        assert tx.scalar(sql("SELECT greatest(2, :x, NULL), least(2, :x)"), x=7) == 7


def test_a_failed_write_leaves_nothing_behind(store: Storage) -> None:
    with pytest.raises(RuntimeError), store.writing() as tx:
        tx.run(INSERT_FIELD, id="f1", name="一", en="x")
        raise RuntimeError("boom")
    with pytest.raises(Exception, match="(?i)unique|duplicate"), store.writing() as tx:
        tx.run(INSERT_FIELD, id="f2", name="二", en="x")
        tx.run(INSERT_FIELD, id="f2", name="二", en="x")
    assert store.read(lambda tx: tx.scalar(COUNT_FIELDS)) == 0


def test_the_read_path_cannot_write(store: Storage) -> None:
    with pytest.raises(Exception, match="(?i)read.?only|readonly"), store.reading() as tx:
        tx.run(INSERT_FIELD, id="f1", name="一", en="x")


def test_a_lock_serialises_two_writers_of_one_key(store: Storage) -> None:
    """What keeps two agencies' scans of one enterprise from both opening an inspection (docs/storage-seam.md §4.1)."""
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with store.writing() as tx:
            tx.lock("fe:scan:E1")
            first_holds.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    assert first_holds.wait(10)
    with store.writing() as tx:
        tx.lock("fe:scan:E1")
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]


def test_a_deadlock_is_run_again_whole(store: Storage) -> None:
    """Two writers taking two rows in opposite orders: the database aborts one, ``write`` runs it again."""
    if store.backend is not Backend.POSTGRES:
        pytest.skip("SQLite has one writer at a time: no deadlock to detect")
    with store.writing() as tx:
        tx.many(INSERT_FIELD, [{"id": "a", "name": "A", "en": "x"}, {"id": "b", "name": "B", "en": "x"}])
    touch = sql("UPDATE fields SET name = name || '+' WHERE field_id = :id")
    barrier = threading.Barrier(2)
    attempts = {"x": 0, "y": 0}

    def swap(who: str, ids: tuple[str, str]) -> None:
        def fn(tx: Tx) -> None:
            attempts[who] += 1
            tx.run(touch, id=ids[0])
            if attempts[who] == 1:
                barrier.wait(10)
            tx.run(touch, id=ids[1])

        store.write(fn)

    threads = [threading.Thread(target=swap, args=("x", ("a", "b"))), threading.Thread(target=swap, args=("y", ("b", "a")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(attempts.values()) == [1, 2]
    names = store.read(lambda tx: tx.all(sql("SELECT name FROM fields ORDER BY field_id")))
    assert names == [("A++",), ("B++",)]


def test_giving_up_says_so(store: Storage) -> None:
    if store.backend is not Backend.POSTGRES:
        pytest.skip("no retries on SQLite")
    import psycopg

    def always_fails(tx: Tx) -> None:
        tx.raw.execute("SELECT 1")
        raise psycopg.errors.SerializationFailure("could not serialize access")

    with pytest.raises(Retry, match="gave up after 3 attempts"):
        store.write(always_fails, retries=2)


def test_a_current_database_is_recognised_without_alembic(db_url: str, tmp_path: Path) -> None:
    """Every command migrates first: on a database at the head revision that costs one short read, not Alembic."""
    import subprocess
    import sys

    code = (
        "import sys; from server import db; db.migrate(sys.argv[1]); "
        "assert 'alembic' not in sys.modules and 'sqlalchemy' not in sys.modules, 'Alembic was loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr


def test_a_list_longer_than_the_parameter_limits_is_bound_whole(store: Storage) -> None:
    """70,000 values: past SQLite's 32,766 and PostgreSQL's 65,535 parameters a statement."""
    with store.writing() as tx:
        tx.many(INSERT_FIELD, [{"id": f"f{i}", "name": str(i), "en": "x"} for i in range(3)])
    many = [f"f{i}" for i in range(1, 70_000)]
    with store.reading() as tx:
        assert tx.all(FIELD_NAMES, ids=many) == [("f1", "1"), ("f2", "2")]
        assert tx.all(sql("SELECT field_id FROM fields WHERE field_id NOT IN (:ids) ORDER BY field_id"), ids=many) == [("f0",)]
