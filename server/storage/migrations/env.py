"""Alembic environment: run by server.storage.migrate.upgrade with its connection in the config's attributes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from server.storage.migrate import engine
from server.storage.schema import metadata


def _configure(connection: Connection) -> None:
    """Point Alembic at the connection; SQLite gets transactional DDL like db.migrate's BEGIN IMMEDIATE."""
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Alembic's SQLite support says transactional_ddl = False, but SQLite's DDL is transactional: a revision
        # that fails half-way must leave nothing behind, as on PostgreSQL.
        transactional_ddl=True if sqlite else None,
        transaction_per_migration=True,
        render_as_batch=sqlite,  # SQLite's ALTER TABLE cannot drop or retype columns: copy-and-move instead
        compare_type=True,
    )


def run_migrations_online() -> None:
    """Run the revisions on the connection server.storage.migrate hands over, or on one opened from the URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    eng = engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with eng.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        eng.dispose()


def _run(connection: Connection) -> None:
    """Configure the context on ``connection`` and run the pending revisions."""
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported: run them against a database")
run_migrations_online()
