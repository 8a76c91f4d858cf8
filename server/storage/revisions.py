"""Is a SQLite file already migrated? Answered without importing Alembic or SQLAlchemy (about 270 ms a process),
since every fe-server command and every server start asks, and almost always hears yes."""

from __future__ import annotations

import ast
import functools
import sqlite3
from pathlib import Path

#: The revision files of the storage seam's Alembic history.
VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
#: Alembic's table of the revision a database is at.
VERSION_TABLE = "alembic_version"


def _ids(node: ast.expr) -> list[str]:
    """The revision ids a ``revision`` or ``down_revision`` value names (None, a string or a tuple of them)."""
    value = ast.literal_eval(node)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _declared(source: str) -> tuple[list[str], list[str]]:
    """(revision, down_revision ids) assigned at the top of one revision file, in either spelling Alembic's
    template or a hand-written ``revision, down_revision = "0002", "0001"`` uses."""
    found: dict[str, list[str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name):
            pairs = [(target, node.value)]
        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            pairs = list(zip(target.elts, node.value.elts, strict=False))
        else:
            continue
        for name, value in pairs:
            if isinstance(name, ast.Name) and name.id in ("revision", "down_revision"):
                found[name.id] = _ids(value)
    return found.get("revision", []), found.get("down_revision", [])


@functools.cache
def head() -> str | None:
    """The one revision no other revision builds on, read from the files (None if that is not exactly one: then
    nobody trusts this shortcut and Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        try:
            own, down = _declared(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError):
            return None
        revisions.update(own)
        parents.update(down)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def sqlite_file_is_current(path: str | Path, legacy_version: int) -> bool:
    """Whether the SQLite file at ``path`` is at the head revision with ``user_version`` ``legacy_version`` (a read,
    no write lock: a running server's writers are not waited for)."""
    revision = head()
    if revision is None or not Path(path).is_file():
        return False
    con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)  # escaped, as server.db.readonly_uri
    try:
        if con.execute("PRAGMA user_version").fetchone()[0] != legacy_version:
            return False
        if not con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)).fetchone():
            return False
        return [r[0] for r in con.execute(f"SELECT version_num FROM {VERSION_TABLE}")] == [revision]
    finally:
        con.close()


def postgres_is_current(url: str) -> bool:
    """Whether the PostgreSQL database at ``url`` is at the head revision (one short connection, no Alembic)."""
    import psycopg  # only a PostgreSQL deployment gets here

    revision = head()
    if revision is None:
        return False
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as con:
            rows = con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    except psycopg.errors.UndefinedTable:
        return False
    return [r[0] for r in rows] == [revision]
