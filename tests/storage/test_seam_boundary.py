"""Every SQL statement of the server lives in the storage package (server/storage/): no other module runs a statement
on a driver or holds SQL text, so each query has one copy and both backends run it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
STORAGE = SERVER / "storage"
DRIVER_CALLS = {"execute", "executemany", "executescript", "copy"}
SQL = re.compile(r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|CREATE\s+(TABLE|INDEX)\s|PRAGMA\s)", re.I | re.S)


def _outside_storage() -> list[Path]:
    return sorted(p for p in SERVER.rglob("*.py") if STORAGE not in p.parents)


def _offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRIVER_CALLS:
            found.append(f"{path.relative_to(SERVER.parent)}:{node.lineno}: .{node.func.attr}(...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            found.append(f"{path.relative_to(SERVER.parent)}:{node.lineno}: SQL text {node.value[:40]!r}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] in ("psycopg", "psycopg_pool", "sqlite_utils") for n in names):
                found.append(f"{path.relative_to(SERVER.parent)}:{node.lineno}: imports a database driver")
    return found


def test_no_sql_outside_the_storage_package() -> None:
    offences = [o for p in _outside_storage() for o in _offences(p)]
    assert offences == [], "SQL belongs in server/storage/<domain>.py:\n" + "\n".join(offences)


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('import psycopg\ncon.execute("SELECT 1 FROM t")\nQ = "insert into t values (1)"\n')
    assert [o.split(": ", 1)[1] for o in _offences_of(bad)] == ["imports a database driver", ".execute(...)", "SQL text 'SELECT 1 FROM t'", "SQL text 'insert into t values (1)'"]


def _offences_of(path: Path) -> list[str]:
    global SERVER
    saved, SERVER = SERVER, path.parent.parent
    try:
        return sorted(_offences(path), key=lambda o: int(o.split(":")[1]))
    finally:
        SERVER = saved
