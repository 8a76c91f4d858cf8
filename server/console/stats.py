"""Figures for central staff's reports: inspections, joint inspections, scans, refusals, recording coverage.

Every function reads only (a Tx from the storage seam, server/storage/reports.py) and takes a period ``[from_ms, to_ms)`` in
epoch milliseconds, optionally restricted to one agency (``agency_id=None`` means all agencies).
Days are China Standard Time (UTC+8) calendar days. Rates are floats rounded to 4 places, or None when
the denominator is 0.

What falls in the period:

* an inspection by ``opened_ms``; for an agency, those it took part in (led or has a part in);
* an inspection part by ``joined_ms``;
* a scan by ``decided_ms`` (the server's time, which is also when an inspection it opens is opened);
* an ended inspection, for recording coverage, by ``ended_ms``;
* an alert by ``created_ms``.

Cost: ``summary`` computes :func:`server.evidence.coverage.coverage` for every inspection ended in the period, a
few queries each, so it is O(n) queries in that number: fine up to a few thousand inspections, which is
why a period is capped at :data:`MAX_PERIOD_DAYS`. The other figures are one aggregate query each.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from protocol.cst import CST
from server.evidence.coverage import coverage
from server.errors import Invalid
from server.storage import reports
from server.storage.engine import Tx

DAY_MS = 86_400_000
#: The longest period a report may cover (a leap year).
MAX_PERIOD_DAYS = 366
#: Cell prefixes a spreadsheet would read as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class PeriodError(Invalid):
    """A report period that is empty, reversed or too long (an Invalid, so a ValueError: 400 over HTTP)."""


def check_period(from_ms: int, to_ms: int) -> None:
    """Raise PeriodError unless ``from_ms < to_ms`` and the period is at most MAX_PERIOD_DAYS long."""
    if to_ms <= from_ms:
        raise PeriodError(f"统计区间为空或颠倒 / empty or reversed period: from_ms={from_ms} to_ms={to_ms}")
    if to_ms - from_ms > MAX_PERIOD_DAYS * DAY_MS:
        raise PeriodError(f"统计区间不能超过 {MAX_PERIOD_DAYS} 天 / a period is at most {MAX_PERIOD_DAYS} days long")


def last_days(days: int, now_ms: int) -> tuple[int, int]:
    """The period ``[from_ms, to_ms)`` of the last ``days`` days up to and including ``now_ms``: exactly
    ``days`` days long, so every ``days`` from 1 to MAX_PERIOD_DAYS passes :func:`check_period`."""
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise PeriodError(f"天数须在 1 到 {MAX_PERIOD_DAYS} 之间 / days must be 1 to {MAX_PERIOD_DAYS}, got {days}")
    to_ms = now_ms + 1  # the period ends after now, so what happened at this very millisecond counts
    return to_ms - days * DAY_MS, to_ms


def rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 4 places, None when the denominator is 0."""
    return round(numerator / denominator, 4) if denominator else None


def cst_day(ms: int) -> str:
    """The China Standard Time calendar day (YYYY-MM-DD) of an instant."""
    return dt.datetime.fromtimestamp(ms / 1000, CST).date().isoformat()


def inspections_by_agency_field(con: Tx, from_ms: int, to_ms: int, agency_id: str | None = None) -> list[dict[str, Any]]:
    """Per (agency, field) of the inspection parts joined in the period: distinct inspections and parts.

    Rows are ordered by agency id then field; names fall back to the ids when not in the registers.
    Keys: agency_id, agency_name, field, field_name, inspections, parts.
    """
    check_period(from_ms, to_ms)
    keys = ("agency_id", "agency_name", "field", "field_name", "inspections", "parts")
    return [dict(zip(keys, r, strict=True)) for r in reports.parts_by_agency_field(con, from_ms, to_ms, agency_id)]


def _scan_counts(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None) -> dict[str, int]:
    """Refusal counts by code, plus the pseudo-codes '*scans' and '*repeat' for all scans and repeat answers."""
    out: dict[str, int] = {"*scans": 0, "*repeat": 0}
    for outcome, code, n in reports.scan_counts(tx, from_ms, to_ms, agency_id):
        out["*scans"] += n
        if outcome == "repeat":
            out["*repeat"] += n
        elif outcome == "refused":
            out[code] = out.get(code, 0) + n
    return out


def summary(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None = None) -> dict[str, Any]:
    """The period's headline figures (see the module docstring for what falls in the period).

    Keys: from_ms, to_ms, agency_id; inspections, joint_inspections, joint_rate; scans, repeat_answers,
    repeat_rate, refused, blocked_attempts (refusals with code no_disturb), refusals_by_code;
    ended_inspections, recorded_any, recorded_complete, recording_coverage_rate, uncovered_minutes;
    credentialed_officers, active_officers, participation_rate; alerts_by_kind.

    Officers: those holding a valid, unrevoked credential at some instant of the period (valid_from_ms to
    valid_to_ms inclusive, until revoked; one revoked after the period still counts for it, so a past period's
    report does not change later), and those who took part.
    """
    check_period(from_ms, to_ms)
    inspections, joint = reports.inspections_and_joint(tx, from_ms, to_ms, agency_id)
    counts = _scan_counts(tx, from_ms, to_ms, agency_id)
    scans, repeat = counts.pop("*scans"), counts.pop("*repeat")
    ended_ids = reports.ended_inspections(tx, from_ms, to_ms, agency_id)
    recorded = complete = 0
    uncovered = 0.0
    for inspection_id in ended_ids:  # O(n) queries: see the module docstring
        cov = coverage(tx, inspection_id)
        recorded += cov.recorded
        complete += cov.complete
        uncovered += cov.uncovered_minutes
    credentialed, active = reports.officer_counts(tx, from_ms, to_ms, agency_id)
    return {
        "from_ms": from_ms,
        "to_ms": to_ms,
        "agency_id": agency_id,
        "inspections": inspections,
        "joint_inspections": joint,
        "joint_rate": rate(joint, inspections),
        "scans": scans,
        "repeat_answers": repeat,
        "repeat_rate": rate(repeat, scans),
        "refused": sum(counts.values()),
        "blocked_attempts": counts.get("no_disturb", 0),
        "refusals_by_code": dict(sorted(counts.items())),
        "ended_inspections": len(ended_ids),
        "recorded_any": recorded,
        "recorded_complete": complete,
        "recording_coverage_rate": rate(complete, len(ended_ids)),
        "uncovered_minutes": round(uncovered, 1),
        "credentialed_officers": credentialed,
        "active_officers": active,
        "participation_rate": rate(active, credentialed),
        "alerts_by_kind": reports.alerts_by_kind(tx, from_ms, to_ms, agency_id),
    }


def _cst_day_of(day_no: int) -> str:
    """The CST date (YYYY-MM-DD) of a day number counted as reports.py does: (epoch ms + 8 h) // 1 day."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_no)).isoformat()


def trend(tx: Tx, from_ms: int, to_ms: int, agency_id: str | None = None) -> list[dict[str, Any]]:
    """One row per CST day touched by the period, oldest first, days without activity included as zeros.

    Keys: day (YYYY-MM-DD, CST), inspections (opened), joint_inspections, scans, refused, repeat_answers.
    """
    check_period(from_ms, to_ms)
    first = dt.date.fromisoformat(cst_day(from_ms))
    last = dt.date.fromisoformat(cst_day(to_ms - 1))
    days: dict[str, dict[str, Any]] = {}
    for n in range((last - first).days + 1):
        day = (first + dt.timedelta(days=n)).isoformat()
        days[day] = {"day": day, "inspections": 0, "joint_inspections": 0, "scans": 0, "refused": 0, "repeat_answers": 0}
    for day_no, opened, joint in reports.inspections_per_day(tx, from_ms, to_ms, agency_id):
        days[_cst_day_of(day_no)].update(inspections=opened, joint_inspections=joint)
    for day_no, scans, refused, repeat in reports.scans_per_day(tx, from_ms, to_ms, agency_id):
        days[_cst_day_of(day_no)].update(scans=scans, refused=refused, repeat_answers=repeat)
    return list(days.values())


def _cell(value: Any) -> Any:
    """A CSV cell: None empty, dicts and lists as JSON, text that a spreadsheet would run as a formula quoted with '."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with a header row, prefixed with a UTF-8 BOM so that Excel reads Chinese correctly.

    Columns are the keys of the first row, in order; a later row lacking a key gets an empty cell, and a
    row with a key the first lacks raises ValueError. No rows gives just the BOM. Lines end with CRLF.
    """
    out = io.StringIO()
    out.write("\ufeff")
    if not rows:
        return out.getvalue()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), restval="", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()
