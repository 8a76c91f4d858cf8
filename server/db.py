"""Opening the server's database (a SQLite path or a ``postgresql://`` URL) and bringing its schema up to date; the
connections and transactions themselves are the storage seam's (server/storage/engine.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.storage.engine import Backend, Tx, backend_of, readonly_uri, sqlite_connect, storage_for
from server.storage.legacy_schema import MIGRATIONS
from server.storage.revisions import postgres_is_current, sqlite_file_is_current

__all__ = ["MIGRATIONS", "connect", "migrate", "reading", "readonly_uri", "writing"]

def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A SQLite connection with the server's settings (server/storage/engine.py ``sqlite_connect``)."""
    return sqlite_connect(path, readonly=readonly)


@contextmanager
def reading(db: str | Path) -> Iterator[Tx]:
    """A read-only connection to the database (a path or a ``postgresql://`` URL)."""
    with storage_for(db).reading() as tx:
        yield tx


@contextmanager
def writing(db: str | Path) -> Iterator[Tx]:
    """One write transaction on the database, committed at the end (rolled back on error)."""
    with storage_for(db).writing() as tx:
        yield tx


def migrate(path: str | Path) -> int:
    """Bring the schema up to date through the storage seam's Alembic history; returns the legacy schema version.

    A file of the old MIGRATIONS list is finished by it and stamped (server/storage/migrate.py, docs/storage-seam.md
    §3.3); ``PRAGMA user_version`` stays len(MIGRATIONS) for code that still reads it. A ``postgresql://`` URL
    runs the history on that database."""
    if backend_of(path) is Backend.POSTGRES:
        if not postgres_is_current(str(path)):  # the usual case, answered without importing Alembic (0.7 s)
            from server.storage.migrate import upgrade

            upgrade(str(path))
        return len(MIGRATIONS)
    if sqlite_file_is_current(path, len(MIGRATIONS)):  # the usual case, answered without importing Alembic
        return len(MIGRATIONS)
    from server.storage.migrate import migrate_sqlite  # Alembic and SQLAlchemy load only when there is work to do

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connect(path).close()  # creates the file in WAL mode (persistent) before any migrating connection opens it
    migrate_sqlite(path, MIGRATIONS)
    return len(MIGRATIONS)
