"""Public disclosure deadlines (行政执法公示) and case-file sampling (案卷评查).

Penalty and permit decisions are disclosed within 7 working days, other decisions within 20, counted on
the official Chinese calendar from the day after the decision. Samples of case files are drawn per
agency per month, reproducibly (rank = SHA-256(agency:period:decision id)), and reviewed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from protocol.cst import cst_date
from server.rules.alerts import raise_alert
from server.errors import Conflict, Invalid, NotFound
from server.storage.engine import Tx
from server.storage import jobs as stored
from server.rules.workdays import add_working_days, working_days_between

#: Working days to disclose a decision, by kind.
DISCLOSURE_DAYS = {"penalty": 7, "permit": 7, "other": 20}
#: Alert this many working days before a deadline.
WARN_WORKING_DAYS = 2
#: Share of an agency's decisions sampled each month for review, and the least sampled.
SAMPLE_SHARE = 0.1
SAMPLE_MIN = 3


class DisclosureError(Invalid):
    """A decision, disclosure or review that cannot be recorded, with the reason (400; an unknown decision or sample is
    NotFound)."""


def record_decision(
    con: Tx, *, decision_id: str, agency_id: str, kind: str, decided_on: dt.date, case_no: str = "", credit_code: str | None = None
) -> dict[str, Any]:
    """Register a decision and its disclosure deadline; Conflict when its id is registered already."""
    if kind not in DISCLOSURE_DAYS:
        raise DisclosureError(f"kind must be one of {', '.join(DISCLOSURE_DAYS)}, got {kind!r}")
    deadline, exact = add_working_days(decided_on, DISCLOSURE_DAYS[kind])
    if not stored.insert_decision(
        con, decision_id=decision_id, agency_id=agency_id, kind=kind, case_no=case_no, credit_code=credit_code,
        decided_on=decided_on.isoformat(), deadline=deadline.isoformat(), calendar_approximate=int(not exact),
    ):  # fmt: skip
        raise Conflict(f"决定 {decision_id!r} 已登记 / decision {decision_id!r} is already registered")
    return {"decision_id": decision_id, "deadline": deadline.isoformat(), "calendar_approximate": not exact}


def decision_agency(con: Tx, decision_id: str) -> str | None:
    """The agency of a registered decision, or None."""
    row = stored.decision(con, decision_id)
    return None if row is None else row[0]


def record_disclosure(tx: Tx, decision_id: str, disclosed_on: dt.date) -> str:
    """Record when a decision was disclosed; returns its status (on time or late)."""
    row = stored.decision(tx, decision_id)
    if row is None:
        raise NotFound(f"决定 {decision_id!r} 未登记 / decision {decision_id!r} is not registered")
    status = "disclosed_on_time" if disclosed_on.isoformat() <= row[1] else "disclosed_late"
    stored.set_disclosed(tx, decision_id, disclosed_on.isoformat(), status)
    return status


def check_deadlines(tx: Tx, now_ms: int) -> dict[str, int]:
    """Alert on deadlines coming up and on misses."""
    today = cst_date(now_ms)
    warned = missed = 0
    for decision_id, agency_id, deadline_s, case_no, due_alerted in stored.pending_decisions(tx):
        deadline = dt.date.fromisoformat(deadline_s)
        if today > deadline:
            if not stored.mark_missed(tx, decision_id):
                continue  # disclosed (or marked) since it was read
            raise_alert(
                tx, "disclosure_missed", now_ms,
                f"决定 {decision_id}（{case_no}）应于 {deadline_s} 前公示，已逾期未公示。",
                f"Decision {decision_id} ({case_no}) was due for disclosure by {deadline_s} and was not disclosed.",
                agency_id=agency_id, ref=decision_id,
            )  # fmt: skip
            missed += 1
        elif not due_alerted and working_days_between(today, deadline) <= WARN_WORKING_DAYS:
            if not stored.mark_due_alerted(tx, decision_id):
                continue
            raise_alert(
                tx, "disclosure_due", now_ms,
                f"决定 {decision_id}（{case_no}）须于 {deadline_s} 前公示。",
                f"Decision {decision_id} ({case_no}) must be disclosed by {deadline_s}.",
                agency_id=agency_id, ref=decision_id,
            )  # fmt: skip
            warned += 1
    return {"warned": warned, "missed": missed}


def on_time_rates(con: Tx) -> list[dict[str, Any]]:
    """Per agency: decisions whose deadline has passed or that were disclosed, and the share on time."""
    return [
        {"agency_id": a, "on_time": ok, "due": due, "on_time_rate": round(ok / due, 4) if due else None}
        for a, ok, due in stored.on_time_counts(con)
    ]


def last_month(now_ms: int) -> tuple[str, str, str]:
    """(period YYYY-MM, its first day, the next month's first day) of the CST month before the one of ``now_ms``."""
    first_of_month = cst_date(now_ms).replace(day=1)
    period_start = (first_of_month - dt.timedelta(days=1)).replace(day=1)
    return f"{period_start:%Y-%m}", period_start.isoformat(), first_of_month.isoformat()


def sample_case_files(tx: Tx, now_ms: int) -> list[str]:
    """Draw last month's sample for every agency that has none yet (reproducible: no hidden randomness)."""
    period, first_day, next_first_day = last_month(now_ms)
    made = []
    for agency_id in stored.agencies_deciding(tx, first_day, next_first_day):
        population = stored.decisions_of(tx, agency_id, first_day, next_first_day)
        seed = f"{agency_id}:{period}"
        size = min(len(population), max(SAMPLE_MIN, round(len(population) * SAMPLE_SHARE)))
        chosen = sorted(population, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())[:size]
        sample_id = f"SAMPLE-{agency_id}-{period}"
        if stored.insert_sample(tx, sample_id=sample_id, agency_id=agency_id, period=period, seed=seed, drawn_ms=now_ms, population=len(population), items=chosen):
            made.append(sample_id)
    return made


def record_review(con: Tx, sample_id: str, decision_id: str, result: str, reviewer: str, notes: str, now_ms: int) -> None:
    """Record the review of one sampled case file (pass or fail)."""
    if result not in ("pass", "fail"):
        raise DisclosureError(f"a review result is 'pass' or 'fail', got {result!r}")
    if not stored.record_review(con, sample_id=sample_id, decision_id=decision_id, result=result, reviewer=reviewer, notes=notes, reviewed_ms=now_ms):
        raise NotFound(f"案卷 {decision_id!r} 不在抽样 {sample_id!r} 中 / case file {decision_id!r} is not in sample {sample_id!r}")


def pass_rates(con: Tx) -> list[dict[str, Any]]:
    """Per sample: reviewed, passed and the pass rate."""
    return [
        {"sample_id": s, "agency_id": a, "period": p, "sampled": n, "reviewed": r, "passed": ok, "pass_rate": round(ok / r, 4) if r else None}
        for s, a, p, n, r, ok in stored.sample_counts(con)
    ]
