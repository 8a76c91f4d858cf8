"""Which errors mean the database itself cannot write (a full disk, an I/O error, a lost server), on either backend,
as opposed to a message the server cannot process: the ingest pauses on the first kind and keeps its batch."""

from __future__ import annotations

import sqlite3

from server.storage.engine import Retry


def _postgres_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency; a SQLite-only install may lack it
        return ()
    # The server is gone or refuses sessions, its disk is full (53100), a lock or statement timed out, or the pool
    # cannot lend a connection in time (psycopg_pool.PoolTimeout is one of these too).
    return (psycopg.OperationalError,)


#: The database cannot write; deadlocks retried in vain (Retry) count too: the batch is kept and tried again later.
CANNOT_WRITE: tuple[type[BaseException], ...] = (sqlite3.OperationalError, Retry, *_postgres_errors())


def disk_full(e: BaseException) -> bool:
    """The error says the disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full)."""
    return getattr(e, "sqlite_errorname", "") == "SQLITE_FULL" or getattr(e, "sqlstate", None) == "53100"
