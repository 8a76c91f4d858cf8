"""APScheduler 3 running the supervision jobs, persistent across restarts.

Jobs live in an SQLAlchemy job store beside the database, each under its explicit id with
``replace_existing=True``, ``coalesce=True`` and ``max_instances=1``: a restart finds the same jobs,
never a second copy, and a run missed while the server was down happens once, not once per miss.
A job is stored as a reference to ``run_job`` with plain arguments (paths), so it survives restarts.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from protocol.config import load_toml
from protocol.decision import Policy
from server import db as dbmod
from server.jobs import JOBS, JobContext, JobSettings
from server.keys import load_or_create_server_key

log = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")
#: A run missed by up to this long (server down) still happens once when the server is back.
MISFIRE_GRACE_S = 6 * 3600


def jobstore_path(db_path: Path) -> Path:
    """Where the scheduler keeps its jobs."""
    return db_path.with_name(db_path.name + ".jobs.sqlite")


def execute_job(job_id: str, db_path: Path, ctx: JobContext, now_ms: int) -> dict[str, Any]:
    """Run one job at ``now_ms`` in its own transaction, recording the run and its outcome."""
    fn = JOBS[job_id][0]
    con = dbmod.connect(db_path)
    try:
        cur = con.execute("INSERT INTO job_runs(job_id, started_ms, outcome) VALUES (?, ?, 'running')", (job_id, now_ms))
        run_id = cur.lastrowid
        try:
            with dbmod.transaction(con):
                result = fn(con, ctx, now_ms)
            outcome, detail = "ok", json.dumps(result, ensure_ascii=False)
        except Exception as e:  # recorded as the run's outcome and logged; the next run tries again
            log.error("job %s failed: %s", job_id, traceback.format_exc())
            outcome, detail, result = "error", f"{type(e).__name__}: {e}", {"error": str(e)}
        con.execute("UPDATE job_runs SET finished_ms = ?, outcome = ?, detail = ? WHERE id = ?", (int(time.time() * 1000), outcome, detail, run_id))
        return {"outcome": outcome, **result}
    finally:
        con.close()


def run_job(job_id: str, db_path: str, key_path: str, policy_path: str) -> None:
    """The function the job store refers to; everything it needs comes from its (picklable) arguments."""
    ctx = JobContext(key=load_or_create_server_key(Path(key_path)), policy=load_toml(policy_path, Policy), settings=JobSettings())
    execute_job(job_id, Path(db_path), ctx, int(time.time() * 1000))


class Scheduler:
    """The server's scheduler; starts and stops with the app's lifespan."""

    def __init__(self, db_path: Path, key_path: Path, policy_path: Path) -> None:
        self.db_path, self.key_path, self.policy_path = db_path, key_path, policy_path
        store = SQLAlchemyJobStore(url=f"sqlite:///{jobstore_path(db_path)}")
        self._sched = BackgroundScheduler(
            jobstores={"default": store}, timezone=TZ, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S}
        )

    def start(self) -> None:
        """Start, registering every job under its id (replacing the stored copy, never adding a second)."""
        self._sched.start()
        for job_id, (_, trigger, zh, en) in JOBS.items():
            self._sched.add_job(
                "server.scheduler:run_job",
                id=job_id,
                name=f"{zh} / {en}",
                replace_existing=True,
                kwargs={"job_id": job_id, "db_path": str(self.db_path), "key_path": str(self.key_path), "policy_path": str(self.policy_path)},
                **trigger,
            )

    def stop(self) -> None:
        """Stop, waiting for a running job to finish."""
        if self._sched.running:
            self._sched.shutdown(wait=True)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job with its next run."""
        return [
            {"id": j.id, "name": j.name, "trigger": str(j.trigger), "next_run_ms": int(j.next_run_time.timestamp() * 1000) if j.next_run_time else None}
            for j in sorted(self._sched.get_jobs(), key=lambda j: j.id)
        ]

    def run_now(self, job_id: str) -> None:
        """Have a job run as soon as possible (its schedule is kept)."""
        from datetime import datetime

        self._sched.modify_job(job_id, next_run_time=datetime.now(TZ))
