"""The agency scorecard over HTTP: ``GET /api/v1/scorecard`` (JSON, or CSV with ``?format=csv``) and the page
``/scorecard`` (a table and a bar chart of the totals, drawn on the server as inline SVG; the rules and figures are
server/supervision/scorecard.py).

A period is given as CST calendar days, ``from`` and ``to`` both included (YYYY-MM-DD), at most 366 days; by default
this month up to today. Who sees what: a supervisor every agency's indicators; an agency's administrator the ranking
of every agency (name, total, rank, trend) but the indicators of their own agency only (the others' are null in the
JSON and empty in the CSV); officers and enterprises nothing (403).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from server import db as dbmod
from server.cases import policy as case_policy
from server.console.auth import CurrentPrincipal, Principal, principal_of
from server.console.guards import MANAGERS, managers
from server.console.stats import (
    CST,
    DAY_MS,
    MAX_PERIOD_DAYS,
    PeriodError,
    check_period,
    to_csv,
)
from server.supervision import scorecard as card

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]
FromDay = Annotated[str | None, QueryParameter(name="from", max_length=40, description="first day, YYYY-MM-DD (CST); default: the 1st of this month")]
ToDay = Annotated[str | None, QueryParameter(name="to", max_length=40, description="last day, included, YYYY-MM-DD (CST); default: today")]
AgencyId = Annotated[str | None, QueryParameter(max_length=64, description="only this agency's line (ranked among all)")]
Preset = Literal["this_month", "last_month", "this_year", "custom"]


class Period(msgspec.Struct, kw_only=True):
    """A scorecard's period: CST days, both included, and the same as epoch milliseconds ``[from_ms, to_ms)``."""

    from_day: str
    to_day: str
    from_ms: int
    to_ms: int


class Scorecard(msgspec.Struct, kw_only=True):
    """The scorecard of a period, by rank (server/supervision/scorecard.py says how each figure is made)."""

    period: Period
    previous: Period
    weights: dict[str, float]
    details: Literal["all", "own"]  # whose indicators are included
    rows: list[card.AgencyScore]


def _day(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{name} 不是日期（应为 YYYY-MM-DD）/ {name} is not a date YYYY-MM-DD: {value!r}") from None


def _midnight(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), CST).timestamp() * 1000)


def _today() -> dt.date:
    return dt.datetime.now(CST).date()


def period_of(from_day: str | None, to_day: str | None, today: dt.date | None = None) -> Period:
    """The period of the query (days included at both ends); PeriodError says what is wrong."""
    today = today or _today()
    first = _day(from_day, "from") if from_day else today.replace(day=1)
    last = _day(to_day, "to") if to_day else today
    if last < first:
        raise PeriodError(f"结束日期早于开始日期 / the period ends ({last}) before it begins ({first})")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise PeriodError(f"统计区间不能超过 {MAX_PERIOD_DAYS} 天 / a period is at most {MAX_PERIOD_DAYS} days long ({first} to {last})")
    from_ms, to_ms = _midnight(first), _midnight(last + dt.timedelta(days=1))
    check_period(from_ms, to_ms)
    return Period(from_day=first.isoformat(), to_day=last.isoformat(), from_ms=from_ms, to_ms=to_ms)


def preset_period(preset: str, today: dt.date) -> tuple[str, str]:
    """(first day, last day) of a preset of the page's picker."""
    if preset == "last_month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1).isoformat(), last.isoformat()
    if preset == "this_year":
        return today.replace(month=1, day=1).isoformat(), today.isoformat()
    return today.replace(day=1).isoformat(), today.isoformat()


def build(state: State, p: Principal, period: Period, agency_id: str | None) -> Scorecard:
    """The scorecard as ``p`` may see it."""
    details_for = "*" if p.role == "supervisor" else (p.agency_id or "")
    weights = card.weights_from(state.policy.scorecard.weights)
    with dbmod.reading(state.settings.db) as tx:
        rows = card.scorecard(tx, period.from_ms, period.to_ms, agency_id, weights=weights, now_ms=int(time.time() * 1000), details_for=details_for, cases=case_policy.of(state.policy))
    prev_from, prev_to = card.previous_period(period.from_ms, period.to_ms)
    previous = Period(
        from_day=dt.datetime.fromtimestamp(prev_from / 1000, CST).date().isoformat(),
        to_day=dt.datetime.fromtimestamp((prev_to - DAY_MS) / 1000, CST).date().isoformat(), from_ms=prev_from, to_ms=prev_to,
    )  # fmt: skip
    return Scorecard(period=period, previous=previous, weights=weights, details="all" if details_for == "*" else "own", rows=rows)


@get("/api/v1/scorecard", sync_to_thread=True, tags=["supervision"], guards=[managers])
def scorecard_api(
    state: State,
    principal: CurrentPrincipal,
    from_day: FromDay = None,
    to_day: ToDay = None,
    agency_id: AgencyId = None,
    lang: Lang = "zh",
    format: Annotated[Literal["json", "csv"], QueryParameter(include_in_schema=False)] = "json",
) -> Scorecard:
    """The agency scorecard (执法监督指标) of a period: per agency each indicator, its score 0–100, the weighted total,
    the rank and the previous period's total. ``?format=csv``: the same as CSV for Excel (UTF-8 with a BOM, Chinese
    headers; English with ``lang=en``). An agency's administrator sees the ranking and their own indicators only."""
    card_ = build(state, principal, period_of(from_day, to_day), agency_id)
    if format == "csv":
        name = f"scorecard-{card_.period.from_day}-{card_.period.to_day}.csv"
        body = to_csv(card.csv_rows(card_.rows, lang))
        return Response(body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'})  # type: ignore[return-value]
    return card_


# --- the page -----------------------------------------------------------------------------------------------------

PAGE_TEXT = {
    "zh": {
        "heading": "执法监督指标", "period": "统计期间", "this_month": "本月", "last_month": "上月", "this_year": "今年", "custom": "自定义",
        "from": "开始日期", "to": "结束日期", "show": "查看", "rank": "排名", "agency": "执法机关", "total": "综合得分", "previous": "上期",
        "change": "变化", "chart": "综合得分", "export": "导出 CSV", "weight": "权重", "not_ranked": "无数据，不排名", "hidden": "仅可查看本机关明细",
        "scope_all": "全部机关", "scope_own": "排名为全部机关，明细仅本机关", "previous_period": "上期", "bad_period": "统计期间有误：",
        "how": "各项指标折算为 0–100 分（越高越好），综合得分为有数据指标的加权平均；无数据的指标不计入。",
    },
    "en": {
        "heading": "Agency scorecard", "period": "Period", "this_month": "This month", "last_month": "Last month", "this_year": "This year",
        "custom": "Custom", "from": "From", "to": "To", "show": "Show", "rank": "Rank", "agency": "Agency", "total": "Total", "previous": "Previous",
        "change": "Change", "chart": "Totals", "export": "Export CSV", "weight": "weight", "not_ranked": "no data, not ranked",
        "hidden": "details of your own agency only", "scope_all": "every agency", "scope_own": "ranking of every agency, details of your own",
        "previous_period": "previous period", "bad_period": "Wrong period: ",
        "how": "Each indicator is scored 0–100 (higher is better); the total is the weighted mean of the indicators with data.",
    },
}  # fmt: skip
#: The chart's geometry (SVG user units).
BAR_ROW, BAR_LABEL, BAR_WIDTH = 26, 190, 420


def _shown(i: card.Indicator, lang: str) -> str:
    """An indicator's value as the page shows it."""
    if i.value is None:
        return "–"
    if i.key == "ratings":
        return f"{i.value:.1f} 星（{i.numerator} 条）" if lang == "zh" else f"{i.value:.1f} stars ({i.numerator})"
    if i.denominator is not None and i.key != "no_disturb_attempts":
        return f"{100 * i.value:.1f}%（{i.numerator}/{i.denominator}）" if lang == "zh" else f"{100 * i.value:.1f}% ({i.numerator}/{i.denominator})"
    return str(int(i.value))


def _chart(rows: list[card.AgencyScore], lang: str) -> dict[str, Any]:
    bars = []
    for n, r in enumerate(rows):
        total = r.total or 0.0
        bars.append(
            {
                "y": n * BAR_ROW, "text_y": n * BAR_ROW + 17, "name": r.agency_name if lang == "zh" else r.agency_name_en,
                "width": round(BAR_WIDTH * total / 100, 1), "value": "–" if r.total is None else f"{r.total:.1f}",
                "value_x": BAR_LABEL + round(BAR_WIDTH * total / 100, 1) + 6,
            }
        )  # fmt: skip
    return {"bars": bars, "height": max(1, len(rows)) * BAR_ROW + 4, "width": BAR_LABEL + BAR_WIDTH + 60, "label": BAR_LABEL}


@get("/scorecard", sync_to_thread=True, include_in_schema=False)
def scorecard_page(
    request: Request, state: State, lang: Lang = "zh", preset: Annotated[Preset, QueryParameter()] = "this_month", from_day: FromDay = None, to_day: ToDay = None
) -> Template | Redirect:
    """The scorecard page of supervisors and agency administrators: period picker, bar chart of totals, table, CSV."""
    from server.console.pages import HOME, TEXT, _page

    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in MANAGERS:
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    t = {**TEXT[lang], **PAGE_TEXT[lang]}
    today = _today()
    if preset != "custom":
        from_day, to_day = preset_period(preset, today)
    problem = None
    try:
        result = build(state, p, period_of(from_day, to_day, today), None)
    except PeriodError as e:
        problem = str(e)
        preset, (from_day, to_day) = "this_month", preset_period("this_month", today)
        result = build(state, p, period_of(from_day, to_day, today), None)
    names = {k: (zh if lang == "zh" else en) for k, (zh, en) in card.INDICATORS.items()}
    rows = [
        {
            "rank": r.rank, "agency": r.agency_name if lang == "zh" else r.agency_name_en, "total": "–" if r.total is None else f"{r.total:.1f}",
            "previous": "–" if r.previous_total is None else f"{r.previous_total:.1f}",
            "change": "" if r.change is None else f"{r.change:+.1f}", "tone": "" if not r.change else ("ok" if r.change > 0 else "bad"),
            "cells": None if r.indicators is None else [
                {"value": _shown(i, lang), "score": "–" if i.score is None else f"{i.score:.0f}", "muted": i.value is None} for i in r.indicators
            ],
        }
        for r in result.rows
    ]  # fmt: skip
    csv = f"/api/v1/scorecard?format=csv&from={result.period.from_day}&to={result.period.to_day}&lang={lang}"
    presets = [(k, t[k], k == preset) for k in ("this_month", "last_month", "this_year")]
    return _page(
        "scorecard.html", lang, p, t=t, rows=rows, chart=_chart(result.rows, lang), period=result.period, previous=result.previous,
        indicators=[(names[k], result.weights[k]) for k in card.INDICATORS], presets=presets, custom=preset == "custom", csv=csv, problem=problem,
        scope=t["scope_all"] if result.details == "all" else t["scope_own"],
    )  # fmt: skip


ROUTES = [scorecard_api, scorecard_page]
