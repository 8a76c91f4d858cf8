"""The scan benchmark's registers in PostgreSQL: a migrated database loaded by COPY from the SQLite database that
``_scan_data`` generated (the same rows, so both backends answer the same scans).

Secondary indexes of the loaded tables are dropped during the load and made again from their own definitions
afterwards, foreign-key triggers are off during the load when the role may turn them off (a superuser, as in the
benchmark's private cluster), identity columns are left to the database, and ANALYZE runs at the end (PostgreSQL
plans with statistics; SQLite's planner has none here either way, see _scan_data's docstring).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The tables _scan_data fills, parents first.
TABLES = ("fields", "agencies", "officers", "enterprises", "no_disturb", "inspections", "inspection_parts")

_SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)
"""
_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %s AND is_identity = 'NO' AND is_generated = 'NEVER'
ORDER BY ordinal_position
"""


def load(sqlite_path: Path, url: str, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Migrate ``url`` and COPY the registers of ``sqlite_path`` into it; returns row counts and seconds."""
    import psycopg

    from server import db as dbmod

    t0 = time.perf_counter()
    dbmod.migrate(url)
    src = sqlite3.connect(Path(sqlite_path).resolve().as_uri() + "?mode=ro", uri=True)
    counts: dict[str, int] = {}
    try:
        with psycopg.connect(url, autocommit=True) as pg:
            try:
                pg.execute("SET session_replication_role = replica")  # no FK triggers while loading rows known to be consistent
            except psycopg.Error:
                pass
            indexes = pg.execute(_SECONDARY_INDEXES, [list(TABLES)]).fetchall()
            for name, _ in indexes:
                pg.execute(f'DROP INDEX "{name}"')
            for table in TABLES:
                t1 = time.perf_counter()
                mine = {r[1] for r in src.execute(f"PRAGMA table_info({table})")}
                cols = [r[0] for r in pg.execute(_COLUMNS, [table]).fetchall() if r[0] in mine]
                names = ", ".join(cols)
                n = 0
                with pg.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in src.execute(f"SELECT {names} FROM {table}"):
                        copy.write_row(row)
                        n += 1
                counts[table] = n
                progress(f"  COPY {table}: {n:,} rows in {time.perf_counter() - t1:.1f} s")
            t1 = time.perf_counter()
            for _, definition in indexes:
                pg.execute(definition)
            pg.execute("ANALYZE")
            progress(f"  {len(indexes)} indexes made again and ANALYZE in {time.perf_counter() - t1:.1f} s")
    finally:
        src.close()
    return {"rows": counts, "seconds": time.perf_counter() - t0}
