"""Past one machine: several server processes of different roles over one PostgreSQL database and one broker.

- Three ingest processes share the devices' uplinks through one shared subscription (``$share/fe-ingest/...``);
  SIGKILL one of them twice and the broker once, under load from 20 devices: every accepted event is stored
  exactly once, the evidence log verifies, no sequence gap is left and no chain break is alerted.
- Two agencies scanning one enterprise at the same moment through two API processes (one of them with two HTTP
  workers) end in one joint inspection.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.storage.engine import sql, storage_for
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, assert_exactly_once, http_json

pytestmark = pytest.mark.system

INGEST_WORKERS = 3
DEVICES = 20
#: Seconds between a device's submissions: 20 devices at 5 events/s keep three ingest workers busy on two shared cores
#: without a backlog that would only make the drain at the end long.
SUBMIT_INTERVAL_S = 0.2
GAPS = sql("SELECT device_id, stored_count, max_seq FROM device_state WHERE stored_count <> max_seq ORDER BY device_id")
CHAIN_ALERTS = sql("SELECT count(*) FROM alerts WHERE kind = 'chain_break'")


class Pump:
    """Submits scans from a thread at a steady pace until stopped, recording every outcome (202 = accepted)."""

    def __init__(self, dev: DeviceRun) -> None:
        self.dev = dev
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(SUBMIT_INTERVAL_S):
            eid = str(uuid.uuid4())
            try:
                self.dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "FE1:scale-out"}, eid)
            except OSError:
                self.dev.submitted[eid] = -1  # in doubt: the agent may or may not have stored it

    def close(self) -> int:
        """Stop; the number of events the agent accepted."""
        self.stop.set()
        self.thread.join(timeout=30)
        return sum(1 for c in list(self.dev.submitted.values()) if c == 202)


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _received(proc: Any) -> float:
    try:
        return proc.metric("fe_messages_received_total")
    except OSError:
        return 0.0


def test_three_ingest_workers_share_the_uplinks_through_kills(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(persistence=True, backend="postgresql", ingest_workers=INGEST_WORKERS)
    db = stack.server.db
    api = stack.server = stack.add_server("api", "--role", "api")
    api.start_and_wait(connected=False)  # migrates the database
    scheduler = stack.add_server("scheduler", "--role", "scheduler")
    scheduler.start_and_wait(connected=False)
    workers = [stack.add_server(f"ingest-{k}", "--role", "ingest", "--ingest-worker", str(k)) for k in range(1, INGEST_WORKERS + 1)]
    for w in workers:
        w.start_and_wait()
    devices = stack.add_devices(DEVICES)
    for d in devices:
        d.start()
    pumps = [Pump(d) for d in devices]
    try:
        wait_for(lambda: all(_received(w) > 0 for w in workers), 60, message="not every ingest worker got a share of the uplinks")
        workers[0].kill()
        time.sleep(2)
        workers[0].start_and_wait()
        stack.broker.kill()
        time.sleep(1)
        stack.broker.restart()
        for w in workers:  # each reconnects by itself, to its persistent session
            wait_for(lambda w=w: http_json(w.url + "/health")[1]["mqtt_connected"], 60, message=lambda w=w: f"{w.name} did not reconnect:\n{w.log_tail()}")
        time.sleep(2)
        workers[0].kill()
        time.sleep(2)
        workers[0].start_and_wait()
        time.sleep(2)
    finally:
        accepted = sum(p.close() for p in pumps)
    assert accepted > DEVICES * 10
    assert_exactly_once(db, devices, timeout=180)
    store = storage_for(db)
    assert store.read(lambda tx: tx.all(GAPS)) == []
    assert store.read(lambda tx: tx.scalar(CHAIN_ALERTS)) == 0
    verify = subprocess.run(
        [sys.executable, "-m", "server.cli", "verify", "--db", db, "--key-dir", str(stack.workdir), "--signatures"],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_agencies_through_two_api_processes_end_in_one_joint_inspection(stack_factory: Callable[..., Stack]) -> None:
    from tests.server.conftest import code, seed

    stack = stack_factory(backend="postgresql")
    first = stack.server = stack.add_server("api-1", "--role", "api")
    first.start_and_wait(connected=False)
    second = stack.add_server("api-2", "--role", "api", "--workers", "2")  # and one of them with two HTTP workers
    second.start_and_wait(connected=False)
    assert second.popen is not None
    workers = [c for c in _children(second.popen.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
    assert len(workers) == 2, workers  # uvicorn's supervisor started its two worker processes
    rounds = 12
    enterprises = [code(1000 + n) for n in range(rounds)]
    store = storage_for(stack.server.db)
    with store.writing() as tx:
        seed(tx)
        tx.many(
            sql("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (:code, :name, '', '110108', 'high', 'C')"),
            [{"code": c, "name": f"并发测试企业{n}"} for n, c in enumerate(enterprises)],
        )
    tokens = {officer: first.token(officer) for officer in ("OFF-SAMR-1", "OFF-FIRE-1")}  # sessions hold on both processes
    for credit_code in enterprises:
        text = first.text(f"/api/v1/enterprises/{credit_code}/qr.txt").strip()
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def go(server: Any, officer: str, field: str, code_text: str = text) -> None:
            barrier.wait()
            results.append(http_json(server.url + "/api/v1/scans", {"officer_id": officer, "code_text": code_text, "field": field}, token=tokens[officer]))

        threads = [threading.Thread(target=go, args=(first, "OFF-SAMR-1", "food")), threading.Thread(target=go, args=(second, "OFF-FIRE-1", "fire"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [s for s, _ in results] == [200, 200], results
        assert sorted(b["outcome"] for _, b in results) == ["allowed", "join"], results
        assert len({b["inspection_id"] for _, b in results}) == 1
    per_enterprise = store.read(
        lambda tx: tx.all(sql("SELECT credit_code, count(*) FROM inspections WHERE credit_code IN (:codes) GROUP BY credit_code ORDER BY credit_code"), codes=enterprises)
    )
    assert per_enterprise == [(c, 1) for c in sorted(enterprises)]
    # The supervisor killed outright: its workers go with it, not on serving its port with nobody to stop them.
    second.kill()
    wait_for(lambda: not any(_alive(w) for w in workers), timeout=20, message=f"uvicorn workers {workers} outlived their supervisor")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphan's exit waits for init to collect it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
