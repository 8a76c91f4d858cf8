"""Rows of the scheduled jobs: job runs and their slot claims, device presence, disclosure deadlines, case-file
samples, the recording check and retention (docs/storage-seam.md §2, §5.3); random draws are in draws.py.

Reading and writing only: which draw is due, who is eligible, what an alert says are the rule modules' business
(server/jobs/tasks.py, draws.py, disclosure.py, coverage.py). Every statement runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.storage.engine import Tx, sql


# --- job runs: one per (job, slot) across the cluster -------------------------------------------------------------

_CLAIM_RUN = sql("""
    INSERT INTO job_runs(job_id, slot_ms, started_ms, outcome) VALUES (:job_id, :slot_ms, :started_ms, 'running')
    ON CONFLICT (job_id, slot_ms) DO NOTHING RETURNING id
""")
_FINISH_RUN = sql("UPDATE job_runs SET finished_ms = :finished_ms, outcome = :outcome, detail = :detail WHERE id = :id")
_RECORD_FAILED_RUN = sql("""
    INSERT INTO job_runs(job_id, slot_ms, started_ms, finished_ms, outcome, detail)
    VALUES (:job_id, :slot_ms, :started_ms, :finished_ms, 'error', :detail)
    ON CONFLICT (job_id, slot_ms) DO NOTHING
""")
_LAST_RUN = sql("""
    SELECT started_ms, finished_ms, outcome, detail FROM job_runs WHERE job_id = :job_id ORDER BY id DESC LIMIT 1
""")
_RUNS_OF = sql("SELECT slot_ms, outcome FROM job_runs WHERE job_id = :job_id ORDER BY id")


def lock_job(tx: Tx, job_id: str) -> None:
    """Serialise this transaction with every other run of ``job_id`` (for other slots: by hand, or on another server)
    until it ends (PostgreSQL; SQLite's writers take turns anyway)."""
    tx.lock(f"fe:job:{job_id}")


def claim_run(tx: Tx, job_id: str, slot_ms: int, started_ms: int) -> int | None:
    """Record the run of ``job_id`` for ``slot_ms``; its id, or None when that slot has a run already (on PostgreSQL a
    concurrent claim waits until the first transaction ends, then finds the row)."""
    run_id = tx.scalar(_CLAIM_RUN, job_id=job_id, slot_ms=slot_ms, started_ms=started_ms)
    return None if run_id is None else int(run_id)


def finish_run(tx: Tx, run_id: int, finished_ms: int, outcome: str, detail: str) -> None:
    tx.run(_FINISH_RUN, id=run_id, finished_ms=finished_ms, outcome=outcome, detail=detail)


def record_failed_run(tx: Tx, job_id: str, slot_ms: int, started_ms: int, finished_ms: int, detail: str) -> None:
    """Record a run whose own transaction was rolled back (unless another scheduler's run of the slot is there)."""
    tx.run(_RECORD_FAILED_RUN, job_id=job_id, slot_ms=slot_ms, started_ms=started_ms, finished_ms=finished_ms, detail=detail)


def last_run(tx: Tx, job_id: str) -> tuple[int, int | None, str, str] | None:
    """(started_ms, finished_ms, outcome, detail) of the job's latest run, or None."""
    row = tx.one(_LAST_RUN, job_id=job_id)
    return None if row is None else (row[0], row[1], row[2], row[3])


def runs_of(tx: Tx, job_id: str) -> list[tuple[int | None, str]]:
    """(slot_ms, outcome) of every run of a job, oldest first."""
    return [(r[0], r[1]) for r in tx.all(_RUNS_OF, job_id=job_id)]


# --- device presence and backlog ----------------------------------------------------------------------------------

_DEVICES_TO_CHECK = sql("""
    SELECT d.device_id, d.kind, s.last_seen_ms, s.online, s.presence_ms, s.last_status_json
    FROM devices d JOIN device_state s ON s.device_id = d.device_id
    WHERE d.revoked_ms IS NULL ORDER BY d.device_id
""")
_MARK_OFFLINE = sql("UPDATE device_state SET online = 0 WHERE device_id = :device_id")
_DEVICE_ALERTED_SINCE = sql("""
    SELECT count(*) FROM alerts WHERE kind = :kind AND device_id = :device_id AND created_ms >= :since_ms
""")


def devices_to_check(tx: Tx) -> list[tuple[str, str, int | None, int, int | None, str | None]]:
    """(device_id, kind, last_seen_ms, online, presence_ms, last_status_json) of every registered, unrevoked device."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in tx.all(_DEVICES_TO_CHECK)]


def mark_offline(tx: Tx, device_id: str) -> None:
    tx.run(_MARK_OFFLINE, device_id=device_id)


def device_alerted_since(tx: Tx, kind: str, device_id: str, since_ms: int) -> bool:
    """Whether an alert of ``kind`` about the device was raised at or after ``since_ms``."""
    return bool(tx.scalar(_DEVICE_ALERTED_SINCE, kind=kind, device_id=device_id, since_ms=since_ms))


# --- disclosure deadlines -----------------------------------------------------------------------------------------

_INSERT_DECISION = sql("""
    INSERT INTO decisions(decision_id, agency_id, kind, case_no, credit_code, decided_on, deadline, calendar_approximate, status)
    VALUES (:decision_id, :agency_id, :kind, :case_no, :credit_code, :decided_on, :deadline, :calendar_approximate, 'pending')
    ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id
""")
_DECISION = sql("SELECT agency_id, deadline FROM decisions WHERE decision_id = :decision_id")
_SET_DISCLOSED = sql("UPDATE decisions SET disclosed_on = :disclosed_on, status = :status WHERE decision_id = :decision_id")
_PENDING_DECISIONS = sql("""
    SELECT decision_id, agency_id, deadline, case_no, due_alerted FROM decisions WHERE status = 'pending'
    ORDER BY deadline, decision_id
""")
# Each only from the state the job read (a disclosure recorded meanwhile is not overwritten, nothing alerted twice).
_MARK_MISSED = sql("UPDATE decisions SET status = 'missed' WHERE decision_id = :decision_id AND status = 'pending' RETURNING decision_id")
_MARK_DUE_ALERTED = sql("""
    UPDATE decisions SET due_alerted = 1 WHERE decision_id = :decision_id AND status = 'pending' AND due_alerted = 0 RETURNING decision_id
""")
_ON_TIME_COUNTS = sql("""
    SELECT agency_id,
           CAST(sum(CASE WHEN status = 'disclosed_on_time' THEN 1 ELSE 0 END) AS BIGINT),
           CAST(sum(CASE WHEN status IN ('disclosed_on_time', 'disclosed_late', 'missed') THEN 1 ELSE 0 END) AS BIGINT)
    FROM decisions GROUP BY agency_id ORDER BY agency_id
""")


def insert_decision(tx: Tx, **row: Any) -> bool:
    """A pending decision (keys: its columns but status and disclosed_on); False when its id is registered already."""
    return tx.one(_INSERT_DECISION, row) is not None


def decision(tx: Tx, decision_id: str) -> tuple[str, str] | None:
    """(agency_id, deadline YYYY-MM-DD) of a decision, or None."""
    row = tx.one(_DECISION, decision_id=decision_id)
    return None if row is None else (row[0], row[1])


def set_disclosed(tx: Tx, decision_id: str, disclosed_on: str, status: str) -> None:
    tx.run(_SET_DISCLOSED, decision_id=decision_id, disclosed_on=disclosed_on, status=status)


def pending_decisions(tx: Tx) -> list[tuple[str, str, str, str, int]]:
    """(decision_id, agency_id, deadline, case_no, due_alerted) of every decision not yet disclosed, by deadline."""
    return [(r[0], r[1], r[2], r[3], r[4]) for r in tx.all(_PENDING_DECISIONS)]


def mark_missed(tx: Tx, decision_id: str) -> bool:
    """Mark a pending decision missed; False when it is no longer pending."""
    return tx.one(_MARK_MISSED, decision_id=decision_id) is not None


def mark_due_alerted(tx: Tx, decision_id: str) -> bool:
    """Note that a pending decision's deadline was alerted; False when it was already, or is no longer pending."""
    return tx.one(_MARK_DUE_ALERTED, decision_id=decision_id) is not None


def on_time_counts(tx: Tx) -> list[tuple[str, int, int]]:
    """Per agency: (agency_id, disclosed on time, decisions disclosed or missed)."""
    return [(r[0], int(r[1] or 0), int(r[2] or 0)) for r in tx.all(_ON_TIME_COUNTS)]


# --- case-file samples --------------------------------------------------------------------------------------------

_AGENCIES_DECIDING = sql("""
    SELECT DISTINCT agency_id FROM decisions WHERE decided_on >= :first_day AND decided_on < :next_first_day
    ORDER BY agency_id
""")
_DECISIONS_OF = sql("""
    SELECT decision_id FROM decisions
    WHERE agency_id = :agency_id AND decided_on >= :first_day AND decided_on < :next_first_day ORDER BY decision_id
""")
_INSERT_SAMPLE = sql("""
    INSERT INTO samples(sample_id, agency_id, period, seed, drawn_ms, population)
    VALUES (:sample_id, :agency_id, :period, :seed, :drawn_ms, :population)
    ON CONFLICT (agency_id, period) DO NOTHING RETURNING sample_id
""")
_INSERT_SAMPLE_ITEM = sql("INSERT INTO sample_items(sample_id, decision_id) VALUES (:sample_id, :decision_id)")
_RECORD_REVIEW = sql("""
    UPDATE sample_items SET result = :result, reviewer = :reviewer, notes = :notes, reviewed_ms = :reviewed_ms
    WHERE sample_id = :sample_id AND decision_id = :decision_id
""")
_SAMPLE_COUNTS = sql("""
    SELECT s.sample_id, s.agency_id, s.period, count(i.decision_id),
           CAST(sum(CASE WHEN i.result IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
           CAST(sum(CASE WHEN i.result = 'pass' THEN 1 ELSE 0 END) AS BIGINT)
    FROM samples s JOIN sample_items i ON i.sample_id = s.sample_id
    GROUP BY s.sample_id, s.agency_id, s.period ORDER BY s.period, s.agency_id, s.sample_id
""")


def agencies_deciding(tx: Tx, first_day: str, next_first_day: str) -> list[str]:
    """Agencies with decisions dated in ``[first_day, next_first_day)`` (YYYY-MM-DD), sorted."""
    return [r[0] for r in tx.all(_AGENCIES_DECIDING, first_day=first_day, next_first_day=next_first_day)]


def decisions_of(tx: Tx, agency_id: str, first_day: str, next_first_day: str) -> list[str]:
    """Ids of the agency's decisions dated in ``[first_day, next_first_day)``, sorted."""
    return [r[0] for r in tx.all(_DECISIONS_OF, agency_id=agency_id, first_day=first_day, next_first_day=next_first_day)]


def insert_sample(tx: Tx, *, sample_id: str, agency_id: str, period: str, seed: str, drawn_ms: int, population: int, items: Sequence[str]) -> bool:
    """A sample and its case files; False (and nothing written) when the agency's sample of the period exists."""
    made = tx.one(_INSERT_SAMPLE, sample_id=sample_id, agency_id=agency_id, period=period, seed=seed, drawn_ms=drawn_ms, population=population)
    if made is None:
        return False
    tx.many(_INSERT_SAMPLE_ITEM, [{"sample_id": sample_id, "decision_id": d} for d in items])
    return True


def record_review(tx: Tx, *, sample_id: str, decision_id: str, result: str, reviewer: str, notes: str, reviewed_ms: int) -> bool:
    """Record a sampled case file's review; False when the case file is not in the sample."""
    cur = tx.run(_RECORD_REVIEW, sample_id=sample_id, decision_id=decision_id, result=result, reviewer=reviewer, notes=notes, reviewed_ms=reviewed_ms)
    return bool(cur.rowcount)


def sample_counts(tx: Tx) -> list[tuple[str, str, str, int, int, int]]:
    """Per sample: (sample_id, agency_id, period, case files sampled, reviewed, passed), by period and agency."""
    return [(r[0], r[1], r[2], int(r[3]), int(r[4] or 0), int(r[5] or 0)) for r in tx.all(_SAMPLE_COUNTS)]


# --- the recording check ------------------------------------------------------------------------------------------

_ENDED_UNCHECKED = sql("""
    SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, a.name
    FROM inspections i LEFT JOIN enterprises e ON e.credit_code = i.credit_code
                       LEFT JOIN agencies a ON a.agency_id = i.lead_agency_id
    WHERE i.recording_checked_ms IS NULL AND i.ended_ms IS NOT NULL AND i.ended_ms <= :ended_before_ms
    ORDER BY i.ended_ms, i.inspection_id LIMIT :limit
""")
_MARK_RECORDING_CHECKED = sql("""
    UPDATE inspections SET recording_checked_ms = :now_ms WHERE inspection_id = :inspection_id AND recording_checked_ms IS NULL
    RETURNING inspection_id
""")


def ended_unchecked(tx: Tx, ended_before_ms: int, limit: int) -> list[tuple[str, str, str | None, str, str | None]]:
    """(inspection_id, credit_code, enterprise name, lead agency id, agency name) of up to ``limit`` inspections
    ended at or before ``ended_before_ms`` whose recording has not been checked, oldest first."""
    return [(r[0], r[1], r[2], r[3], r[4]) for r in tx.all(_ENDED_UNCHECKED, ended_before_ms=ended_before_ms, limit=limit)]


def mark_recording_checked(tx: Tx, inspection_id: str, now_ms: int) -> bool:
    """Note an inspection's recording as checked; False when it was already (by a concurrent run)."""
    return tx.one(_MARK_RECORDING_CHECKED, inspection_id=inspection_id, now_ms=now_ms) is not None


# --- retention ----------------------------------------------------------------------------------------------------

_STATUS_EVENTS_BEFORE = sql("""
    SELECT e.event_id, e.type, e.device_id, e.seq, l.idx
    FROM events e LEFT JOIN evidence_log l ON l.event_id = e.event_id
    WHERE e.type = 'device_status' AND e.stored_ms < :before_ms ORDER BY e.stored_ms, e.event_id
""")
_INSERT_REMOVED = sql("""
    INSERT INTO retention_removed(event_id, device_id, seq, log_index, type, removed_ms, rule)
    VALUES (:event_id, :device_id, :seq, :log_index, :type, :removed_ms, :rule)
""")
_DELETE_EVENT = sql("DELETE FROM events WHERE event_id = :event_id")
_DELETE_REJECTED = sql("DELETE FROM rejected WHERE received_ms < :before_ms")


def remove_status_events(tx: Tx, before_ms: int, now_ms: int, rule: str) -> int:
    """Delete the heartbeats stored before ``before_ms``, each first written to ``retention_removed`` with its log
    index and ``rule`` (so verify tells a removal by policy from tampering); how many."""
    rows = tx.all(_STATUS_EVENTS_BEFORE, before_ms=before_ms)
    removed = [
        {"event_id": r[0], "type": r[1], "device_id": r[2], "seq": r[3], "log_index": r[4], "removed_ms": now_ms, "rule": rule}
        for r in rows
    ]
    tx.many(_INSERT_REMOVED, removed)
    tx.many(_DELETE_EVENT, [{"event_id": r["event_id"]} for r in removed])
    return len(removed)


def remove_rejected(tx: Tx, before_ms: int) -> int:
    """Delete the messages kept aside before ``before_ms``; how many."""
    return int(tx.run(_DELETE_REJECTED, before_ms=before_ms).rowcount)
