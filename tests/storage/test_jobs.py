"""server/storage/jobs.py and the scheduler's leader lock on both backends: job-run slot claims (also between two
transactions racing for one slot), the rows of device checks, draws, disclosure, samples, the recording check and
retention; one leader among several schedulers, a successor when the leader's process dies, one run per slot."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.signing import SigningKey
from server.jobs import tasks as jobs_module
from server.jobs.scheduler import Scheduler, slot_of, trigger_of
from server.storage import draws, jobs
from server.storage.engine import Storage, Tx, sql
from server.storage.leader import AdvisoryLock, FileLock, leader_lock
from tests.server.conftest import seed

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "server" / "policy.toml"
#: How long a test waits for a scheduler to notice something (several leader retries).
DEADLINE_S = 15.0
RETRY_S = 0.2

DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:id, 'M', 'phone', 'SAMR', 'k', 0)")
DEVICE_STATE = sql("INSERT INTO device_state(device_id, last_seen_ms, online, presence_ms) VALUES (:id, 5, 1, 7)")
ALERT = sql("INSERT INTO alerts(created_ms, kind, severity, device_id, message_zh, message_en) VALUES (:at, :kind, 'warning', :id, 'z', 'e')")
EVENT = sql("""
    INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json)
    VALUES (:id, 'D1', :seq, :type, 0, 0, 0, :stored, 'json', :body, :body, '{}')
""")
LOG_ENTRY = sql("INSERT INTO evidence_log(idx, event_id, leaf_hash, appended_ms) VALUES (:idx, :id, :leaf, 0)")
REJECTED = sql("""
    INSERT INTO rejected(received_ms, topic, reason_code, reason, raw) VALUES (:at, 't', 'bad', 'bad', :raw)
""")
INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms)
    VALUES (:id, :code, 'SAMR', 'food', 'ended', 0, :ended)
""")
EVENT_IDS = sql("SELECT event_id FROM events ORDER BY event_id")
REMOVED = sql("SELECT event_id, log_index, rule FROM retention_removed ORDER BY event_id")
ONLINE = sql("SELECT online FROM device_state WHERE device_id = :id")


@pytest.fixture
def seeded(store: Storage) -> Storage:
    with store.writing() as tx:
        seed(tx)
    return store


# --- job runs ---------------------------------------------------------------------------------------------------


def test_a_slot_is_claimed_once(store: Storage) -> None:
    with store.writing() as tx:
        first = jobs.claim_run(tx, "draws", 60_000, 60_001)
        assert isinstance(first, int)
        assert jobs.claim_run(tx, "draws", 60_000, 60_005) is None  # the same slot: no second run
        assert jobs.claim_run(tx, "devices", 60_000, 60_002) is not None  # another job's slot
        assert jobs.claim_run(tx, "draws", 120_000, 120_001) is not None  # the next slot
        jobs.finish_run(tx, first, 60_900, "ok", '{"drawn": []}')
        jobs.record_failed_run(tx, "draws", 60_000, 60_000, 60_003, "boom")  # the slot has its run: nothing added
        jobs.record_failed_run(tx, "draws", 180_000, 180_001, 180_003, "RuntimeError: boom")
    with store.reading() as tx:
        assert jobs.runs_of(tx, "draws") == [(60_000, "ok"), (120_000, "running"), (180_000, "error")]
        assert jobs.last_run(tx, "draws") == (180_001, 180_003, "error", "RuntimeError: boom")
        assert jobs.last_run(tx, "sampling") is None


def test_two_transactions_racing_for_one_slot_run_it_once(store: Storage) -> None:
    """The second claim waits for the first transaction: after a rollback the slot is free again (the work of a
    failed run is undone with its claim); after a commit the second finds the run and skips."""
    outcomes: dict[str, Any] = {}
    first_claimed, release = threading.Event(), threading.Event()

    def first(slot: int, commit: bool) -> None:
        try:
            with store.writing() as tx:
                outcomes["first"] = jobs.claim_run(tx, "tree_head", slot, slot + 1)
                first_claimed.set()
                release.wait(DEADLINE_S)
                if not commit:
                    raise RuntimeError("the job failed")
        except RuntimeError:
            pass

    def second(slot: int) -> None:
        first_claimed.wait(DEADLINE_S)
        with store.writing() as tx:
            outcomes["second"] = jobs.claim_run(tx, "tree_head", slot, slot + 2)

    for slot, commit in ((1_000, False), (2_000, True)):
        outcomes.clear()
        first_claimed.clear()
        release.clear()
        threads = [threading.Thread(target=first, args=(slot, commit)), threading.Thread(target=second, args=(slot,))]
        for t in threads:
            t.start()
        first_claimed.wait(DEADLINE_S)
        time.sleep(0.2)  # time for the second claim to reach the first transaction's row (it waits on a lock)
        assert "second" not in outcomes
        release.set()
        for t in threads:
            t.join(DEADLINE_S)
        assert outcomes["first"] is not None
        assert (outcomes["second"] is None) is commit
    assert store.read(lambda tx: jobs.runs_of(tx, "tree_head")) == [(1_000, "running"), (2_000, "running")]


# --- device checks ----------------------------------------------------------------------------------------------


def test_device_rows_for_the_presence_check(seeded: Storage) -> None:
    with seeded.writing() as tx:
        for device_id in ("D2", "D1"):
            tx.run(DEVICE, id=device_id)
            tx.run(DEVICE_STATE, id=device_id)
        tx.run(ALERT, at=100, kind="device_offline", id="D1")
        assert jobs.devices_to_check(tx) == [("D1", "phone", 5, 1, 7, None), ("D2", "phone", 5, 1, 7, None)]
        assert jobs.device_alerted_since(tx, "device_offline", "D1", 100)
        assert not jobs.device_alerted_since(tx, "device_offline", "D1", 101)
        assert not jobs.device_alerted_since(tx, "device_backlog", "D1", 0)
        jobs.mark_offline(tx, "D1")
        assert tx.scalar(ONLINE, id="D1") == 0 and tx.scalar(ONLINE, id="D2") == 1


# --- draws ------------------------------------------------------------------------------------------------------


def _draw(tx: Tx, draw_id: str, count: int, committed_ms: int, region: str = "110108") -> None:
    draws.insert_draw(
        tx, draw_id=draw_id, agency_id="SAMR", field="food", region=region, title="t", enterprise_count=count, officers_per_team=1,
        seed_hash="h", seed="00" * 32, committed_ms=committed_ms, draw_at_ms=committed_ms + 10,
    )  # fmt: skip


def test_draw_rows(seeded: Storage) -> None:
    from tests.server.conftest import GOOD, PLAIN

    with seeded.writing() as tx:
        assert draws.agency_region_fields(tx, "SAMR") == ("110108", '["food"]') and draws.agency_region_fields(tx, "NOPE") is None
        assert draws.field_registered(tx, "food") and not draws.field_registered(tx, "nope")
        assert draws.region_registered(tx, "110108") and not draws.region_registered(tx, "999999")
        assert draws.enterprises_announced(tx, "SAMR", "food", "110108", 0) == 0
        _draw(tx, "A", 3, 1_000)
        _draw(tx, "B", 2, 2_000)
        _draw(tx, "C", 9, 2_000, region="")
        announced = draws.enterprises_announced(tx, "SAMR", "food", "110108", 1_000)
        assert announced == 2 and type(announced) is int  # after 1_000 only: B (PostgreSQL's sum() is numeric)
        assert [d[0] for d in draws.due_draws(tx, 2_010)] == ["A", "B", "C"] and [d[0] for d in draws.due_draws(tx, 1_010)] == ["A"]
        assert draws.mark_drawn(tx, "A", 5_000, '{"teams": []}')
        assert not draws.mark_drawn(tx, "A", 6_000, "{}")  # drawn once
        draws.insert_draw_plan(tx, plan_id="A", agency_id="SAMR", field="food", title="t", valid_from_ms=5_000, valid_to_ms=9_000, targets=[PLAIN, GOOD])
        assert draws.draw_target_names(tx, "A") == {PLAIN: "海淀某餐饮公司", GOOD: "守信示范企业"}
        row = draws.draw(tx, "A")
        assert row is not None and (row["status"], row["drawn_ms"], row["result_json"]) == ("drawn", 5_000, '{"teams": []}')
        assert draws.draw(tx, "nope") is None
        assert [d[0] for d in draws.due_draws(tx, 9_999)] == ["B", "C"]
        ents = draws.enterprises_not_protected(tx, "110108", 0, int(time.time() * 1000))
        assert GOOD not in [e[0] for e in ents] and (PLAIN, "medium", "B", 0) in ents  # GOOD is on the no-disturb list
        assert draws.enterprises_not_protected(tx, "999999", 0, 0) == [] and len(draws.enterprises_not_protected(tx, "", 0, 0)) == 3
        assert [o for o, _ in draws.officers_valid(tx, "SAMR", int(time.time() * 1000))] == ["OFF-SAMR-1", "OFF-SAMR-2"]
        assert draws.declared_conflicts(tx) == []


# --- disclosure and samples -------------------------------------------------------------------------------------


def _decision(tx: Tx, decision_id: str, agency_id: str, decided_on: str, deadline: str = "2026-11-10") -> bool:
    return jobs.insert_decision(
        tx, decision_id=decision_id, agency_id=agency_id, kind="other", case_no="", credit_code=None, decided_on=decided_on,
        deadline=deadline, calendar_approximate=0,
    )  # fmt: skip


def test_decision_and_sample_rows(store: Storage) -> None:
    with store.writing() as tx:
        assert _decision(tx, "D2", "SAMR", "2026-10-31", "2026-11-12") and _decision(tx, "D1", "SAMR", "2026-10-01")
        assert _decision(tx, "D3", "FIRE", "2026-11-01") and _decision(tx, "D0", "FIRE", "2026-09-30")
        assert not _decision(tx, "D1", "FIRE", "2026-10-02")  # registered already: nothing changed
        assert jobs.decision(tx, "D1") == ("SAMR", "2026-11-10") and jobs.decision(tx, "nope") is None
        assert [d[0] for d in jobs.pending_decisions(tx)] == ["D0", "D1", "D3", "D2"]  # by deadline, then id
        jobs.set_disclosed(tx, "D1", "2026-11-09", "disclosed_on_time")
        assert jobs.mark_missed(tx, "D0") and not jobs.mark_missed(tx, "D0") and not jobs.mark_missed(tx, "D1")  # D1 is disclosed
        assert jobs.mark_due_alerted(tx, "D2") and not jobs.mark_due_alerted(tx, "D2") and not jobs.mark_due_alerted(tx, "D0")
        assert [(d[0], d[4]) for d in jobs.pending_decisions(tx)] == [("D3", 0), ("D2", 1)]
        assert jobs.on_time_counts(tx) == [("FIRE", 0, 1), ("SAMR", 1, 1)]
        # October 2026: the 1st to the 31st, by text comparison of ISO dates (no substr/strftime)
        assert jobs.agencies_deciding(tx, "2026-10-01", "2026-11-01") == ["SAMR"]
        assert jobs.decisions_of(tx, "SAMR", "2026-10-01", "2026-11-01") == ["D1", "D2"]
        made = jobs.insert_sample(tx, sample_id="S-1", agency_id="SAMR", period="2026-10", seed="s", drawn_ms=1, population=2, items=["D1", "D2"])
        again = jobs.insert_sample(tx, sample_id="S-2", agency_id="SAMR", period="2026-10", seed="s", drawn_ms=2, population=2, items=["D1"])
        assert made and not again  # one sample per agency and month
        assert jobs.record_review(tx, sample_id="S-1", decision_id="D1", result="pass", reviewer="r", notes="", reviewed_ms=3)
        assert not jobs.record_review(tx, sample_id="S-1", decision_id="D3", result="pass", reviewer="r", notes="", reviewed_ms=3)
        counts = jobs.sample_counts(tx)
        assert counts == [("S-1", "SAMR", "2026-10", 2, 1, 1)] and all(type(n) is int for n in counts[0][3:])


# --- the recording check and retention --------------------------------------------------------------------------


def test_recording_check_rows(seeded: Storage) -> None:
    from tests.server.conftest import PLAIN, UNREGISTERED

    with seeded.writing() as tx:
        for iid, code, ended in (("I2", PLAIN, 200), ("I1", UNREGISTERED, 200), ("I3", PLAIN, 500)):
            tx.run(INSPECTION, id=iid, code=code, ended=ended)
        assert jobs.ended_unchecked(tx, 300, 10) == [("I1", UNREGISTERED, None, "SAMR", "市场监管局"), ("I2", PLAIN, "海淀某餐饮公司", "SAMR", "市场监管局")]
        assert [r[0] for r in jobs.ended_unchecked(tx, 300, 1)] == ["I1"]
        assert jobs.mark_recording_checked(tx, "I1", 400) and not jobs.mark_recording_checked(tx, "I1", 401)
        assert [r[0] for r in jobs.ended_unchecked(tx, 1_000, 10)] == ["I2", "I3"]


def test_retention_removes_old_heartbeats_with_their_log_index_and_old_rejections(seeded: Storage) -> None:
    with seeded.writing() as tx:
        tx.run(DEVICE, id="D1")
        rows = [("E1", 1, "device_status", 10), ("E2", 2, "scan", 10), ("E3", 3, "device_status", 10), ("E4", 4, "device_status", 99)]
        for event_id, seq, typ, stored in rows:
            tx.run(EVENT, id=event_id, seq=seq, type=typ, stored=stored, body=event_id.encode())
        tx.run(LOG_ENTRY, idx=0, id="E1", leaf=b"\x01" * 32)  # E3 was never logged
        tx.many(REJECTED, [{"at": at, "raw": b"x"} for at in (5, 6, 50)])
        assert jobs.remove_status_events(tx, 50, 1_000, "old") == 2
        assert jobs.remove_rejected(tx, 10) == 2
        assert [r[0] for r in tx.all(EVENT_IDS)] == ["E2", "E4"]
        assert tx.all(REMOVED) == [("E1", 0, "old"), ("E3", None, "old")]
        assert jobs.remove_status_events(tx, 50, 1_000, "old") == 0 and jobs.remove_rejected(tx, 10) == 0


# --- the leader lock --------------------------------------------------------------------------------------------


def test_one_leader_lock_holder_at_a_time(db_url: str) -> None:
    a, b = leader_lock(db_url), leader_lock(db_url)
    assert isinstance(a, AdvisoryLock if db_url.startswith("postgresql") else FileLock)
    try:
        assert a.acquire() and a.acquire()  # taking it again is a no-op
        assert not b.acquire() and not b.held()
        a.release()
        assert not a.held() and b.acquire() and b.held()
    finally:
        a.release()
        b.release()


def test_a_leader_whose_session_ends_loses_the_lock(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a file lock has no session to end: its holder's death is the subprocess test below")
    import psycopg

    a, b = AdvisoryLock(db_url), AdvisoryLock(db_url)
    try:
        assert a.acquire()
        pid = a.backend_pid()
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert _until(lambda: not a.held())
        assert b.acquire()
    finally:
        a.release()
        b.release()


# --- schedulers of one database -----------------------------------------------------------------------------------


def _until(condition: Callable[[], bool], timeout_s: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "server.key"
    SigningKey.from_seed(bytes(range(32))).save(path)
    return path


@pytest.fixture
def schedulers(db_url: str, key_path: Path) -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(**kw: Any) -> Scheduler:
        s = Scheduler(db_url, key_path, POLICY, retry_s=RETRY_S, **kw)
        made.append(s)
        s.start()
        return s

    yield make
    for s in made:
        s.stop()


def test_one_scheduler_leads_and_another_takes_over_when_it_stops(schedulers: Callable[..., Scheduler]) -> None:
    first, second = schedulers(), schedulers()
    assert first.is_leader and not second.is_leader
    assert [j["id"] for j in second.jobs()] == sorted(jobs_module.JOBS)  # the leader's plan, read from the shared store
    assert all(j["next_run_ms"] for j in second.jobs())
    first.stop()
    assert _until(lambda: second.is_leader)


def test_a_leader_whose_connection_dies_steps_down_and_another_takes_over(db_url: str, schedulers: Callable[..., Scheduler]) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's lock has no connection: a leader loses it only with its process (the next test)")
    import psycopg

    first, second = schedulers(), schedulers()
    assert isinstance(first.lock, AdvisoryLock) and first.is_leader
    lost = first.lock.backend_pid()
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (lost,))
    # one leader again, on a live session (the second, usually: the one that lost waits a round before trying again)
    assert _until(lambda: second.is_leader != first.is_leader and lost not in (first.lock.backend_pid(), second.lock.backend_pid()))


_LEADER = """
import sys, time
from server.jobs.scheduler import Scheduler
s = Scheduler(sys.argv[1], sys.argv[2], sys.argv[3], retry_s=0.2)
s.start()
print("leader" if s.is_leader else "follower", flush=True)
time.sleep(600)
"""


def test_when_the_leaders_process_dies_another_scheduler_takes_over(db_url: str, key_path: Path, schedulers: Callable[..., Scheduler]) -> None:
    """SIGKILL: no stop(), no release; PostgreSQL ends the session (and its advisory lock), the kernel the flock."""
    child = subprocess.Popen(
        [sys.executable, "-c", _LEADER, db_url, str(key_path), str(POLICY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "leader\n", child.stderr.read() if child.stderr else ""
        standby = schedulers()
        time.sleep(3 * RETRY_S)
        assert not standby.is_leader  # the child leads
        os.kill(child.pid, signal.SIGKILL)
        child.wait(DEADLINE_S)
        assert _until(lambda: standby.is_leader)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=DEADLINE_S)  # reaps it and closes its pipes


class _AlwaysLeader:
    """A lock every scheduler holds: two leaders at once, as when a stalled leader wakes up after a takeover."""

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def test_two_leaders_at_once_still_run_each_slot_once(
    schedulers: Callable[..., Scheduler], store: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Both schedulers fire a one-second job for the same slots (interval triggers share an origin); the claims in
    job_runs let one run per slot through."""
    runs: list[int] = []

    def tick(tx: Tx, ctx: object, now_ms: int) -> dict[str, Any]:
        runs.append(now_ms)
        return {}

    monkeypatch.setattr(jobs_module, "JOBS", {"tick": (tick, {"trigger": "interval", "seconds": 1}, "测试", "tick")})
    monkeypatch.setattr("server.jobs.scheduler.JOBS", jobs_module.JOBS)
    caplog.set_level(logging.INFO, logger="server.jobs.scheduler")
    schedulers(lock=_AlwaysLeader())
    schedulers(lock=_AlwaysLeader())
    skipped = lambda: sum("already run by another scheduler" in r.getMessage() for r in caplog.records)  # noqa: E731
    assert _until(lambda: len(store.read(lambda tx: jobs.runs_of(tx, "tick"))) >= 3 and skipped() >= 1)  # both fired
    slots = [slot for slot, _ in store.read(lambda tx: jobs.runs_of(tx, "tick"))]
    assert len(slots) == len(set(slots)) and all(slot is not None and slot % 1000 == 0 for slot in slots)
    assert len(runs) <= len(slots) + 2  # a run may be under way (claimed, not yet committed) when the rows are read


def test_slots_are_the_triggers_own_times() -> None:
    import datetime as dt

    from server.jobs.scheduler import TZ

    minute = trigger_of({"trigger": "interval", "minutes": 1})
    assert slot_of(minute, dt.datetime(2026, 11, 25, 9, 30, 42, tzinfo=TZ)) == dt.datetime(2026, 11, 25, 9, 30, tzinfo=TZ)
    twice = trigger_of({"trigger": "cron", "hour": "8,16", "minute": 5})
    assert slot_of(twice, dt.datetime(2026, 11, 25, 16, 7, tzinfo=TZ)) == dt.datetime(2026, 11, 25, 16, 5, tzinfo=TZ)
    assert slot_of(twice, dt.datetime(2026, 11, 25, 8, 5, tzinfo=TZ)) == dt.datetime(2026, 11, 25, 8, 5, tzinfo=TZ)
    late = dt.datetime(2026, 11, 25, 23, 0, tzinfo=TZ)  # beyond the misfire grace of the 16:05 run: a slot of its own
    assert slot_of(twice, late) == late

