"""APScheduler 3 running the supervision jobs: once per schedule across every server of a cluster.

- Leader: only the scheduler holding the leader lock (server/storage/leader.py: a PostgreSQL advisory lock on a
  session of its own, or a file lock beside a SQLite database) runs APScheduler; the others try again every
  ``retry_s`` seconds and take over within one try when the leader's process or connection dies.
- Slots: each run claims ``(job id, scheduled time)`` in ``job_runs`` (a unique index) in the transaction that does
  the job's work, so a leader that stalls past a takeover cannot run a slot twice; a run that fails is rolled back
  and recorded as the slot's error, and the next slot tries again. Runs of one job for different slots (one asked
  for by hand) take turns on a transaction lock. Interval triggers start at a fixed instant, so every scheduler
  computes the same slots.
- Jobs live in APScheduler's SQLAlchemy job store in the server's own database (table ``apscheduler_jobs``), each
  under its explicit id with ``replace_existing=True``, ``coalesce=True`` and ``max_instances=1``: a restart finds
  the same jobs, never a second copy, and a run missed while no server was up happens once, not once per miss.
  A job is a reference to ``run_job`` with plain arguments, so it survives restarts and changes of leader.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from protocol.config import load_toml
from protocol.decision import Policy
from server.jobs.tasks import JOBS, JobContext, JobSettings
from server.evidence.keys import load_or_create_server_key
from server.storage import jobs as stored
from server.storage.engine import Tx, redact, storage_for
from server.storage.leader import LeaderLock, leader_lock

log = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")
#: A run missed by up to this long (no server up) still happens once when a scheduler is back.
MISFIRE_GRACE_S = 6 * 3600
#: How often a scheduler that is not the leader tries to become it, and the leader checks it still is.
LEADER_RETRY_S = 5.0
#: Interval triggers count from here, so that every scheduler of a cluster has the same slots.
INTERVAL_ORIGIN = dt.datetime(2020, 1, 1, tzinfo=TZ)
#: What the job store refers to (a text reference survives restarts).
RUN_JOB = "server.jobs.scheduler:run_job"

#: The database (with this process's key and policy paths) each redacted name stands for in this process: the job
#: store keeps ``redact(db)`` in each job's arguments, never a password.
_databases: dict[str, tuple[str, str, str]] = {}


def trigger_of(spec: dict[str, Any]) -> BaseTrigger:
    """The APScheduler trigger of a JOBS entry's trigger arguments (intervals aligned on INTERVAL_ORIGIN)."""
    args = {k: v for k, v in spec.items() if k != "trigger"}
    if spec["trigger"] == "interval":
        return IntervalTrigger(**args, start_date=INTERVAL_ORIGIN, timezone=TZ)
    return CronTrigger(**args, timezone=TZ)


def slot_of(trigger: BaseTrigger, now: dt.datetime) -> dt.datetime:
    """The latest time ``trigger`` fires at or before ``now`` (within MISFIRE_GRACE_S; else ``now``): the slot a run
    started at ``now`` is for, the same in every scheduler."""
    if isinstance(trigger, IntervalTrigger):
        period = trigger.interval.total_seconds()
        return INTERVAL_ORIGIN + dt.timedelta(seconds=(now - INTERVAL_ORIGIN).total_seconds() // period * period)
    slot = None
    t = trigger.get_next_fire_time(None, now - dt.timedelta(seconds=MISFIRE_GRACE_S))
    while t is not None and t <= now:
        slot = t
        t = trigger.get_next_fire_time(t, t + dt.timedelta(microseconds=1))
    return slot or now


def _wall_ms() -> int:
    return int(time.time() * 1000)


def execute_job(job_id: str, db: str | Path, ctx: JobContext, now_ms: int, slot_ms: int | None = None) -> dict[str, Any]:
    """Run one job at ``now_ms`` for ``slot_ms`` (default ``now_ms``) in one transaction with its run record.

    Outcome ``skipped`` when the slot has a run already (another scheduler's); ``error`` (recorded, logged) when the
    job failed: its work is rolled back and the next slot tries again.
    """
    fn = JOBS[job_id][0]
    slot = now_ms if slot_ms is None else slot_ms
    store = storage_for(db)

    def run(tx: Tx) -> dict[str, Any] | None:
        stored.lock_job(tx, job_id)  # runs of one job for different slots (by hand, scheduled) take turns
        run_id = stored.claim_run(tx, job_id, slot, now_ms)
        if run_id is None:
            return None
        result = fn(tx, ctx, now_ms)
        stored.finish_run(tx, run_id, _wall_ms(), "ok", json.dumps(result, ensure_ascii=False))
        return result

    try:
        result = store.write(run)
    except Exception as e:  # recorded as the run's outcome and logged; the next slot tries again
        log.error("job %s failed: %s", job_id, traceback.format_exc())
        detail = f"{type(e).__name__}: {e}"
        store.write(lambda tx: stored.record_failed_run(tx, job_id, slot, now_ms, _wall_ms(), detail))
        return {"outcome": "error", "error": str(e)}
    if result is None:
        log.info("job %s: slot %d already run by another scheduler", job_id, slot)
        return {"outcome": "skipped", "slot_ms": slot}
    return {"outcome": "ok", **result}


def run_job(job_id: str, db: str, key_path: str, policy_path: str, slot_ms: int | None = None) -> None:
    """The function the job store refers to; everything it needs comes from its (picklable) arguments. A scheduled
    run is for the slot its trigger fired at; a run asked for by hand carries its own."""
    db, key_path, policy_path = _local(db, key_path, policy_path)
    ctx = JobContext(key=load_or_create_server_key(Path(key_path)), policy=load_toml(policy_path, Policy), settings=JobSettings())
    now = dt.datetime.now(TZ)
    if slot_ms is None:
        slot_ms = int(slot_of(trigger_of(JOBS[job_id][1]), now).timestamp() * 1000)
    execute_job(job_id, db, ctx, int(now.timestamp() * 1000), slot_ms)


def _local(name: str, key_path: str, policy_path: str) -> tuple[str, str, str]:
    """The database, key and policy a job names, as the process that runs it knows them: the leader's own. The job
    store lives in the leader's database, so a job asked for by hand on another process (which may spell the URL
    otherwise: postgres:// for postgresql://, another host alias; and whose key and policy paths are its machine's)
    runs with the leader's. A process with several schedulers (tests) goes by the database's name."""
    own = _databases.get(name) or (next(iter(_databases.values())) if len(_databases) == 1 else None)
    return own if own is not None else (name, key_path, policy_path)


class Scheduler:
    """The server's scheduler; starts and stops with the app's lifespan, and runs jobs only while it leads."""

    def __init__(self, db: str | Path, key_path: Path, policy_path: Path, *, retry_s: float = LEADER_RETRY_S, lock: LeaderLock | None = None) -> None:
        self.db, self.key_path, self.policy_path = str(db), key_path, policy_path
        self.retry_s = retry_s
        self.lock = lock if lock is not None else leader_lock(self.db)
        _databases[redact(self.db)] = (self.db, str(key_path), str(policy_path))
        self._running: BackgroundScheduler | None = None  # APScheduler, while this scheduler leads
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._guard = threading.Lock()
        self._shared: SQLAlchemyJobStore | None = None  # the job store as seen from here while another server leads
        self._owner = BackgroundScheduler(timezone=TZ)  # never started: names the owner of the jobs read from _shared

    def _store(self) -> SQLAlchemyJobStore:
        from server.storage.migrate import engine  # SQLite: BEGIN IMMEDIATE and a busy timeout, as every writer

        return SQLAlchemyJobStore(engine=engine(self.db), tablename="apscheduler_jobs")

    def _shared_store(self) -> SQLAlchemyJobStore:
        """The job store, read and written directly (this scheduler's APScheduler is not running)."""
        if self._shared is None:
            store = self._store()
            store.start(self._owner, "default")
            self._shared = store
        return self._shared

    @property
    def is_leader(self) -> bool:
        return self._running is not None

    def start(self) -> None:
        """Try to lead at once (a lone server runs its jobs from the start), then keep trying in the background."""
        self._stop.clear()
        self._step_up()
        self._watcher = threading.Thread(target=self._watch, name="fe-scheduler-leader", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self._running is not None and not self.lock.held():
                log.warning("scheduler: lost the leader lock; stopping the jobs here")
                self._step_down(wait=False)
                continue  # the others try first
            if self._running is None:
                self._step_up()

    def _step_up(self) -> None:
        """Become the leader if the lock is free: start APScheduler and register every job under its id (replacing the
        stored copy, never adding a second)."""
        with self._guard:
            if self._running is not None or self._stop.is_set() or not self.lock.acquire():
                return
            sched = BackgroundScheduler(
                jobstores={"default": self._store()}, timezone=TZ,
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S},
            )  # fmt: skip
            sched.start()
            for job_id, (_, trigger, zh, en) in JOBS.items():
                sched.add_job(RUN_JOB, trigger_of(trigger), id=job_id, name=f"{zh} / {en}", replace_existing=True, kwargs=self._job_kwargs(job_id))
            self._running = sched
            log.info("scheduler: leading on %s", redact(self.db))

    def _step_down(self, *, wait: bool) -> None:
        with self._guard:
            sched, self._running = self._running, None
            if sched is not None and sched.running:
                sched.shutdown(wait=wait)
            self.lock.release()

    def _job_kwargs(self, job_id: str, **extra: Any) -> dict[str, Any]:
        return {"job_id": job_id, "db": redact(self.db), "key_path": str(self.key_path), "policy_path": str(self.policy_path), **extra}

    def stop(self) -> None:
        """Stop, waiting for a running job to finish, and give up the lead."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        self._step_down(wait=True)
        if self._shared is not None:
            self._shared.shutdown()
            self._shared = None

    def jobs(self) -> list[dict[str, Any]]:
        """Every job with its next run, as the leader (whichever server it is) planned it in the shared job store."""
        sched = self._running
        stored_jobs = {j.id: j for j in (sched.get_jobs() if sched is not None else self._shared_store().get_all_jobs())}
        now = dt.datetime.now(TZ)
        out = []
        for job_id in sorted(JOBS):
            job = stored_jobs.get(job_id)
            trigger = job.trigger if job is not None else trigger_of(JOBS[job_id][1])
            next_run = job.next_run_time if job is not None else trigger.get_next_fire_time(None, now)
            out.append({"id": job_id, "name": f"{JOBS[job_id][2]} / {JOBS[job_id][3]}", "trigger": str(trigger), "next_run_ms": int(next_run.timestamp() * 1000) if next_run else None})
        return out

    def run_now(self, job_id: str) -> None:
        """Have a job run as soon as possible, for a slot of its own (its schedule is kept). On a server that does not
        lead, the request goes into the shared job store, where the leader finds it at its next wake-up."""
        now = dt.datetime.now(TZ)
        now_ms = int(now.timestamp() * 1000)
        args: dict[str, Any] = {"id": f"{job_id}@{now_ms}", "name": f"{job_id} (by hand)", "kwargs": self._job_kwargs(job_id, slot_ms=now_ms)}
        trigger = DateTrigger(run_date=now, timezone=TZ)
        sched = self._running
        if sched is not None:
            sched.add_job(RUN_JOB, trigger, **args)
            return
        store = self._shared_store()
        job = Job(self._owner, func=RUN_JOB, trigger=trigger, executor="default", args=(), next_run_time=now,
                  misfire_grace_time=MISFIRE_GRACE_S, coalesce=True, max_instances=1, **args)  # fmt: skip
        store.add_job(job)
