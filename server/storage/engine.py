"""Connections and transactions for both backends: ``Storage`` (opened by path or URL), ``Tx``, ``sql()``.

Every query of the server is a ``Statement``: one SQL text in the subset SQLite and PostgreSQL share, with named
parameters (``:name``), written once in the storage package's domain modules and run on the driver's own cursor
(sqlite3, or psycopg 3 with its pool). SQLite takes ``:name`` as it is; for PostgreSQL the text is rewritten once
to psycopg's ``%(name)s`` and cached. A parameter whose value is a list, tuple or set is expanded in place, so
``IN (:ids)`` takes any number of values. ``greatest()`` and ``least()`` exist on SQLite too (registered on each
connection) so that no query needs a dialect branch for them. docs/storage-seam.md §2-§4 says why not SQLAlchemy's
execution layer at run time (2-3× slower on SQLite's hot path); SQLAlchemy describes the schema and Alembic
migrates it (schema.py, migrations/).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from server.storage.statements import _EXPANDABLE_TYPES, POSTGRES_SCHEMES, Backend, Statement, _expand, backend_of, sql

T = TypeVar("T")


class StorageError(Exception):
    """Base of the seam's own errors."""


class Retry(StorageError):
    """A write transaction lost a race the database detected (serialization failure, deadlock) too many times."""


# --- transactions -----------------------------------------------------------------------------------------------


class Tx:
    """A connection inside one transaction (or a read-only connection), handed to the storage package's functions.

    ``run`` returns the driver's cursor (rows are tuples, in the order of the SELECT list). Only the storage
    package runs statements; the rest of the server passes a Tx through to it.
    """

    __slots__ = ("raw", "backend")

    def __init__(self, raw: Any, backend: Backend = Backend.SQLITE) -> None:
        self.raw = raw
        self.backend = backend

    def run(self, stmt: Statement, params: Mapping[str, Any] | None = None, /, **kw: Any) -> Any:
        p = {**params, **kw} if params and kw else (params or kw)
        text = stmt.for_backend(self.backend)
        if not _EXPANDABLE_TYPES.isdisjoint(map(type, p.values())):  # a list parameter (a subclass is not expanded)
            text, p = _expand(text, p, self.backend)
        return self.raw.execute(text, p)

    def one(self, stmt: Statement, params: Mapping[str, Any] | None = None, /, **kw: Any) -> tuple[Any, ...] | None:
        """The first row, or None."""
        row: tuple[Any, ...] | None = self.run(stmt, params, **kw).fetchone()
        return row

    def all(self, stmt: Statement, params: Mapping[str, Any] | None = None, /, **kw: Any) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.run(stmt, params, **kw).fetchall()
        return rows

    def scalar(self, stmt: Statement, params: Mapping[str, Any] | None = None, /, **kw: Any) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.run(stmt, params, **kw).fetchone()
        return None if row is None else row[0]

    def many(self, stmt: Statement, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run ``stmt`` once per parameter set (psycopg pipelines them: one round trip for all)."""
        text = stmt.for_backend(self.backend)
        if self.backend is Backend.SQLITE:
            self.raw.executemany(text, rows)
        else:
            rows = list(rows)
            if rows:
                with self.raw.cursor() as cur:
                    cur.executemany(text, rows)

    def lock(self, key: str) -> None:
        """Serialise this transaction with every other one that takes the same key, until it ends.

        PostgreSQL: a transaction-scoped advisory lock on a 64-bit hash of ``key`` (a collision only makes two
        keys wait for each other). SQLite: nothing to do, a write transaction already excludes every other writer.
        """
        if self.backend is Backend.POSTGRES:
            self.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%(k)s, 0))", {"k": key})


# --- SQLite -----------------------------------------------------------------------------------------------------

#: How long a SQLite connection waits for another process's write transaction.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _greatest(*values: Any) -> Any:
    present = [v for v in values if v is not None]  # PostgreSQL's greatest() ignores NULLs
    return max(present) if present else None


def _least(*values: Any) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def readonly_uri(path: str | Path) -> str:
    """A read-only SQLite URI for a file; the path is escaped (a '#', '?' or '%' in it would cut a bare one)."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def sqlite_connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the server's settings: WAL, synchronous=FULL (records are evidence), foreign keys, and
    PostgreSQL's greatest()/least()."""
    if readonly:
        con = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None, check_same_thread=False)
    else:
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA journal_size_limit=67108864")  # a bulk import must not leave a huge WAL file behind
    con.execute("PRAGMA foreign_keys=ON")
    con.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    con.create_function("greatest", -1, _greatest, deterministic=True)
    con.create_function("least", -1, _least, deterministic=True)
    return con


@contextmanager
def sqlite_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (SQLite may already have rolled back itself)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


_local = threading.local()
#: Connections a thread keeps open (a read-only and a writing one per database).
KEPT_PER_THREAD = 4


def _kept(path: str, readonly: bool) -> sqlite3.Connection:
    """This thread's connection to ``path`` (opening one costs more than a small query)."""
    cache: dict[tuple[str, bool], sqlite3.Connection] = _local.__dict__.setdefault("connections", {})
    key = (path, readonly)
    con = cache.get(key)
    if con is None:
        while len(cache) >= KEPT_PER_THREAD:  # a server has one database; tests open many: close the oldest
            cache.pop(next(iter(cache))).close()
        con = cache[key] = sqlite_connect(path, readonly=readonly)
    return con


# --- the store ----------------------------------------------------------------------------------------------------


class Storage:
    """The database behind the server, by path (SQLite) or ``postgresql://`` URL; see ``open``."""

    backend: Backend

    def __init__(self, db: str | Path) -> None:
        self.db = str(db)
        self.backend = backend_of(db)

    @staticmethod
    def open(db: str | Path) -> Storage:
        return PostgresStorage(str(db)) if backend_of(db) is Backend.POSTGRES else SqliteStorage(db)

    @contextmanager
    def writing(self) -> Iterator[Tx]:
        """One write transaction, committed at the end (rolled back on error)."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only connection (each statement sees what is committed when it starts)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def write(self, fn: Callable[[Tx], T], *, retries: int = 5) -> T:
        """``fn`` in one write transaction; on PostgreSQL run again from the start when the database aborts it for
        a serialization failure or a deadlock, so ``fn`` must do nothing outside the database."""
        with self.writing() as tx:
            return fn(tx)

    def read(self, fn: Callable[[Tx], T]) -> T:
        with self.reading() as tx:
            return fn(tx)

    def close(self) -> None:
        """Release what the store holds (PostgreSQL: its pools)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact(self.db)}>"


def redact(text: str) -> str:
    """``text`` (a database URL, or a message quoting one) with every password replaced by ***: the ``user:password@``
    of a URL, a ``password=`` query parameter, and libpq's ``password=`` keyword."""
    text = re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", text)
    return re.sub(r"(?i)(\bpassword=)('[^']*'|[^&\s]*)", r"\1***", text)


class SqliteStorage(Storage):
    """One SQLite file: per-thread kept connections, one write lock per file in this process (waiting on it is a
    wake-up, where SQLite's busy handler would sleep and poll), BEGIN IMMEDIATE across processes."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, db: str | Path) -> None:
        super().__init__(db)
        with self._locks_guard:
            self._lock = self._locks.setdefault(self.db, threading.Lock())

    @contextmanager
    def writing(self) -> Iterator[Tx]:
        with self._lock, sqlite_transaction(_kept(self.db, readonly=False)) as con:
            yield Tx(con, Backend.SQLITE)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        yield Tx(_kept(self.db, readonly=True), Backend.SQLITE)


#: SQLSTATEs after which a whole write transaction is worth running again.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


class PostgresStorage(Storage):
    """A PostgreSQL database through two psycopg pools: one for write transactions, one whose sessions are read-only
    (so a read path cannot write by mistake; it may later point at a replica)."""

    def __init__(self, db: str, *, max_size: int | None = None) -> None:
        super().__init__(db)
        from psycopg_pool import ConnectionPool  # only a PostgreSQL deployment loads it

        size = max_size or max(4, (os.cpu_count() or 2) * 2 + 1)
        # check: a connection is tried before it is handed out, so after a PostgreSQL restart no caller gets a dead one
        # (each would fail once more: the ingest would pause and alert again).
        common: dict[str, Any] = {"min_size": 1, "max_size": size, "kwargs": {"autocommit": True}, "open": True, "check": ConnectionPool.check_connection}
        self._write_pool = ConnectionPool(self.db, name="fe-write", **common)
        self._read_pool = ConnectionPool(self.db, name="fe-read", configure=_read_only, **common)

    @contextmanager
    def writing(self) -> Iterator[Tx]:
        with self._write_pool.connection() as con, con.transaction():
            yield Tx(con, Backend.POSTGRES)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._read_pool.connection() as con:
            yield Tx(con, Backend.POSTGRES)

    def write(self, fn: Callable[[Tx], T], *, retries: int = 5) -> T:
        import psycopg

        for attempt in range(retries + 1):
            try:
                with self.writing() as tx:
                    return fn(tx)
            except psycopg.errors.Error as e:
                if e.sqlstate not in _RETRY_SQLSTATES or attempt == retries:
                    if e.sqlstate in _RETRY_SQLSTATES:
                        raise Retry(f"gave up after {retries + 1} attempts: {e}") from e
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._write_pool.close()
        self._read_pool.close()


def _read_only(con: Any) -> None:
    con.execute("SET default_transaction_read_only = on")


# --- one store per database in this process ----------------------------------------------------------------------

_stores: dict[str, Storage] = {}
_stores_guard = threading.Lock()


def storage_for(db: str | Path) -> Storage:
    """This process's store of ``db`` (opened at first use, kept until ``close_storage``)."""
    key = str(db)
    store = _stores.get(key)
    if store is None:
        with _stores_guard:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = Storage.open(key)
    return store


def close_storage(db: str | Path) -> None:
    """Close and forget this process's store of ``db`` (tests that drop a database; servers at shutdown)."""
    with _stores_guard:
        store = _stores.pop(str(db), None)
    if store is not None:
        store.close()


def rows_as_dicts(cursor: Any) -> list[dict[str, Any]]:
    """A cursor's remaining rows as dicts keyed by column name (for JSON answers and exports)."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


__all__ = [
    "Backend", "POSTGRES_SCHEMES", "PostgresStorage", "Retry", "SqliteStorage", "Statement", "Storage", "StorageError",
    "Tx", "backend_of", "close_storage", "readonly_uri", "redact", "rows_as_dicts", "sql", "sqlite_connect",
    "sqlite_transaction", "storage_for",
]

