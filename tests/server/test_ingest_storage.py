"""The ingest's writer when the database cannot write: it pauses (holding back PUBACKs), keeps and retries the
batch, and resumes by itself. A unit test of server/ingest/subscriber.py on a real SQLite file whose size is capped with
``PRAGMA max_page_count`` (the system test fills a real filesystem: tests/system/test_ingest_faults.py), and on a
private PostgreSQL cluster that is killed and started again."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from protocol import topics
from protocol.codec import seal
from protocol.config import load_toml
from protocol.decision import Policy
from protocol.messages import EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from server.ingest import subscriber as ingestmod
from server.storage import engine
from server.storage.engine import close_storage, sql, storage_for
from server.ingest.metrics import IngestMetrics
from server.settings import ServerSettings
from tests.support.waiting import wait_for

KEY = SigningKey.from_seed(bytes(range(32)))
POLICY_FILE = Path(ingestmod.__file__).parents[1] / "policy.toml"


def event(seq: int) -> bytes:
    msg = EnterpriseScanned(
        event_id=str(uuid.uuid4()), device_id="BR-1", seq=seq, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O", code_text="c"
    )
    return seal(msg, KEY)


def message(mid: int, payload: bytes) -> mqtt.MQTTMessage:
    m = mqtt.MQTTMessage(mid=mid, topic=topics.device_up("BR-1").encode())
    m.payload = payload
    m.qos = 1
    return m


@pytest.fixture
def capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ingestmod.Ingest, list[sqlite3.Connection], list[tuple[int, int]]]]:
    """An Ingest (not connected) whose writer's database file cannot grow past its size at start."""
    path = tmp_path / "s.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'A', ?, 0)", (KEY.public_hex,))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    writers: list[sqlite3.Connection] = []
    real_connect = engine.sqlite_connect

    def connect(p: object, *, readonly: bool = False) -> sqlite3.Connection:
        c = real_connect(p, readonly=readonly)  # type: ignore[arg-type]
        if not readonly and not writers:  # the writer's own connection: as on a full disk, the file cannot grow
            c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}")
            writers.append(c)
        return c

    monkeypatch.setattr(engine, "sqlite_connect", connect)
    monkeypatch.setattr(ingestmod, "STORAGE_RETRY_MAX_S", 0.2)
    settings = ServerSettings(db_path=path, jobs_enabled=False)
    ing = ingestmod.Ingest(settings, SigningKey.generate(), IngestMetrics(), load_toml(POLICY_FILE, Policy))
    acks: list[tuple[int, int]] = []
    monkeypatch.setattr(ing._client, "ack", lambda mid, qos: acks.append((mid, qos)))
    ing.start_workers()
    try:
        yield ing, writers, acks
    finally:
        ing.stop_workers(10)
        engine.close_storage(path)


def stored(path: Path) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        con.close()


def test_a_full_database_pauses_the_ingest_and_it_resumes_by_itself(capped) -> None:  # type: ignore[no-untyped-def]
    ing, writers, acks = capped
    client = ing._client
    payloads = [event(seq) for seq in range(1, 201)]
    for mid, p in enumerate(payloads[:100], start=1):
        ing._on_message(client, None, message(mid, p))
    wait_for(lambda: ing.degraded is not None, 10, message="the writer did not notice the full database")
    assert "full" in ing.degraded and ing.healthy  # paused, not stopped  # type: ignore[operator]
    assert ing.metrics.registry.get_sample_value("fe_ingest_storage_ok") == 0
    acked = len(acks)
    for mid, p in enumerate(payloads[100:], start=101):  # the broker's in-flight window goes on meanwhile
        ing._on_message(client, None, message(mid, p))
    assert len(acks) == acked  # held back: the broker keeps the rest of the session
    before = stored(ing.settings.db_path)
    writers[0].execute("PRAGMA max_page_count = 1073741823")  # space returns
    wait_for(lambda: ing.degraded is None and stored(ing.settings.db_path) == 200, 20, message="the ingest did not resume")
    assert before < 200
    assert acks == [(mid, 1) for mid in range(1, 201)]  # every message acknowledged once, in arrival order
    con = sqlite3.connect(f"file:{ing.settings.db_path}?mode=ro", uri=True)
    try:
        alerts = con.execute("SELECT kind, severity, message_en FROM alerts WHERE kind LIKE 'storage%'").fetchall()
        seqs = [s for (s,) in con.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        con.close()
    assert seqs == list(range(1, 201))  # nothing lost, nothing twice
    assert len(alerts) == 1 and alerts[0][:2] == ("storage_full", "critical") and "disk was full" in alerts[0][2]
    assert ing.metrics.registry.get_sample_value("fe_ingest_storage_ok") == 1
    assert (ing.metrics.registry.get_sample_value("fe_ingest_storage_failures_total") or 0) >= 1


_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'A', :key, 0)")
_SEQS = sql("SELECT seq FROM events ORDER BY seq")
_STORAGE_ALERTS = sql("SELECT kind, severity FROM alerts WHERE kind LIKE 'storage%' ORDER BY id")


def test_a_lost_postgresql_pauses_the_ingest_and_it_resumes_by_itself(postgres: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same pause on PostgreSQL: the server is gone (killed), the writer keeps its batch, holds back PUBACKs, and
    stores everything once when the server is back."""
    url = postgres.url
    dbmod.migrate(url)
    storage_for(url).write(lambda tx: tx.run(_DEVICE, key=KEY.public_hex))
    monkeypatch.setattr(ingestmod, "STORAGE_RETRY_MAX_S", 0.2)
    ing = ingestmod.Ingest(ServerSettings(db_path=url, jobs_enabled=False), SigningKey.generate(), IngestMetrics(), load_toml(POLICY_FILE, Policy))
    acks: list[tuple[int, int]] = []
    monkeypatch.setattr(ing._client, "ack", lambda mid, qos: acks.append((mid, qos)))
    payloads = [event(seq) for seq in range(1, 151)]
    committed = lambda: [s for (s,) in storage_for(url).read(lambda tx: tx.all(_SEQS))]  # noqa: E731
    ing.start_workers()
    try:
        for mid, p in enumerate(payloads[:50], start=1):
            ing._on_message(ing._client, None, message(mid, p))
        wait_for(lambda: len(committed()) == 50, 20, message="the first events were not stored")
        postgres.kill()
        for mid, p in enumerate(payloads[50:100], start=51):
            ing._on_message(ing._client, None, message(mid, p))
        wait_for(lambda: ing.degraded is not None, 60, message="the writer did not notice the lost server")
        assert "cannot write" in ing.degraded and ing.healthy  # type: ignore[operator]
        acked = len(acks)
        for mid, p in enumerate(payloads[100:], start=101):
            ing._on_message(ing._client, None, message(mid, p))
        assert len(acks) == acked  # held back while the database is away
        postgres.restart()
        wait_for(lambda: ing.degraded is None and len(committed()) == 150, 120, message="the ingest did not resume")
    finally:
        ing.stop_workers(30)
        close_storage(url)
    assert acks == [(mid, 1) for mid in range(1, 151)]  # every message acknowledged once, in arrival order
    assert storage_for(url).read(lambda tx: tx.all(_SEQS)) == [(s,) for s in range(1, 151)]  # nothing lost, nothing twice
    # One pause, one alert: the pools (server/storage/engine.py) check a connection before lending it, so none the lost
    # server closed fails again after the restart.
    alerts = storage_for(url).read(lambda tx: tx.all(_STORAGE_ALERTS))
    assert alerts == [("storage_failed", "critical")]
    close_storage(url)


def test_what_pauses_the_ingest_is_told_from_what_a_message_causes() -> None:
    import psycopg
    import psycopg_pool

    from server.storage.engine import Retry
    from server.storage.failures import CANNOT_WRITE, disk_full

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    assert disk_full(full) and disk_full(psycopg.errors.DiskFull("could not extend file")) and not disk_full(sqlite3.OperationalError("disk I/O error"))
    for e in (full, psycopg.OperationalError("server closed the connection"), psycopg_pool.PoolTimeout("no connection"), Retry("deadlocks")):
        assert isinstance(e, CANNOT_WRITE)
    for e in (sqlite3.IntegrityError("UNIQUE"), psycopg.errors.UniqueViolation("duplicate key"), ValueError("a bug")):
        assert not isinstance(e, CANNOT_WRITE)  # kept aside as processing errors, one message at a time
