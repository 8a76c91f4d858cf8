"""``fe-server copy-db``: a SQLite server database, filled by the server's own code, copied into PostgreSQL exactly,
its evidence log verifying there, its identity sequences continuing, its keys moved; a non-empty target refused
untouched; a failure in the middle leaving the target empty; the server started on the URL reading the copy."""

from __future__ import annotations

import argparse
import pickle
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from protocol import topics
from protocol.codec import seal
from protocol.config import load_toml
from protocol.decision import Policy
from protocol.messages import EnterpriseScanned, GeoPoint
from protocol.signing import SigningKey
from server import db as dbmod
from server.app import create_app
from server.rules.codes import issue_code
from server.copy_cli import add_copy_parser, run_copy
from server.evidence.log import sign_tree_head
from server.ingest.batch import store_batch
from server.jobs.tasks import JobContext, JobSettings
from server.ingest.projector import Projector
from server.jobs.scheduler import Scheduler, execute_job
from server.settings import ServerSettings
from server.storage import copy as rows
from server.storage import jobs
from server.storage.engine import close_storage, redact, sql, storage_for
from server.storage.schema import metadata
from server.ingest.store import DeviceKeys, Incoming
from server.evidence.verify import verify
from tests.server.conftest import FRAGILE, GOOD, PLAIN, Api, code, seed

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "server" / "policy.toml"
DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))
SERVER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
EVENTS = 12
_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:id, 'M', 'body_recorder', 'SAMR', :key, 0)")
_AWKWARD = sql("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (:code, :name, '', '110108', 'low', 'C')")
_MAX_REJECTED = sql("SELECT max(id) FROM rejected")


class NeverLeads:
    """A leader lock this scheduler never gets: its ``run_now`` goes into the shared job store, as on a follower."""

    def acquire(self) -> bool:
        return False

    def held(self) -> bool:
        return False

    def release(self) -> None:
        pass


def _scanned(seq: int, code_text: str) -> EnterpriseScanned:
    """An officer's scan of an enterprise's code, with a position whose floats must survive the copy bit for bit."""
    return EnterpriseScanned(
        event_id=str(uuid.uuid4()), device_id="BR-1", seq=seq, device_time_ms=int(time.time() * 1000), clock_error_ms=5,
        officer_id="OFF-SAMR-1", code_text=code_text, field="food", matter="日常检查 №" + str(seq),
        location=GeoPoint(lat=39.98765432101 + seq % 30 / 3, lon=116.3012345678901 - seq % 30 / 7, accuracy_m=4.25),
    )  # fmt: skip


def _incoming(seq: int, key: SigningKey = DEVICE_KEY, code_text: str = "c", fmt: str = "json") -> Incoming:
    return Incoming(topics.device_up("BR-1"), seal(_scanned(seq, code_text), key, fmt), int(time.time() * 1000))  # type: ignore[arg-type]


def fill(path: Path) -> None:
    """A district's database as the server's own code leaves it: registers and users, a device's signed events (one
    message rejected), tree heads, an issued enterprise code, job runs with an alert, a job asked for by hand."""
    dbmod.migrate(path)
    SERVER_KEY.save(path.with_name(path.name + ".server.key"))
    store = storage_for(path)
    with store.writing() as tx:
        seed(tx)
        tx.run(_DEVICE, id="BR-1", key=DEVICE_KEY.public_hex)
        tx.run(_DEVICE, id="BR-2", key=SigningKey.generate().public_hex)  # registered, never heard from: an alert
        codes = [issue_code(tx, path, c)[0] for c in (PLAIN, FRAGILE, GOOD)]
        tx.run(_AWKWARD, code=code(7), name="tab\there, line\nbreak, back\\slash \\N, 'quotes\" and \\. 全角")  # COPY's escapes
    policy = load_toml(POLICY, Policy)
    half = [_incoming(s, code_text=codes[s % 3], fmt=("json", "msgpack")[s % 2]) for s in range(1, EVENTS // 2 + 1)]
    store_batch(str(path), half, DeviceKeys(), projector=Projector(policy))
    with store.writing() as tx:
        sign_tree_head(tx, SERVER_KEY, now_ms=1_000)
    rest = [_incoming(s, code_text=codes[s % 3]) for s in range(EVENTS // 2 + 1, EVENTS + 1)] + [_incoming(99, SigningKey.generate())]
    store_batch(str(path), rest, DeviceKeys(), projector=Projector(policy))
    with store.writing() as tx:
        sign_tree_head(tx, SERVER_KEY, now_ms=2_000)
    ctx = JobContext(key=SERVER_KEY, policy=policy, settings=JobSettings())
    now = int(time.time() * 1000)
    for job_id in ("devices", "draws", "tree_head"):
        assert execute_job(job_id, str(path), ctx, now, now)["outcome"] == "ok"
    Scheduler(path, path.with_name(path.name + ".server.key"), POLICY, lock=NeverLeads()).run_now("draws")
    broker = path.with_name(path.name + ".broker")
    broker.mkdir()
    (broker / "passwd").write_text("BR-1:$7$hash\n")
    (broker / "mosquitto.conf").write_text(f"password_file {broker / 'passwd'}\npid_file {broker / 'mosquitto.pid'}\n")
    (broker / "mosquitto.pid").write_text("4242\n")
    close_storage(path)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "district" / "server.db"
    path.parent.mkdir()
    fill(path)
    return path


@pytest.fixture
def target(postgres_url: str) -> Any:
    yield postgres_url
    close_storage(postgres_url)


def copy_db(source: Path, url: str, key_dir: Path, *extra: str) -> int:
    """``fe-server copy-db`` as the CLI runs it."""
    parser = argparse.ArgumentParser()
    add_copy_parser(parser.add_subparsers(dest="command"))
    return run_copy(parser.parse_args(["copy-db", "--db", str(source), "--to", url, "--key-dir", str(key_dir), *extra]))


def _pk(table: str) -> str:
    t = metadata.tables.get(table)
    return ", ".join(c.name for c in t.primary_key.columns) if t is not None else "1"


def all_rows(source: Path, url: str, table: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A table's rows on both sides, ordered by primary key, columns in the source's order."""
    con = sqlite3.connect(source)
    try:
        cur = con.execute(f"SELECT * FROM {table} ORDER BY {_pk(table)}")
        columns = [d[0] for d in cur.description]
        left = cur.fetchall()
    finally:
        con.close()
    with psycopg.connect(url) as pg:
        right = pg.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {_pk(table)}").fetchall()
    return left, right


def _target_tables(url: str) -> dict[str, int]:
    with psycopg.connect(url) as pg:
        return rows.target_counts(pg, [t.name for t in metadata.sorted_tables])


def test_the_copy_is_exact_and_verifies(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 0
    out = capsys.readouterr().out
    assert f"to {redact(target)}" in out and "verified on the target as on the source" in out
    tables = [t.name for t in metadata.sorted_tables]
    non_empty = 0
    for table in tables:
        left, right = all_rows(source, target, table)
        if table == "apscheduler_jobs":
            assert [r[0] for r in left] == [r[0] for r in right] and len(left) == 1
            job = pickle.loads(right[0][2])  # noqa: S301 - the test's own row
            assert job["kwargs"]["db"] == redact(target)  # a run asked for by hand runs on the new database
            assert job["kwargs"]["key_path"] == str(key_dir / "server.server.key")
            continue
        assert left == right, table
        non_empty += bool(left)
    assert non_empty >= 15  # the filling reached most of the schema
    with storage_for(target).reading() as tx:
        report = verify(tx, SERVER_KEY.public_hex)
    assert report.ok and report.events == EVENTS and report.log_size == EVENTS and len(report.tree_heads) >= 3
    assert all(h.root_matches and h.signature_valid for h in report.tree_heads)


def test_key_files_move_into_the_key_folder(source: Path, target: str, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 0
    old_broker = source.with_name("server.db.broker")
    assert (key_dir / "server.server.key").read_bytes() == source.with_name("server.db.server.key").read_bytes()
    assert (key_dir / "server.server.key").stat().st_mode & 0o777 == 0o600
    code_keys = sorted(p.name for p in source.parent.glob("server.db.code-*.key"))
    assert code_keys and sorted(p.name for p in key_dir.glob("server.code-*.key")) == [n.replace("server.db.", "server.", 1) for n in code_keys]
    new_broker = key_dir / "server.broker"
    assert (new_broker / "passwd").read_text() == (old_broker / "passwd").read_text()
    assert (new_broker / "mosquitto.conf").read_text() == f"password_file {new_broker / 'passwd'}\npid_file {new_broker / 'mosquitto.pid'}\n"
    assert not (new_broker / "mosquitto.pid").exists()  # the old folder's running broker is not the new folder's


def test_identity_sequences_continue_past_the_copied_ids(source: Path, target: str, tmp_path: Path) -> None:
    assert copy_db(source, target, tmp_path / "keys") == 0
    with storage_for(target).reading() as tx:
        highest = tx.scalar(_MAX_REJECTED)
        highest_run = max(r[0] for r in tx.all(sql("SELECT id FROM job_runs ORDER BY id")))
    assert highest >= 1
    out = store_batch(target, [_incoming(500, SigningKey.generate())], DeviceKeys())
    assert out.stored == 0  # a forged message: one more rejected row
    with storage_for(target).writing() as tx:
        assert tx.scalar(_MAX_REJECTED) == highest + 1
        assert jobs.claim_run(tx, "devices", 1, 1) == highest_run + 1
    for table, column in (("alerts", "id"), ("no_disturb", "id"), ("account_changes", "id")):
        with psycopg.connect(target) as pg:
            seq_next = pg.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}'))").fetchone()[0]
            assert seq_next > (pg.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()[0]), table
            pg.rollback()


def test_a_non_empty_target_is_refused_untouched(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dbmod.migrate(target)
    with storage_for(target).writing() as tx:
        tx.run(sql("INSERT INTO fields(field_id, name, name_en) VALUES ('x', 'x', 'x')"))
    before = _target_tables(target)
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 1
    assert "table fields has rows" in capsys.readouterr().err
    assert _target_tables(target) == before and not key_dir.exists()


def test_a_failure_in_the_middle_leaves_the_target_empty(source: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = rows.copy_table
    done: list[str] = []

    def failing(src: Any, con: Any, table: str, row_fn: Any = None) -> int:
        if len(done) == len(metadata.sorted_tables) // 2:
            raise psycopg.errors.DiskFull("no space left on device (simulated)")
        done.append(table)
        return real(src, con, table, row_fn)

    monkeypatch.setattr(rows, "copy_table", failing)
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 1
    assert "nothing copied" in capsys.readouterr().err
    assert sum(_target_tables(target).values()) == 0
    monkeypatch.setattr(rows, "copy_table", real)
    assert copy_db(source, target, key_dir) == 0  # the keys written before the failure are the same: no conflict
    assert _target_tables(target)["events"] == EVENTS


def test_a_source_written_during_the_copy_is_not_copied(source: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A server still running on the file stores an event while the rows are on their way: the copy, of a snapshot,
    would miss it, so it is rolled back."""
    real = rows.copy_table

    def racing(src: Any, con: Any, table: str, row_fn: Any = None) -> int:
        if table == "events":
            assert store_batch(str(source), [_incoming(EVENTS + 1)], DeviceKeys()).stored == 1
            close_storage(source)
        return real(src, con, table, row_fn)

    monkeypatch.setattr(rows, "copy_table", racing)
    assert copy_db(source, target, tmp_path / "keys") == 1
    err = capsys.readouterr().err
    assert "the source changed during the copy" in err and f"events had {EVENTS} rows, has {EVENTS + 1} now" in err
    assert sum(_target_tables(target).values()) == 0


def test_a_key_folder_of_another_server_is_refused(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    SigningKey.generate().save(key_dir / "server.server.key")
    assert copy_db(source, target, key_dir) == 1
    assert "server.server.key exists and differs" in capsys.readouterr().err
    assert sum(_target_tables(target).values()) == 0
    assert not list(key_dir.glob("server.code-*.key"))


def test_a_tampered_source_is_not_copied(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = dbmod.connect(source)
    con.execute("UPDATE events SET device_time_ms = device_time_ms + 1 WHERE seq = 3")  # the row no longer matches its leaf
    con.close()
    assert copy_db(source, target, tmp_path / "keys") == 1
    assert "does not verify" in capsys.readouterr().err
    assert sum(_target_tables(target).values()) == 0


def test_the_server_on_the_url_reads_the_copy(source: Path, target: str, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 0
    settings = ServerSettings(db_path=target, key_dir=key_dir, mqtt_enabled=False, jobs_enabled=False)
    with TestClient(create_app(settings)) as client:
        overview = Api(client).get("/api/v1/overview")
        assert overview.status_code == 200, overview.text
        body = overview.json()
        assert (body["devices"], body["events"], body["rejected"]) == (2, EVENTS, 1)
        head = Api(client).get("/api/v1/evidence/tree-head")
        assert head.status_code == 200, head.text
        assert head.json()["tree_size"] == EVENTS
    with storage_for(target).reading() as tx:
        report = verify(tx, SERVER_KEY.public_hex)  # the server signed its heads with the copied key
    assert report.ok and all(h.signature_valid for h in report.tree_heads)
    assert settings.server_key_path.read_bytes() == source.with_name("server.db.server.key").read_bytes()


def test_the_commands_common_options_serve_it(source: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Wired as the lead wires it (``add_copy_parser(sub, _add_db)``): a relative --db is the file, made absolute;
    SQLite's own tables (ANALYZE's statistics) are not data to copy."""
    from server.cli_parser import _add_db

    con = dbmod.connect(source)
    con.execute("ANALYZE")
    con.close()
    monkeypatch.chdir(source.parent)
    parser = argparse.ArgumentParser()
    add_copy_parser(parser.add_subparsers(dest="command"), _add_db)
    args = parser.parse_args(["copy-db", "--db", source.name, "--to", target, "--key-dir", str(tmp_path / "keys")])
    assert args.db == str(source)
    assert run_copy(args) == 0, capsys.readouterr().err


def test_the_source_must_be_a_sqlite_file_and_the_key_folder_given(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert copy_db(tmp_path / "missing.db", target, tmp_path / "keys") == 1
    assert "no such SQLite database" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    parser = argparse.ArgumentParser()
    add_copy_parser(parser.add_subparsers(dest="command"))
    assert run_copy(parser.parse_args(["copy-db", "--db", str(tmp_path / "x.db"), "--to", target])) == 1
    assert "give --key-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["copy-db", "--to", str(tmp_path / "other.db")])
