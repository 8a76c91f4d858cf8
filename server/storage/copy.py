"""Rows of a whole server database copied from SQLite into PostgreSQL (``fe-server copy-db``, server/copy_cli.py).

The SQLite side is read with sqlite-utils (the design card's library for the embedded side: table and column
introspection, row iteration) on one read-only connection inside one read transaction, so the copy is a snapshot
even while a server still writes the file. The PostgreSQL side is written with COPY, table by table in foreign-key
order, inside the caller's one transaction: the caller commits only after its checks, so a failure anywhere leaves
the target as empty as it found it. No rule lives here (what counts as a good copy is the caller's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlite_utils
from psycopg import sql as pgsql
from sqlalchemy.exc import SQLAlchemyError

from server.storage.engine import StorageError, sqlite_connect
from server.storage.schema import metadata

#: Tables of the SQLite file that are not data: Alembic's revision marker (the target has its own).
NOT_COPIED = frozenset({"alembic_version"})

#: Rewrites one row (a dict keyed by column name) on its way to the target; see ``copy_table``.
RowFn = Callable[[dict[str, Any]], dict[str, Any]]


class SchemaMismatch(StorageError):
    """The source has a table or column the target lacks (its rows would be lost)."""


#: What either driver (or Alembic's migration, through SQLAlchemy) raises: the copy did not happen.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error, SQLAlchemyError)


def connect_target(url: str) -> psycopg.Connection[Any]:
    """A connection to the PostgreSQL target, outside the server's pools (the copy is one long transaction of its
    own); use it in a ``with`` block, which commits or rolls back and closes it."""
    return psycopg.connect(url)


@contextmanager
def sqlite_snapshot(path: str | Path) -> Iterator[sqlite_utils.Database]:
    """The SQLite file as sqlite-utils sees it, frozen: a read-only connection inside one read transaction (WAL
    keeps what it saw while other connections write), ended when the block ends."""
    con = sqlite_connect(path, readonly=True)
    try:
        con.execute("BEGIN")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts at the first read
        yield sqlite_utils.Database(con)
    finally:
        if con.in_transaction:
            con.execute("ROLLBACK")
        con.close()


# --- what to copy --------------------------------------------------------------------------------------------------


def target_tables(con: Any) -> set[str]:
    """The tables of the PostgreSQL database's current schema."""
    return {name for (name,) in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def tables_to_copy(source: sqlite_utils.Database, in_target: set[str]) -> list[str]:
    """Every table of the schema in foreign-key order, then any other table of the source that a migration made
    but the metadata does not describe (none today); a source table the target lacks is an error."""
    ordered = [t.name for t in metadata.sorted_tables]
    extra = sorted(t for t in set(source.table_names()) - set(ordered) - NOT_COPIED if not t.startswith("sqlite_"))  # SQLite's own
    missing = [t for t in [*ordered, *extra] if t not in in_target]
    if missing:
        raise SchemaMismatch(f"tables missing in the target: {', '.join(missing)}")
    return [*ordered, *extra]


def check_columns(source: sqlite_utils.Database, con: Any, tables: Sequence[str]) -> None:
    """Every column of each source table exists in the target (both are at the head revision, so they agree)."""
    rows = con.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()").fetchall()
    in_target: dict[str, set[str]] = {}
    for table, column in rows:
        in_target.setdefault(table, set()).add(column)
    for table in tables:
        if not source.table(table).exists():
            continue
        lost = [c.name for c in source.table(table).columns if c.name not in in_target.get(table, set())]
        if lost:
            raise SchemaMismatch(f"{table}: columns missing in the target: {', '.join(lost)}")


def lock_tables(con: Any, tables: Sequence[str]) -> None:
    """Keep every other writer out of the target's tables until the transaction ends (readers still read)."""
    con.execute(pgsql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(pgsql.SQL(", ").join(map(pgsql.Identifier, tables))))


def first_non_empty(con: Any, tables: Sequence[str]) -> str | None:
    """The first of ``tables`` (those the target has) holding a row, or None."""
    present = target_tables(con)
    for table in tables:
        if table in present and con.execute(pgsql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(pgsql.Identifier(table))).fetchone()[0]:
            return table
    return None


# --- the copy ------------------------------------------------------------------------------------------------------


def source_rows(source: sqlite_utils.Database, table: str) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """A source table's column names and its rows in primary-key order (sqlite-utils steps the cursor: memory stays
    flat whatever the table's size)."""
    t = source.table(table)
    columns = [c.name for c in t.columns]
    select = ", ".join(f"[{c}]" for c in columns)
    order = ", ".join(f"[{c}]" for c in t.pks)
    return columns, t.rows_where(select=select, order_by=order)


def copy_table(source: sqlite_utils.Database, con: Any, table: str, row_fn: RowFn | None = None) -> int:
    """COPY every row of ``table`` into the target in the current transaction; returns how many. ``row_fn`` may
    rewrite a row on the way (the caller's rule, e.g. a stored reference to the old database)."""
    if not source.table(table).exists():
        return 0
    columns, rows = source_rows(source, table)
    stmt = pgsql.SQL("COPY {} ({}) FROM STDIN").format(pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, columns)))
    n = 0
    with con.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            if row_fn is not None:
                row = row_fn(row)
            copy.write_row([row[c] for c in columns])
            n += 1
    return n


def restart_identities(con: Any, tables: Sequence[str]) -> dict[str, int]:
    """Set the sequence behind every identity (or serial) column of ``tables`` past the highest id copied, so new
    rows get fresh ids; returns ``{"table.column": next id}``."""
    columns = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%') ORDER BY table_name, column_name"
    ).fetchall()
    wanted = set(tables)
    out: dict[str, int] = {}
    for table, column in columns:
        if table not in wanted:
            continue
        stmt = pgsql.SQL("SELECT setval(pg_get_serial_sequence({qualified}, {col}), coalesce(max({c}), 0) + 1, false) FROM {t}").format(
            qualified=pgsql.Literal(pgsql.Identifier(table).as_string(con)), col=pgsql.Literal(column), c=pgsql.Identifier(column), t=pgsql.Identifier(table),
        )
        out[f"{table}.{column}"] = con.execute(stmt).fetchone()[0]
    return out


def source_counts(source: sqlite_utils.Database, tables: Sequence[str]) -> dict[str, int]:
    """Rows per table in the source snapshot."""
    return {t: source.table(t).count if source.table(t).exists() else 0 for t in tables}


def target_counts(con: Any, tables: Sequence[str]) -> dict[str, int]:
    """Rows per table in the target, as this transaction sees it."""
    return {t: con.execute(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(t))).fetchone()[0] for t in tables}


def copy_tables(source: sqlite_utils.Database, con: Any, tables: Sequence[str], row_fns: Mapping[str, RowFn] | None = None) -> dict[str, int]:
    """Copy ``tables`` in order (foreign keys point backwards) and restart the identity sequences; returns the rows
    copied per table. The caller holds the transaction and decides whether to commit."""
    fns = row_fns or {}
    copied = {table: copy_table(source, con, table, fns.get(table)) for table in tables}
    restart_identities(con, tables)
    return copied


__all__ = [
    "DATABASE_ERRORS", "NOT_COPIED", "RowFn", "SchemaMismatch", "connect_target", "check_columns", "copy_table", "copy_tables", "first_non_empty",
    "lock_tables", "restart_identities", "source_counts", "source_rows", "sqlite_snapshot", "tables_to_copy", "target_counts",
    "target_tables",
]
