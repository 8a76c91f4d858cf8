"""The agency scorecard (执法监督指标, issue 14 item 5): per agency and period, indicators from the platform's own data,
each normalised to a score of 0–100, a weighted total, a rank, and the previous period's total for the trend.

Where the figures come from (nothing is counted twice): inspections, joint-inspection rate, repeat rate, no-disturb
attempts, recording coverage and officers' participation are :func:`server.console.stats.summary` for the agency (what
the dashboard and the CSV reports show); disclosure on time, case-file pass rate, findings and letters are
server/storage/scorecard.py, and so are enterprises' ratings of the inspections an agency led (issue 14 item 8).

Scores (0–100, higher is better; None when the agency has no data for it in the period):

* a rate where more is better (joint inspections, recording coverage, disclosure on time, case files passed, letters
  rectified on time, officers' participation): 100 × rate;
* the repeat rate: 100 × (1 − rate); no-disturb attempts: 100 × (1 − attempts / scans);
* counts compared between agencies: inspections 100 × n / the most of any agency (more activity; weight 0 by default:
  more inspections is not better in itself), findings and letters 100 × (1 − n / the most of any agency) (100 when no
  agency has any);
* enterprises' ratings (1–5 stars): 100 × (mean − 1) / 4.

The total is the weighted mean of the scores the agency has (the weights of those without data are left out, so an
agency is not marked down for having, say, no decisions to disclose); an agency with no activity in the period (no
inspection, scan or decision) has no total and no rank. Ranks are by total, highest first; equal totals share a rank
(1, 1, 3). The previous period is as long as this one and ends where it begins; its totals are computed the same way.

A letter is rectified on time when it was accepted and the agency's (last) report came on or before its deadline (a
CST calendar day); the letters counted are those issued in the period that were accepted or whose deadline has passed.

Weights: :data:`DEFAULT_WEIGHTS`, each of which the policy file may replace (``[scorecard.weights]`` in
server/policy.toml, server only; :func:`weights_from` checks the keys and that not all are zero).

Cost: :func:`server.console.stats.summary` per agency for both periods, whose recording coverage is a few queries per
ended inspection: O(agencies × inspections ended in the two periods) queries, fine for tens of agencies and a few
thousand inspections a period (the period is capped at 366 days, as the reports').
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from server.cases.policy import CasesPolicy
from server.console.stats import check_period, cst_day, summary
from protocol.cst import cst_date
from server.storage import case_steps as case_rows
from server.storage import cases as case_share
from server.storage import scorecard as stored
from server.storage.engine import Tx

#: key -> (Chinese name, English name), in the order of the table and the CSV.
INDICATORS: dict[str, tuple[str, str]] = {
    "inspections": ("检查次数", "Inspections"),
    "joint_rate": ("联合检查率", "Joint-inspection rate"),
    "repeat_rate": ("重复检查率", "Repeat rate"),
    "no_disturb_attempts": ("无事不扰拦截次数", "No-disturb attempts"),
    "recording_coverage": ("全过程记录率", "Recorded start to end"),
    "disclosure_on_time": ("按时公示率", "Disclosed on time"),
    "case_file_pass": ("案卷评查合格率", "Case files passed"),
    "findings": ("监督事项数", "Findings"),
    "letters": ("监督文书数", "Letters"),
    "letters_on_time": ("按期整改率", "Letters rectified on time"),
    "participation": ("执法人员参与率", "Officer participation"),
    "ratings": ("企业评价（1–5 星）", "Enterprise ratings (1–5 stars)"),
    # Cases (issue 15, server/cases): qualified legal reviewers among the officers (flagged below 5 %), cases whose legal
    # review found a suspected crime and that were never referred, and judicial referrals left unanswered.
    "legal_reviewers": ("法制审核人员占比", "Legal reviewers among officers"),
    "cases_kept": ("涉嫌犯罪未移送案件", "Suspected crimes not referred"),
    "referrals_unanswered": ("移送司法机关未获答复", "Referrals unanswered"),
}
#: The default weights (they need not add up to 100: the total is a weighted mean).
DEFAULT_WEIGHTS: dict[str, float] = {
    "inspections": 0, "joint_rate": 15, "repeat_rate": 10, "no_disturb_attempts": 10, "recording_coverage": 15,
    "disclosure_on_time": 15, "case_file_pass": 15, "findings": 5, "letters": 0, "letters_on_time": 10,
    "participation": 5, "ratings": 5, "legal_reviewers": 0, "cases_kept": 0, "referrals_unanswered": 0,
}  # fmt: skip
#: The least share of legal reviewers (the Heping plan's 5 %) and the days a referral may wait for its answer are
#: ``[cases]`` settings of the policy file (server/cases/policy.py: ``reviewer_share``, ``referral_answer_days``).
DAY_MS = 86_400_000


class WeightsError(ValueError):
    """Weights that cannot be used: the server's policy file is wrong (checked when the server starts)."""


class Indicator(msgspec.Struct, kw_only=True):
    """One indicator of one agency: its value (a rate 0–1 or a count), how it was counted, its score and weight."""

    key: str
    name_zh: str
    name_en: str
    value: float | None  # None: no data in the period
    numerator: int | None = None
    denominator: int | None = None
    score: float | None  # 0–100, None without data
    weight: float
    flagged: bool = False  # below what the rules require (legal reviewers under the policy's share, a crime kept, a referral unanswered)


class AgencyScore(msgspec.Struct, kw_only=True):
    """One agency's line of the scorecard. ``indicators`` is None where the reader may see only the ranking."""

    agency_id: str
    agency_name: str
    agency_name_en: str
    total: float | None
    rank: int | None
    previous_total: float | None
    change: float | None  # total − previous total
    indicators: list[Indicator] | None


def weights_from(given: dict[str, float], source: str = "server/policy.toml") -> dict[str, float]:
    """The defaults with the policy's weights in their place; WeightsError names an unknown indicator, or all zero."""
    unknown = sorted(set(given) - set(INDICATORS))
    if unknown:
        raise WeightsError(f"{source}: key 'scorecard.weights': 未知指标 / unknown indicators {', '.join(unknown)} (known: {', '.join(INDICATORS)})")
    wrong = sorted(k for k, v in given.items() if not 0 <= v <= 1000)
    if wrong:
        raise WeightsError(f"{source}: key 'scorecard.weights.{wrong[0]}': 权重须为 0 到 1000 的数 / a weight is a number from 0 to 1000, got {given[wrong[0]]}")
    out = dict(DEFAULT_WEIGHTS) | {k: float(v) for k, v in given.items()}
    if not any(out.values()):
        raise WeightsError(f"{source}: key 'scorecard.weights': 权重不能全为 0 / the weights are all zero")
    return out


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 1)


def _figures(tx: Tx, from_ms: int, to_ms: int, now_ms: int, cases: CasesPolicy) -> dict[str, dict[str, Any]]:
    """agency -> the raw figures of the period (counts and the numerators and denominators of the rates)."""
    first_day = cst_day(from_ms)
    next_day = (dt.date.fromisoformat(cst_day(to_ms - 1)) + dt.timedelta(days=1)).isoformat()
    disclosure = stored.disclosure_counts(tx, first_day, next_day)
    reviews = stored.review_counts(tx, from_ms, to_ms)
    findings = stored.finding_counts(tx, from_ms, to_ms)
    ratings = stored.rating_counts(tx, from_ms, to_ms)
    reviewers = case_share.reviewer_share(tx, to_ms)
    kept = case_rows.kept_counts(tx, from_ms, to_ms)
    referrals = case_rows.referral_counts(tx, from_ms, to_ms, now_ms - cases.referral_answer_days * DAY_MS)
    letters: dict[str, list[int]] = {}  # agency -> [issued, due or accepted, accepted on time]
    today = cst_date(now_ms).isoformat()
    for agency_id, _kind, status, deadline, replied_ms in stored.letters_issued(tx, from_ms, to_ms):
        counts = letters.setdefault(agency_id, [0, 0, 0])
        counts[0] += 1
        if status == "accepted" or deadline < today:
            counts[1] += 1
        if status == "accepted" and replied_ms is not None and cst_date(replied_ms).isoformat() <= deadline:
            counts[2] += 1
    out: dict[str, dict[str, Any]] = {}
    for agency_id, _name, _en in stored.agencies(tx):
        s = summary(tx, from_ms, to_ms, agency_id)
        on_time, due = disclosure.get(agency_id, (0, 0))
        reviewed, passed = reviews.get(agency_id, (0, 0))
        issued, letters_due, letters_ok = letters.get(agency_id, [0, 0, 0])
        rated, stars = ratings.get(agency_id, (0, 0))
        out[agency_id] = {
            "inspections": s["inspections"], "joint": s["joint_inspections"], "scans": s["scans"], "repeat": s["repeat_answers"],
            "blocked": s["blocked_attempts"], "ended": s["ended_inspections"], "complete": s["recorded_complete"],
            "credentialed": s["credentialed_officers"], "active": s["active_officers"], "disclosed_on_time": on_time,
            "disclosure_due": due, "reviewed": reviewed, "passed": passed, "findings": findings.get(agency_id, 0),
            "letters": issued, "letters_due": letters_due, "letters_on_time": letters_ok, "rated": rated, "stars": stars,
            "officers": reviewers.get(agency_id, (0, 0))[0], "reviewers": reviewers.get(agency_id, (0, 0))[1], "kept": kept.get(agency_id, 0),
            "referrals": referrals.get(agency_id, (0, 0))[0], "unanswered": referrals.get(agency_id, (0, 0))[1],
        }  # fmt: skip
    return out


def _indicators(f: dict[str, Any], most: dict[str, int], weights: Mapping[str, float], cases: CasesPolicy) -> list[Indicator]:
    """The indicators of one agency's figures ``f``; ``most``: the largest count of any agency, per counted key."""

    def ind(key: str, value: float | None, score: float | None, n: int | None = None, d: int | None = None) -> Indicator:
        zh, en = INDICATORS[key]
        return Indicator(key=key, name_zh=zh, name_en=en, value=value, numerator=n, denominator=d, score=score, weight=weights[key])

    def rate(key: str, n: int, d: int, *, inverse: bool = False) -> Indicator:
        r = _rate(n, d)
        return ind(key, r, None if r is None else _pct(1 - r if inverse else r), n, d)

    active = bool(f["inspections"] or f["scans"] or f["disclosure_due"])

    def relative(key: str, n: int, *, fewer_is_better: bool) -> Indicator:
        if not active:
            return ind(key, n, None)
        share = n / most[key] if most[key] else 0.0
        return ind(key, n, round(100 * (1 - share), 1) if fewer_is_better else round(100 * share, 1))

    return [
        relative("inspections", f["inspections"], fewer_is_better=False),
        rate("joint_rate", f["joint"], f["inspections"]),
        rate("repeat_rate", f["repeat"], f["scans"], inverse=True),
        ind("no_disturb_attempts", f["blocked"], None if not f["scans"] else _pct(1 - f["blocked"] / f["scans"]), f["blocked"], f["scans"]),
        rate("recording_coverage", f["complete"], f["ended"]),
        rate("disclosure_on_time", f["disclosed_on_time"], f["disclosure_due"]),
        rate("case_file_pass", f["passed"], f["reviewed"]),
        relative("findings", f["findings"], fewer_is_better=True),
        relative("letters", f["letters"], fewer_is_better=True),
        rate("letters_on_time", f["letters_on_time"], f["letters_due"]),
        rate("participation", f["active"], f["credentialed"]),
        ind("ratings", round(f["stars"] / f["rated"], 2) if f["rated"] else None,
            round(100 * (f["stars"] / f["rated"] - 1) / 4, 1) if f["rated"] else None, f["rated"]),
        *_case_indicators(f, ind, cases.reviewer_share),
    ]


def _case_indicators(f: dict[str, Any], ind: Any, least: float) -> list[Indicator]:
    """Legal reviewers' share (100 at ``least`` (5 %) or more, flagged below), suspected crimes kept (0 with any, no score with
    none) and referrals answered (100 × the share answered in time): each flagged where it falls short."""
    share = _rate(f["reviewers"], f["officers"])
    reviewers = ind("legal_reviewers", share, None if share is None else round(min(100.0, 100 * share / least), 1), f["reviewers"], f["officers"])
    reviewers.flagged = share is not None and share < least
    kept = ind("cases_kept", f["kept"], 0.0 if f["kept"] else None)
    kept.flagged = f["kept"] > 0
    unanswered = ind("referrals_unanswered", f["unanswered"], None if not f["referrals"] else round(100 * (1 - f["unanswered"] / f["referrals"]), 1), f["unanswered"], f["referrals"])
    unanswered.flagged = f["unanswered"] > 0
    return [reviewers, kept, unanswered]


def _total(indicators: list[Indicator]) -> float | None:
    scored = [(i.score, i.weight) for i in indicators if i.score is not None and i.weight > 0]
    weight = sum(w for _, w in scored)
    return round(sum(s * w for s, w in scored) / weight, 1) if weight else None


def _period_scores(
    tx: Tx, from_ms: int, to_ms: int, now_ms: int, weights: Mapping[str, float], cases: CasesPolicy,
) -> dict[str, tuple[float | None, list[Indicator]]]:  # fmt: skip
    figures = _figures(tx, from_ms, to_ms, now_ms, cases)
    most = {k: max((f[k] for f in figures.values()), default=0) for k in ("inspections", "findings", "letters")}
    out = {}
    for agency_id, f in figures.items():
        inds = _indicators(f, most, weights, cases)
        active = bool(f["inspections"] or f["scans"] or f["disclosure_due"])
        out[agency_id] = (_total(inds) if active else None, inds)
    return out


def previous_period(from_ms: int, to_ms: int) -> tuple[int, int]:
    """The period as long as ``[from_ms, to_ms)`` that ends where it begins."""
    return from_ms - (to_ms - from_ms), from_ms


def scorecard(
    tx: Tx, from_ms: int, to_ms: int, agency_id: str | None = None, *, weights: Mapping[str, float] | None = None,
    now_ms: int | None = None, details_for: str | None = "*", cases: CasesPolicy | None = None,
) -> list[AgencyScore]:  # fmt: skip
    """The scorecard of ``[from_ms, to_ms)``: every agency (or only ``agency_id``, ranked among all), by rank.

    ``details_for``: whose indicators are included ("*": everyone's, as for a supervisor; an agency id: only that
    agency's, as for its administrator, the others show only their ranking). ``cases``: the policy's ``[cases]``
    (the legal reviewers' least share, the days a referral may wait), its defaults when None. PeriodError (400) for a
    bad period.
    """
    check_period(from_ms, to_ms)
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    now_ms = to_ms if now_ms is None else now_ms
    cases = CasesPolicy() if cases is None else cases
    current = _period_scores(tx, from_ms, to_ms, now_ms, weights, cases)
    before = _period_scores(tx, *previous_period(from_ms, to_ms), now_ms, weights, cases)
    names = {a: (n, en or n) for a, n, en in stored.agencies(tx)}
    totals = sorted((t for t, _ in current.values() if t is not None), reverse=True)
    rows = []
    for a, (total, inds) in current.items():
        prev = before.get(a, (None, []))[0]
        rows.append(
            AgencyScore(
                agency_id=a, agency_name=names[a][0], agency_name_en=names[a][1], total=total,
                rank=None if total is None else totals.index(total) + 1, previous_total=prev,
                change=None if total is None or prev is None else round(total - prev, 1),
                indicators=inds if details_for in ("*", a) else None,
            )
        )  # fmt: skip
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.agency_id))
    return [r for r in rows if agency_id is None or r.agency_id == agency_id]


def csv_rows(rows: list[AgencyScore], lang: str = "zh") -> list[dict[str, Any]]:
    """The scorecard as CSV rows with Chinese (or English) headers: rank, agency, total, previous total, change, then
    each indicator's value and score (empty where the reader may not see them); rates as percentages."""
    zh = lang == "zh"
    head = ("排名", "机关", "综合得分", "上期得分", "变化") if zh else ("Rank", "Agency", "Total", "Previous total", "Change")
    out = []
    for r in rows:
        row: dict[str, Any] = dict(zip(head, (r.rank, r.agency_name if zh else r.agency_name_en, r.total, r.previous_total, r.change), strict=True))
        by_key = {i.key: i for i in r.indicators or []}
        for key, (name_zh, name_en) in INDICATORS.items():
            name = name_zh if zh else name_en
            i = by_key.get(key)
            value = None if i is None else i.value
            if value is not None and i is not None and i.denominator is not None and key != "no_disturb_attempts":
                value = f"{100 * value:.1f}%"
            row[name] = value
            row[f"{name}得分" if zh else f"{name} score"] = None if i is None else i.score
        out.append(row)
    return out
