"""Public disclosure deadlines (行政执法公示) and case-file sampling (案卷评查).

Penalty and permit decisions are disclosed within 7 working days, other decisions within 20, counted on
the official Chinese calendar from the day after the decision. Samples of case files are drawn per
agency per month, reproducibly (rank = SHA-256(agency:period:decision id)), and reviewed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from typing import Any

from server.alerts import raise_alert
from server.workdays import add_working_days, working_days_between

#: Working days to disclose a decision, by kind.
DISCLOSURE_DAYS = {"penalty": 7, "permit": 7, "other": 20}
#: Alert this many working days before a deadline.
WARN_WORKING_DAYS = 2
#: Share of an agency's decisions sampled each month for review, and the least sampled.
SAMPLE_SHARE = 0.1
SAMPLE_MIN = 3
_CST = dt.timezone(dt.timedelta(hours=8))


class DisclosureError(ValueError):
    """A decision that cannot be recorded, with the reason."""


def cst_date(ms: int) -> dt.date:
    """The China Standard Time date of an instant."""
    return dt.datetime.fromtimestamp(ms / 1000, _CST).date()


def record_decision(con: sqlite3.Connection, *, decision_id: str, agency_id: str, kind: str, decided_on: dt.date, case_no: str = "", credit_code: str | None = None) -> dict[str, Any]:
    """Register a decision and its disclosure deadline."""
    if kind not in DISCLOSURE_DAYS:
        raise DisclosureError(f"kind must be one of {', '.join(DISCLOSURE_DAYS)}, got {kind!r}")
    deadline, exact = add_working_days(decided_on, DISCLOSURE_DAYS[kind])
    con.execute(
        "INSERT INTO decisions(decision_id, agency_id, kind, case_no, credit_code, decided_on, deadline, calendar_approximate, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
        (decision_id, agency_id, kind, case_no, credit_code, decided_on.isoformat(), deadline.isoformat(), int(not exact)),
    )
    return {"decision_id": decision_id, "deadline": deadline.isoformat(), "calendar_approximate": not exact}


def record_disclosure(con: sqlite3.Connection, decision_id: str, disclosed_on: dt.date) -> str:
    """Record when a decision was disclosed; returns its status (on time or late)."""
    row = con.execute("SELECT deadline FROM decisions WHERE decision_id = ?", (decision_id,)).fetchone()
    if row is None:
        raise DisclosureError(f"decision {decision_id!r} is not registered")
    status = "disclosed_on_time" if disclosed_on.isoformat() <= row[0] else "disclosed_late"
    con.execute("UPDATE decisions SET disclosed_on = ?, status = ? WHERE decision_id = ?", (disclosed_on.isoformat(), status, decision_id))
    return status


def check_deadlines(con: sqlite3.Connection, now_ms: int) -> dict[str, int]:
    """Alert on deadlines coming up and on misses."""
    today = cst_date(now_ms)
    warned = missed = 0
    for decision_id, agency_id, deadline_s, case_no, due_alerted in con.execute(
        "SELECT decision_id, agency_id, deadline, case_no, due_alerted FROM decisions WHERE status = 'pending' ORDER BY deadline"
    ).fetchall():
        deadline = dt.date.fromisoformat(deadline_s)
        if today > deadline:
            con.execute("UPDATE decisions SET status = 'missed' WHERE decision_id = ?", (decision_id,))
            raise_alert(
                con, "disclosure_missed", now_ms,
                f"决定 {decision_id}（{case_no}）应于 {deadline_s} 前公示，已逾期未公示。",
                f"Decision {decision_id} ({case_no}) was due for disclosure by {deadline_s} and was not disclosed.",
                agency_id=agency_id, ref=decision_id,
            )  # fmt: skip
            missed += 1
        elif not due_alerted and working_days_between(today, deadline) <= WARN_WORKING_DAYS:
            con.execute("UPDATE decisions SET due_alerted = 1 WHERE decision_id = ?", (decision_id,))
            raise_alert(
                con, "disclosure_due", now_ms,
                f"决定 {decision_id}（{case_no}）须于 {deadline_s} 前公示。",
                f"Decision {decision_id} ({case_no}) must be disclosed by {deadline_s}.",
                agency_id=agency_id, ref=decision_id,
            )  # fmt: skip
            warned += 1
    return {"warned": warned, "missed": missed}


def on_time_rates(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per agency: decisions whose deadline has passed or that were disclosed, and the share on time."""
    rows = con.execute(
        "SELECT agency_id, SUM(status = 'disclosed_on_time'), SUM(status IN ('disclosed_on_time', 'disclosed_late', 'missed')) FROM decisions GROUP BY agency_id ORDER BY agency_id"
    ).fetchall()
    return [{"agency_id": a, "on_time": ok or 0, "due": due or 0, "on_time_rate": round(ok / due, 4) if due else None} for a, ok, due in rows]


def sample_case_files(con: sqlite3.Connection, now_ms: int) -> list[str]:
    """Draw last month's sample for every agency that has none yet (reproducible: no hidden randomness)."""
    first_of_month = cst_date(now_ms).replace(day=1)
    last_month_end = first_of_month - dt.timedelta(days=1)
    period = f"{last_month_end:%Y-%m}"
    made = []
    agencies = [a for (a,) in con.execute("SELECT DISTINCT agency_id FROM decisions WHERE substr(decided_on, 1, 7) = ? ORDER BY agency_id", (period,))]
    for agency_id in agencies:
        if con.execute("SELECT 1 FROM samples WHERE agency_id = ? AND period = ?", (agency_id, period)).fetchone():
            continue
        population = [d for (d,) in con.execute("SELECT decision_id FROM decisions WHERE agency_id = ? AND substr(decided_on, 1, 7) = ? ORDER BY decision_id", (agency_id, period))]
        seed = f"{agency_id}:{period}"
        size = min(len(population), max(SAMPLE_MIN, round(len(population) * SAMPLE_SHARE)))
        chosen = sorted(population, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())[:size]
        sample_id = f"SAMPLE-{agency_id}-{period}"
        con.execute("INSERT INTO samples(sample_id, agency_id, period, seed, drawn_ms, population) VALUES (?, ?, ?, ?, ?, ?)", (sample_id, agency_id, period, seed, now_ms, len(population)))
        con.executemany("INSERT INTO sample_items(sample_id, decision_id) VALUES (?, ?)", [(sample_id, d) for d in chosen])
        made.append(sample_id)
    return made


def record_review(con: sqlite3.Connection, sample_id: str, decision_id: str, result: str, reviewer: str, notes: str, now_ms: int) -> None:
    """Record the review of one sampled case file (pass or fail)."""
    if result not in ("pass", "fail"):
        raise DisclosureError(f"a review result is 'pass' or 'fail', got {result!r}")
    cur = con.execute(
        "UPDATE sample_items SET result = ?, reviewer = ?, notes = ?, reviewed_ms = ? WHERE sample_id = ? AND decision_id = ?",
        (result, reviewer, notes, now_ms, sample_id, decision_id),
    )
    if cur.rowcount == 0:
        raise DisclosureError(f"case file {decision_id!r} is not in sample {sample_id!r}")


def pass_rates(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per sample: reviewed, passed and the pass rate."""
    rows = con.execute(
        "SELECT s.sample_id, s.agency_id, s.period, COUNT(i.decision_id), SUM(i.result IS NOT NULL), SUM(i.result = 'pass')"
        " FROM samples s JOIN sample_items i USING (sample_id) GROUP BY s.sample_id ORDER BY s.period, s.agency_id"
    ).fetchall()
    return [
        {"sample_id": s, "agency_id": a, "period": p, "sampled": n, "reviewed": r or 0, "passed": ok or 0, "pass_rate": round(ok / r, 4) if r else None}
        for s, a, p, n, r, ok in rows
    ]
