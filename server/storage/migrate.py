"""Run the storage seam's Alembic history programmatically (no alembic.ini): ``upgrade(url)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, Connection, Engine, create_engine, event, pool

from server.storage.revisions import VERSION_TABLE, sqlite_file_is_current

#: Alembic's environment and revisions live inside the package, so an installed server can migrate.
SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
#: The driver of PostgreSQL URLs written without one (psycopg 3, not SQLAlchemy's default psycopg2).
POSTGRES_DRIVER = "postgresql+psycopg"
#: The revision that creates the schema server/storage/legacy_schema.py MIGRATIONS 1..12 built; old SQLite files are stamped with it.
BASELINE = "0001_baseline"
#: How long a migration waits for another process's write transaction on SQLite (as server/db.connect's).
SQLITE_BUSY_TIMEOUT_MS = 10_000


def engine_url(db: str) -> str:
    """The SQLAlchemy URL of ``db``: a ``sqlite:///`` or ``postgresql://`` URL, or a path to a SQLite file."""
    if db.startswith(("postgresql://", "postgres://")):
        return POSTGRES_DRIVER + db[db.index("://"):]
    if "://" in db:
        return db
    return f"sqlite:///{db}"


def config(db: str) -> Config:
    """An Alembic Config for ``db`` with the package's script location set in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    # ConfigParser interpolation would read a '%' of a URL-encoded password as a reference.
    cfg.set_main_option("sqlalchemy.url", engine_url(db).replace("%", "%%"))
    return cfg


def engine(db: str | URL) -> Engine:
    """An engine for migrating ``db``; on SQLite its transactions really are transactions around DDL too."""
    eng = create_engine(db if isinstance(db, URL) else engine_url(db), poolclass=pool.NullPool)
    if eng.dialect.name == "sqlite":
        # Python's sqlite3 (3.11) opens a transaction only before INSERT/UPDATE/DELETE, so each CREATE TABLE would
        # commit on its own and a failed revision would leave half a schema behind. SQLAlchemy's documented
        # recipe: the driver starts no transaction itself, and SQLAlchemy's begin emits BEGIN IMMEDIATE (the
        # writer lock, like db.migrate's).
        event.listen(eng, "connect", _driver_autocommit)
        event.listen(eng, "begin", _begin_immediate)
    return eng


def _driver_autocommit(dbapi_connection: object, _record: object) -> None:
    """Keep sqlite3 from opening (and committing) transactions behind SQLAlchemy's back."""
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    # Several processes migrate one file at start-up: the later ones wait for the first's BEGIN IMMEDIATE.
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")  # type: ignore[attr-defined]


def _begin_immediate(connection: Connection) -> None:
    """Open every SQLite transaction as a writer at once."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(db: str, revision: str = "head") -> None:
    """Bring the database at ``db`` up to ``revision`` (the newest by default); a database already there is untouched.

    Each revision runs in one transaction on both backends: one that fails leaves the database as it was before it.
    """
    cfg = config(db)
    eng = engine(db)
    try:
        with eng.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
            connection.commit()
    finally:
        eng.dispose()


def current(db: str) -> str | None:
    """The revision the database at ``db`` is at (None: never migrated by Alembic)."""
    eng = engine(db)
    try:
        with eng.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        eng.dispose()


def migrate_sqlite(path: str | Path, legacy: Sequence[str]) -> None:
    """Bring the SQLite file at ``path`` to the head revision, whatever made it (docs/storage-seam.md §3.3).

    A new file runs the history; a file of the old list (``PRAGMA user_version`` 1..len(legacy), no
    ``alembic_version``) is first brought to the end of ``legacy``, then stamped BASELINE without DDL. Either way
    ``user_version`` ends at len(legacy), for code that still reads it. All of it is one BEGIN IMMEDIATE
    transaction: processes migrating one file at once take turns, and the later ones find nothing left to do.
    """
    if sqlite_file_is_current(path, len(legacy)):
        return
    cfg = config(f"sqlite:///{path}")
    eng = engine(URL.create("sqlite", database=str(path)))
    try:
        with eng.connect() as connection:
            connection.begin()  # BEGIN IMMEDIATE (engine's recipe); Alembic then runs inside it, committing nothing
            version = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
            stamped = connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)).first() is not None
            cfg.attributes["connection"] = connection
            if version and not stamped:
                for script in legacy[version:]:
                    for statement in (s.strip() for s in script.split(";")):
                        if statement:
                            connection.exec_driver_sql(statement)
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
            connection.exec_driver_sql(f"PRAGMA user_version = {len(legacy)}")
            connection.commit()
    finally:
        eng.dispose()
