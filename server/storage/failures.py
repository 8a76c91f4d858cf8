"""Which errors mean the database itself cannot write (a full disk, an I/O error, a lost server), on either backend,
as opposed to a message the server cannot process: the ingest pauses on the first kind and keeps its batch."""

from __future__ import annotations

import sqlite3

from server.storage.engine import Retry, StorageError

try:
    import psycopg
except ImportError:  # pragma: no cover - psycopg is a dependency; a SQLite-only install may lack it
    psycopg = None  # type: ignore[assignment]

#: The database cannot write; deadlocks retried in vain (Retry) count too: the batch is kept and tried again later.
#: On PostgreSQL: the server is gone or refuses sessions, its disk is full (53100), a lock or statement timed out, or
#: the pool cannot lend a connection in time (psycopg_pool.PoolTimeout is an OperationalError too).
CANNOT_WRITE: tuple[type[BaseException], ...] = (sqlite3.OperationalError, Retry, *((psycopg.OperationalError,) if psycopg else ()))
#: The database refused a value of the request itself (PostgreSQL: a NUL character in text, a number out of range):
#: the client's error, a 400, never a 500 (server/errors.py bad_value_response).
BAD_VALUE: tuple[type[Exception], ...] = (psycopg.DataError,) if psycopg else ()
#: Every error the drivers raise: a problem of the database or of the data in it, not of our code.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, StorageError, *((psycopg.Error,) if psycopg else ()))


def disk_full(e: BaseException) -> bool:
    """The error says the disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full)."""
    return getattr(e, "sqlite_errorname", "") == "SQLITE_FULL" or getattr(e, "sqlstate", None) == "53100"
