"""HTTP API of the supervisors' dashboard: what it shows live (once, or as a stream of server-sent events) and
its figures over a period (the last N days, or China calendar days ``from_day`` to ``to_day`` inclusive): the headline
figures, per agency and field (JSON and CSV), per enterprise of one agency and field (the chart's last level), per
administrative division of the enterprises, and per day. The pages themselves are in server/console/pages.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from protocol.cst import CST
from server import db as dbmod
from server.console.auth import CurrentPrincipal, Principal, principal_of
from server.console.guards import managers
from server.console.live import snapshot
from server.console import labels
from server.console.stats import MAX_PERIOD_DAYS, check_period, inspections_by_agency_field, last_days, summary, to_csv, trend
from server.errors import Forbidden, Invalid, answers
from server.storage import console as stored

#: Seconds between two live updates of the dashboard.
STREAM_INTERVAL_S = 2.0
CHINA = CST
#: The last N days a figure covers (the statistics' own limit, so every accepted value is answered).
Days = Annotated[int, QueryParameter(ge=1, le=MAX_PERIOD_DAYS, description="the last N days (unless from_day and to_day are given)")]
FromDay = Annotated[dt.date | None, QueryParameter(description="first China calendar day of the period (with to_day)")]
ToDay = Annotated[dt.date | None, QueryParameter(description="last China calendar day of the period, inclusive")]
IdQuery = Annotated[str | None, QueryParameter(max_length=100)]
#: The CSV export's column names, in each language (the codes stay, for a spreadsheet's lookups).
CSV_COLUMNS = {
    "zh": {"agency_id": "机关代码", "agency_name": "执法机关", "field": "领域代码", "field_name": "执法领域", "inspections": "检查次数", "parts": "参与人次"},
    "en": {"agency_id": "Agency code", "agency_name": "Agency", "field": "Field code", "field_name": "Field", "inspections": "Inspections", "parts": "Officer parts"},
}
#: The most enterprises the chart's last level lists.
ENTERPRISES_SHOWN = 50


class _View(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A view built from a dict of the rule modules: every key must be a field (none dropped unseen)."""


class UnderWay(_View):
    """An inspection under way, as the dashboard lists it."""

    inspection_id: str
    credit_code: str
    enterprise: str
    lead_agency_id: str
    field: str
    since_ms: int
    officers: list[str]
    agencies: list[str]
    joint: bool
    recorded: bool
    exception: str | None


class DashboardAlert(_View):
    """An alert with its kind's labels."""

    id: int
    created_ms: int
    kind: str
    severity: str
    agency_id: str | None  # the agency it concerns (a supervisor opens a finding about that agency from it)
    message_zh: str
    message_en: str
    label_zh: str
    label_en: str


class FleetDevice(_View):
    """A device as the fleet table shows it (the status figures as the device last reported them)."""

    device_id: str
    kind: str
    agency_id: str
    online: bool
    last_seen_ms: int | None
    backlog: int | None
    oldest_unsent_s: float | None
    battery: int | None
    clock_offset_ms: int | None


class Summary(_View):
    """A period's headline figures (server/console/stats.py ``summary``); rates are null without a denominator."""

    from_ms: int
    to_ms: int
    agency_id: str | None
    inspections: int
    joint_inspections: int
    joint_rate: float | None
    scans: int
    repeat_answers: int
    repeat_rate: float | None
    refused: int
    blocked_attempts: int
    refusals_by_code: dict[str, int]
    ended_inspections: int
    recorded_any: int
    recorded_complete: int
    recording_coverage_rate: float | None
    uncovered_minutes: float
    credentialed_officers: int
    active_officers: int
    participation_rate: float | None
    alerts_by_kind: dict[str, int]


class Snapshot(_View):
    """Everything the dashboard shows, now."""

    now_ms: int
    under_way: list[UnderWay]
    alerts: list[DashboardAlert]
    fleet: list[FleetDevice]
    today: Summary


class AgencyFieldCount(_View):
    """Inspections and parts of one agency in one field over a period (names fall back to the ids)."""

    agency_id: str
    agency_name: str
    field: str
    field_name: str
    inspections: int
    parts: int


class TrendDay(_View):
    """One China day's figures."""

    day: str  # YYYY-MM-DD
    inspections: int
    joint_inspections: int
    scans: int
    refused: int
    repeat_answers: int


class EnterpriseCount(_View):
    """Inspections of one enterprise by an agency in a field over a period."""

    credit_code: str
    name: str
    inspections: int


class DivisionCount(_View):
    """Inspections and enterprises inspected in one administrative division (the enterprises' register) over a period."""

    division: str
    name: str
    inspections: int
    enterprises: int


def period(days: int, from_day: dt.date | None, to_day: dt.date | None) -> tuple[int, int]:
    """``[from_ms, to_ms)``: China days ``from_day`` to ``to_day`` inclusive when both are given, else the last ``days`` days."""
    if from_day is None and to_day is None:
        return last_days(days, int(time.time() * 1000))
    if from_day is None or to_day is None:
        raise Invalid("统计区间须同时给出起止日期 / give both from_day and to_day")
    if not (dt.date(2000, 1, 1) <= from_day <= dt.date(2100, 1, 1) and dt.date(2000, 1, 1) <= to_day <= dt.date(2100, 1, 1)):
        raise Invalid("日期须在 2000 年至 2100 年之间 / days must be within 2000 to 2100")
    start = int(dt.datetime(from_day.year, from_day.month, from_day.day, tzinfo=CHINA).timestamp() * 1000)
    end_day = to_day + dt.timedelta(days=1)
    end = int(dt.datetime(end_day.year, end_day.month, end_day.day, tzinfo=CHINA).timestamp() * 1000)
    check_period(start, end)
    return start, end


def _snapshot(state: State, p: Principal) -> Snapshot:
    with dbmod.reading(state.settings.db) as con:
        return msgspec.convert(snapshot(con, p), Snapshot)


def _own_agency(p: Principal) -> str | None:
    """The agency whose share an agency's administrator sees (None: a supervisor's whole picture)."""
    return p.agency_id if p.role == "agency_admin" else None


@get("/api/v1/live", sync_to_thread=True, tags=["dashboard"], guards=[managers])
def live(state: State, principal: CurrentPrincipal) -> Snapshot:
    """What the dashboard shows, once (the stream below sends it every few seconds)."""
    return _snapshot(state, principal)


@get("/api/v1/stream", tags=["dashboard"], guards=[managers])
async def stream(request: Request, state: State, principal: CurrentPrincipal) -> ServerSentEvent:
    """Server-sent events: the dashboard's data every few seconds, while the page is open and the session lasts."""

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        n = 0
        while True:
            # The session is checked again before every update: a disabled account, a sign-out or an
            # expired session ends an open stream at once, not when the page is next loaded.
            if await anyio.to_thread.run_sync(principal_of, request) is None:
                return
            data = await anyio.to_thread.run_sync(_snapshot, state, principal)
            n += 1
            yield ServerSentEventMessage(data=msgspec.json.encode(data).decode(), event="snapshot", id=n)
            await asyncio.sleep(STREAM_INTERVAL_S)

    return ServerSentEvent(events())


@get("/api/v1/stats.csv", sync_to_thread=True, media_type="text/csv", tags=["dashboard"], guards=[managers])  # Litestar adds "; charset=utf-8"
def stats_csv(
    state: State, principal: CurrentPrincipal, days: Days = 30, from_day: FromDay = None, to_day: ToDay = None,
    lang: Annotated[str, QueryParameter(pattern="^(zh|en)$", description="the columns' names: zh (default) or en")] = "zh",
) -> Response[str]:  # fmt: skip
    """Inspections per agency and field over the period, as CSV (opens in Excel), the columns named in ``lang``."""
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        found = inspections_by_agency_field(con, *span, _own_agency(principal))
    names = CSV_COLUMNS[lang]
    rows = [{names[k]: v for k, v in r.items()} for r in found]
    stamp = dt.datetime.now(CHINA).strftime("%Y%m%d")
    return Response(to_csv(rows), headers={"Content-Disposition": f'attachment; filename="inspections-{stamp}.csv"'})


@get("/api/v1/stats/by-agency-field", sync_to_thread=True, tags=["dashboard"], guards=[managers])
def by_agency_field(state: State, principal: CurrentPrincipal, days: Days = 30, from_day: FromDay = None, to_day: ToDay = None) -> list[AgencyFieldCount]:
    """Inspections per agency and field over the period (what the CSV export holds)."""
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        return msgspec.convert(inspections_by_agency_field(con, *span, _own_agency(principal)), list[AgencyFieldCount])


@get("/api/v1/trend", sync_to_thread=True, tags=["dashboard"], guards=[managers])
def trend_api(state: State, principal: CurrentPrincipal, days: Days = 30, from_day: FromDay = None, to_day: ToDay = None) -> list[TrendDay]:
    """Per day: inspections, joint ones, scans, refusals, repeats."""
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        return msgspec.convert(trend(con, *span, _own_agency(principal)), list[TrendDay])


@get("/api/v1/stats/summary", sync_to_thread=True, tags=["dashboard"], guards=[managers])
def summary_api(state: State, principal: CurrentPrincipal, days: Days = 30, from_day: FromDay = None, to_day: ToDay = None) -> Summary:
    """The period's headline figures (the dashboard's figures for the period picked)."""
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        return msgspec.convert(summary(con, *span, _own_agency(principal)), Summary)


@get("/api/v1/stats/by-enterprise", sync_to_thread=True, tags=["dashboard"], guards=[managers], responses=answers(Forbidden))
def by_enterprise(
    state: State, principal: CurrentPrincipal, agency_id: IdQuery = None, field: IdQuery = None, days: Days = 30, from_day: FromDay = None,
    to_day: ToDay = None,
) -> list[EnterpriseCount]:  # fmt: skip
    """The enterprises one agency inspected in one field over the period, most inspected first (at most 50)."""
    own = _own_agency(principal)
    if own is not None and agency_id not in (None, own):
        raise Forbidden("只能查看本机关的数据 / only your own agency's figures")
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        rows = stored.by_enterprise(con, *span, own or agency_id or None, field or None, ENTERPRISES_SHOWN)
    return [EnterpriseCount(credit_code=c, name=n, inspections=k) for c, n, k in rows]


@get("/api/v1/stats/by-division", sync_to_thread=True, tags=["dashboard"], guards=[managers])
def by_division(
    state: State, principal: CurrentPrincipal, days: Days = 30, from_day: FromDay = None, to_day: ToDay = None, lang: Annotated[str, QueryParameter(pattern="^(zh|en)$")] = "zh"
) -> list[DivisionCount]:  # fmt: skip
    """Inspections per administrative division of the enterprises inspected (their register's division code)."""
    span = period(days, from_day, to_day)
    with dbmod.reading(state.settings.db) as con:
        rows = stored.by_division(con, *span, _own_agency(principal))
    return [DivisionCount(division=d, name=labels.division(d, lang), inspections=i, enterprises=e) for d, i, e in rows]


ROUTES = [live, stream, stats_csv, by_agency_field, trend_api, summary_api, by_enterprise, by_division]
