"""The storage seam's schema (server/storage): the Alembic baseline builds on SQLite exactly what server/db.py's
MIGRATIONS build, agrees with schema.py's metadata, and builds and works on a private PostgreSQL; db.migrate hands
over to it (new files, old files stamped, processes migrating one file at once)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, inspect, pool, select, text

from server import db
from server.storage import schema
from server.storage import revisions
from server.storage.migrate import BASELINE, SCRIPT_LOCATION, current, engine_url, upgrade

ALEMBIC_TABLE = "alembic_version"
#: Processes migrating one new file at once in the race test.
RACERS = 4
#: How long the race test waits for its processes (each imports the server and migrates once).
RACE_TIMEOUT_S = 120


def _balanced(sql: str, start: int) -> str:
    """The text inside the parentheses opening at ``sql[start]``."""
    depth = 0
    for i in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        if depth == 0:
            return sql[start + 1:i]
    raise AssertionError(f"unbalanced parentheses in {sql!r}")


def _norm(sql: str | None) -> str | None:
    """SQL text without formatting differences: collapsed whitespace, no redundant outer parentheses."""
    if sql is None:
        return None
    sql = re.sub(r"\s+", " ", sql).strip()
    while sql.startswith("(") and sql.endswith(")") and _balanced(sql, 0) == sql[1:-1]:
        sql = sql[1:-1].strip()
    return sql


def _checks(sql: str) -> list[str]:
    """Every CHECK expression of a CREATE TABLE (column or table constraint), normalised."""
    return sorted(_norm(_balanced(sql, m.end() - 1)) for m in re.finditer(r"\bCHECK\s*\(", sql, re.IGNORECASE))


def sqlite_schema(path: Path) -> dict[str, dict[str, Any]]:
    """A comparable description of a SQLite file's schema, read from sqlite_master and the PRAGMAs."""
    con = sqlite3.connect(path)
    try:
        # Neither history makes views or triggers; if one ever does, they are compared by their SQL.
        others = con.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') ORDER BY 1, 2")
        out: dict[str, dict[str, Any]] = {"<views and triggers>": {"sql": [(t, n, _norm(q)) for t, n, q in others]}}
        tables = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ?",
            (ALEMBIC_TABLE,),
        ).fetchall()
        for name, sql in tables:
            columns = [
                # A primary key column counts as NOT NULL on both sides: see test_primary_keys_are_not_null.
                (cname, ctype.upper(), bool(notnull or pk), _norm(default), pk)
                for _cid, cname, ctype, notnull, default, pk in con.execute(f"PRAGMA table_info('{name}')")
            ]
            indexes = []
            for _seq, iname, unique, origin, partial in con.execute(f"PRAGMA index_list('{name}')"):
                cols = [row[2] for row in con.execute(f"PRAGMA index_info('{iname}')")]
                where = None
                if partial:
                    (isql,) = con.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (iname,)).fetchone()
                    where = _norm(re.split(r"\bWHERE\b", isql, maxsplit=1, flags=re.IGNORECASE)[1])
                # Automatic indexes of PRIMARY KEY / UNIQUE constraints are named by SQLite after the table's
                # first name: compare them by what they index, not by name.
                indexes.append((iname if origin == "c" else origin, bool(unique), tuple(cols), where))
            fks = sorted(
                (ref_table, frm, to, on_update, on_delete)
                for _id, _seq, ref_table, frm, to, on_update, on_delete, _match in con.execute(f"PRAGMA foreign_key_list('{name}')")
            )
            (without_rowid,) = con.execute("SELECT wr FROM pragma_table_list WHERE name = ?", (name,)).fetchone()
            out[name] = {
                "columns": columns, "indexes": sorted(indexes), "foreign_keys": fks,
                "checks": _checks(sql), "without_rowid": bool(without_rowid),
            }
        return out
    finally:
        con.close()


#: Baseline tables whose CREATE text a later revision rewrites (SQLite's ALTER TABLE ADD COLUMN does): 0002 job_runs.
_CHANGED_AFTER_BASELINE = {"job_runs"}


def legacy_file(path: Path, version: int = len(db.MIGRATIONS)) -> Path:
    """A SQLite file made as the server did before the seam: the first ``version`` MIGRATIONS, user_version set."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        for i, script in enumerate(db.MIGRATIONS[:version], start=1):
            con.execute("BEGIN IMMEDIATE")
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    con.execute(statement)
            con.execute(f"PRAGMA user_version = {i}")
            con.execute("COMMIT")
    finally:
        con.close()
    return path


def _user_version(path: Path) -> int:
    """The file's PRAGMA user_version."""
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def _table_sql(path: Path) -> dict[str, str]:
    """Every table's and index's CREATE statement as SQLite keeps it (a stamped file keeps its own text)."""
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name != ?", (ALEMBIC_TABLE,)))
    finally:
        con.close()


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file made by server/db.py's MIGRATIONS."""
    return legacy_file(tmp_path_factory.mktemp("legacy") / "legacy.db")


#: The newest revision (the history goes on past the baseline).
HEAD = revisions.head()


@pytest.fixture(scope="module")
def seam_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file made by the seam's history up to the baseline only (what the old MIGRATIONS list built)."""
    path = tmp_path_factory.mktemp("seam_baseline") / "seam.db"
    upgrade(f"sqlite:///{path}", BASELINE)
    return path


@pytest.fixture(scope="module")
def seam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file made by the storage seam's Alembic history."""
    path = tmp_path_factory.mktemp("seam") / "seam.db"
    upgrade(f"sqlite:///{path}")
    return path


def test_sqlite_baseline_equals_db_migrate(legacy: Path, seam_baseline: Path) -> None:
    """Tables, columns (order, type, nullability, default), keys, indexes (incl. partial), FKs, CHECKs, WITHOUT ROWID."""
    want, got = sqlite_schema(legacy), sqlite_schema(seam_baseline)
    drift = (
        "server/db.py MIGRATIONS and the storage seam's history differ: a change to one (a new MIGRATIONS entry) "
        "needs the same change in server/storage/schema.py and a new revision in server/storage/migrations/versions/"
    )
    assert sorted(got) == sorted(want), drift
    for table in want:
        assert got[table] == want[table], f"{table}: {drift}"


def test_sqlite_rowid_aliases_and_defaults_behave(seam: Path) -> None:
    """An INTEGER PRIMARY KEY is still numbered by SQLite, and the defaults fill in, on the seam's file."""
    con = sqlite3.connect(seam)
    try:
        with con:
            con.execute("INSERT INTO job_runs(job_id, started_ms, outcome) VALUES ('j', 1, 'running')")
            row = con.execute("SELECT id, detail FROM job_runs").fetchone()
        assert row == (1, "")
        # The rowid alias: id and rowid are one value.
        assert con.execute("SELECT rowid = id FROM job_runs").fetchone() == (1,)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            con.execute(
                "INSERT INTO sign_in_failures(kind, key, failures, window_start_ms, last_failure_ms) VALUES ('x', 'k', 1, 1, 1)"
            )
    finally:
        con.close()


def test_primary_keys_are_not_null(legacy: Path, seam: Path) -> None:
    """The one accepted difference: db.py's rowid tables declare TEXT primary keys without NOT NULL (SQLite then
    allows NULL keys, a legacy quirk); the seam declares them NOT NULL, as PostgreSQL requires anyway."""
    con = sqlite3.connect(legacy)
    try:
        with con:
            con.execute("INSERT INTO fields(field_id, name) VALUES (NULL, 'x')")  # accepted by the old schema
    finally:
        con.close()
    con = sqlite3.connect(seam)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            con.execute("INSERT INTO fields(field_id, name) VALUES (NULL, 'x')")
    finally:
        con.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_failed_upgrade_leaves_nothing_behind(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A revision that fails half-way (a table it creates exists already) is rolled back whole on both backends:
    no table of it is left and no version is recorded (SQLite needs the BEGIN recipe of migrate.engine for this)."""
    url = f"sqlite:///{tmp_path / 'half.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    eng = create_engine(engine_url(url), poolclass=pool.NullPool)
    try:
        with eng.begin() as con:
            con.execute(text("CREATE TABLE media (x TEXT)"))  # media comes late in the baseline's order
        with pytest.raises(Exception, match="media"):
            upgrade(url)
        assert set(inspect(eng).get_table_names()) == {"media"}
        assert current(url) is None
    finally:
        eng.dispose()


def _diff(url: str) -> list[Any]:
    """What Alembic's autogenerate would change to make the database at ``url`` match schema.py (empty: nothing)."""
    engine = create_engine(engine_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
            diffs = compare_metadata(context, schema.metadata)
            if connection.dialect.name == "sqlite":
                # SQLite has no identity columns (an INTEGER PRIMARY KEY numbers itself): Alembic reads that as a
                # changed default of the five Identity() columns; anything else still counts.
                diffs = [d for d in diffs if not _identity_default(d)]
            return diffs
    finally:
        engine.dispose()


def _identity_default(diff: Any) -> bool:
    """Whether an autogenerate diff is only "the default of an Identity() column differs"."""
    if not (isinstance(diff, list) and len(diff) == 1 and diff[0][0] == "modify_default"):
        return False
    _op, _schema, table, column, *_rest = diff[0]
    return schema.metadata.tables[table].c[column].identity is not None


def test_sqlite_baseline_matches_schema_py(seam: Path) -> None:
    """No pending autogenerate diff between schema.py and the history (`alembic check`)."""
    assert _diff(f"sqlite:///{seam}") == []


def test_postgres_upgrade_builds_everything_and_is_idempotent(postgres_url: str) -> None:
    """Every table and index on PostgreSQL, rows round-trip in key tables, and a second upgrade changes nothing."""
    upgrade(postgres_url)
    assert current(postgres_url) == HEAD
    assert _diff(postgres_url) == []
    engine = create_engine(engine_url(postgres_url), poolclass=pool.NullPool)
    try:
        insp = inspect(engine)
        assert set(insp.get_table_names()) == set(schema.metadata.tables) | {ALEMBIC_TABLE}
        for table in schema.metadata.sorted_tables:
            assert {i["name"] for i in insp.get_indexes(table.name)} >= {i.name for i in table.indexes}, table.name
        with engine.connect() as con:
            wheres = dict(con.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE indexdef LIKE '%WHERE%'")).all())
            before = con.execute(text("SELECT table_name, column_name, data_type, is_nullable, column_default "
                                      "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2")).all()
        assert set(wheres) == {"inspections_recording_unchecked", "rejected_with_raw"}
        assert "recording_checked_ms IS NULL" in wheres["inspections_recording_unchecked"]

        upgrade(postgres_url)  # a no-op: already at head
        with engine.connect() as con:
            after = con.execute(text("SELECT table_name, column_name, data_type, is_nullable, column_default "
                                     "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2")).all()
            assert con.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        assert after == before

        _round_trip(engine)
    finally:
        engine.dispose()


def _round_trip(engine: Any) -> None:
    """Insert and read back one row of events, inspections, exception_bases; the identity numbers alerts."""
    ms = 1_780_000_000_000  # epoch ms past 2**31: needs BIGINT
    event = {
        "event_id": "e1", "device_id": "d1", "seq": 1, "type": "scan", "device_time_ms": ms, "clock_error_ms": 0,
        "received_ms": ms, "stored_ms": ms, "wire_format": "cbor", "body": b"\x00\xff" * 8, "sig": b"\x01" * 64,
        "body_json": "{}", "prev_hash": None, "body_sha256": "ab" * 32,
    }
    inspection = {
        "inspection_id": "i1", "credit_code": "91110000MA0000000X", "lead_agency_id": "a1", "field": "market",
        "status": "open", "opened_ms": ms,
    }
    basis = {
        "kind": "assignment", "reference": "R-1", "credit_code": "91110000MA0000000X", "issued_by": "superior",
        "valid_from_ms": ms, "valid_to_ms": ms + 1, "created_by": "u1", "created_ms": ms,
    }
    with engine.begin() as con:
        con.execute(insert(schema.devices).values(
            device_id="d1", model="m", kind="recorder", agency_id="a1", public_key="k", registered_ms=ms))
        con.execute(insert(schema.events).values(**event))
        con.execute(insert(schema.inspections).values(**inspection))
        con.execute(insert(schema.exception_bases).values(**basis))
        first = con.execute(insert(schema.alerts).values(
            created_ms=ms, kind="k", severity="info", message_zh="中文", message_en="en").returning(schema.alerts.c.id)).scalar_one()
    with engine.connect() as con:
        row = con.execute(select(schema.events).where(schema.events.c.event_id == "e1")).mappings().one()
        assert dict(row) == event
        row = con.execute(select(schema.inspections)).mappings().one()
        assert row["region"] == "" and row["ended_ms"] is None and row["opened_ms"] == ms
        row = con.execute(select(schema.exception_bases)).mappings().one()
        assert row["summary"] == "" and row["valid_to_ms"] == ms + 1
        assert con.execute(select(schema.device_state)).all() == []
    assert first == 1


def test_db_migrate_builds_a_new_file_with_the_history(seam: Path, tmp_path: Path) -> None:
    """A new file: Alembic builds it (at head, WAL), user_version is len(MIGRATIONS); a second call changes nothing."""
    path = tmp_path / "sub" / "new.db"
    assert db.migrate(path) == len(db.MIGRATIONS)
    assert current(str(path)) == HEAD
    assert _user_version(path) == len(db.MIGRATIONS)
    assert sqlite_schema(path) == sqlite_schema(seam)
    con = db.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            con.execute("INSERT INTO fields(field_id, name) VALUES (NULL, 'x')")
    finally:
        con.close()
    before = _table_sql(path)
    assert db.migrate(path) == len(db.MIGRATIONS)
    assert _table_sql(path) == before and current(str(path)) == HEAD


def test_db_migrate_stamps_a_file_of_the_old_list_without_ddl(seam: Path, tmp_path: Path) -> None:
    """A user_version 12 file without alembic_version is stamped BASELINE (no DDL: its tables keep their own text, the
    NULL-key quirk included), its rows stay, the later revisions run, and it then equals a file built by the history."""
    path = legacy_file(tmp_path / "old.db")
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO fields(field_id, name) VALUES ('market', '市场监管')")
    con.close()
    before = _table_sql(path)
    assert current(str(path)) is None
    assert db.migrate(path) == len(db.MIGRATIONS)
    assert current(str(path)) == HEAD
    assert _user_version(path) == len(db.MIGRATIONS)
    after = _table_sql(path)
    changed_later = {name for name in before if after.get(name) != before[name]}  # by revisions after the baseline
    assert changed_later <= _CHANGED_AFTER_BASELINE  # stamping ran no DDL: every other CREATE statement as it was
    assert sqlite_schema(path) == sqlite_schema(seam)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT field_id, name FROM fields").fetchall() == [("market", "市场监管")]
        with con:
            con.execute("INSERT INTO fields(field_id, name) VALUES (NULL, 'x')")  # the old file's quirk, kept
    finally:
        con.close()
    db.migrate(path)  # idempotent: stamped once
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    finally:
        con.close()


def test_db_migrate_finishes_an_older_file_with_the_old_list_then_stamps(seam: Path, tmp_path: Path) -> None:
    """A user_version 5 file is brought to 12 by MIGRATIONS 6..12 (its rows kept), then stamped."""
    old_version = 5
    path = legacy_file(tmp_path / "v5.db", old_version)
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO fields(field_id, name) VALUES ('market', '市场监管')")
    con.close()
    db.migrate(path)
    assert current(str(path)) == HEAD
    assert _user_version(path) == len(db.MIGRATIONS)
    assert sqlite_schema(path) == sqlite_schema(seam)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT field_id FROM fields").fetchall() == [("market",)]
    finally:
        con.close()


_RACER = """
import sys
from server import db
print("ready", flush=True)
sys.stdin.readline()  # the go signal: every racer is imported and waiting
print(db.migrate(sys.argv[1]), flush=True)
"""


def test_processes_migrating_one_new_file_at_once(seam: Path, tmp_path: Path) -> None:
    """Several processes start on one new file together (as the server and fe-server commands do): BEGIN IMMEDIATE
    serialises them, the first builds the schema, the others find it at head; none fails, one version row."""
    path = tmp_path / "raced.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
        for _ in range(RACERS)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [p.communicate(timeout=RACE_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(len(db.MIGRATIONS))
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    finally:
        con.close()
    assert sqlite_schema(path) == sqlite_schema(seam)
    assert _user_version(path) == len(db.MIGRATIONS)


def test_the_up_to_date_check_reads_the_head_as_alembic_does(tmp_path: Path) -> None:
    """revisions.head() (no Alembic import) names Alembic's own head, and reads both spellings of a revision file;
    a file at another revision or user_version is not taken as current."""
    assert revisions.head() == ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    assert revisions._declared('revision, down_revision = "0002", "0001_baseline"\n') == (["0002"], ["0001_baseline"])
    assert revisions._declared("revision = 'm'\ndown_revision = ('a', 'b')\n") == (["m"], ["a", "b"])
    path = tmp_path / "x.db"
    db.migrate(path)
    assert revisions.sqlite_file_is_current(path, len(db.MIGRATIONS))
    assert not revisions.sqlite_file_is_current(path, len(db.MIGRATIONS) + 1)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE alembic_version SET version_num = 'older'")
    con.close()
    assert not revisions.sqlite_file_is_current(path, len(db.MIGRATIONS))
    assert not revisions.sqlite_file_is_current(tmp_path / "missing.db", len(db.MIGRATIONS))


def test_migrating_an_up_to_date_file_does_not_load_alembic(tmp_path: Path) -> None:
    """Every fe-server command migrates first: on a file already at head that costs a read, not Alembic's import."""
    path = tmp_path / "x.db"
    db.migrate(path)
    probe = f"import sys; from server import db; db.migrate({str(path)!r}); print('alembic' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=RACE_TIMEOUT_S)
    assert out.stdout.split() == ["False", "False"]


def test_a_path_with_uri_characters_is_read_as_the_same_file(tmp_path: Path) -> None:
    """'#', '?' and '%' in a folder name once cut the read-only URI: the check said "not current" and
    created a stray file."""
    from server import db as dbmod
    from server.storage.revisions import sqlite_file_is_current

    folder = tmp_path / "a #b?c%d"
    folder.mkdir()
    path = folder / "server.db"
    dbmod.migrate(path)
    assert sqlite_file_is_current(path, len(dbmod.MIGRATIONS))
    con = dbmod.connect(path, readonly=True)
    try:
        assert con.execute("SELECT COUNT(*) FROM devices").fetchone() == (0,)
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a #b?c%d"]
