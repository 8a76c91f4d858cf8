"""The web console, rendered on the server (Jinja): sign-in, the supervisors' live dashboard, the officer's
phone page and the enterprise's page. Chinese first, English with ``?lang=en``. Live updates come by
server-sent events; the pages use a little plain JavaScript and no front-end build.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage

from protocol.enterprise_code import CodeError
from protocol.messages import InspectionResult
from server import db as dbmod
from server.auth import CurrentPrincipal, Principal, principal_of
from server.codes import check_code
from server.errors import Unreadable, answers
from server.limits import MAX_PHOTO_BYTES, MIB, PHOTO_JSON_MAX_BODY, PHOTO_ROUTE
from server.live import snapshot
from server.storage import console
from server.storage.engine import Tx
from server.stats import MAX_PERIOD_DAYS, inspections_by_agency_field, last_days, to_csv, trend

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]
#: Seconds between two live updates of the dashboard.
STREAM_INTERVAL_S = 2.0

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "执法监督平台", "login": "登录", "username": "用户名", "password": "密码", "logout": "退出", "switch": "English",
        "under_way": "正在进行的检查", "alerts": "预警", "fleet": "设备", "figures": "今日数据", "trend": "近 30 天趋势",
        "enterprise": "企业", "agencies": "执法机关", "officers": "执法人员", "since": "开始", "recorded": "录像", "joint": "联合检查",
        "yes": "是", "no": "否", "online": "在线", "offline": "离线", "backlog": "积压", "battery": "电量", "clock": "时钟偏差",
        "last_seen": "最后联系", "device": "设备", "inspections": "检查次数", "joint_rate": "联合检查率", "repeat_rate": "重复检查率",
        "blocked": "拦截（无事不扰）", "coverage_rate": "全过程记录率", "participation_rate": "执法人员参与率", "export": "导出 CSV",
        "none": "暂无", "scan": "扫码检查", "photo": "拍摄或选择企业码照片", "field": "执法领域", "reason": "检查事由", "submit": "提交",
        "decision": "判定结果", "my_today": "我今天的检查", "end": "结束检查", "result": "检查结果", "join": "加入检查",
        "enterprise_title": "企业查询：谁检查了我", "code_text": "企业码内容", "or_photo": "或上传企业码照片", "query": "查询",
        "when": "时间", "agency": "机关", "status": "状态", "wrong": "用户名或密码错误", "live": "实时", "jobs": "定时任务", "by_agency": "近 30 天各机关、各领域检查次数", "scans": "扫码次数",
        "date": "日期", "photo_too_large": f"照片太大，无法上传（上限 {MAX_PHOTO_BYTES // MIB} MB）。请靠近企业码重新拍摄，或选择较小的照片。",
        "offline_retry": "网络连接失败，请检查网络后重试。", "outcomes_hidden": "检查结果仅向登录的本企业账号显示。",
    },
    "en": {
        "title": "Enforcement supervision", "login": "Sign in", "username": "User name", "password": "Password", "logout": "Sign out", "switch": "中文",
        "under_way": "Inspections under way", "alerts": "Alerts", "fleet": "Devices", "figures": "Today", "trend": "Last 30 days",
        "enterprise": "Enterprise", "agencies": "Agencies", "officers": "Officers", "since": "Since", "recorded": "Recorded", "joint": "Joint",
        "yes": "yes", "no": "no", "online": "online", "offline": "offline", "backlog": "Backlog", "battery": "Battery", "clock": "Clock offset",
        "last_seen": "Last heard", "device": "Device", "inspections": "Inspections", "joint_rate": "Joint-inspection rate", "repeat_rate": "Repeat rate",
        "blocked": "Blocked (no-disturb)", "coverage_rate": "Recorded start to end", "participation_rate": "Officer participation", "export": "Export CSV",
        "none": "none", "scan": "Scan an enterprise", "photo": "Take or choose a photo of the code", "field": "Field", "reason": "Reason", "submit": "Submit",
        "decision": "Decision", "my_today": "My inspections today", "end": "End", "result": "Result", "join": "Join",
        "enterprise_title": "Who inspected my enterprise", "code_text": "Code text", "or_photo": "or upload a photo of the code", "query": "Look up",
        "when": "When", "agency": "Agency", "status": "Status", "wrong": "Wrong user name or password", "live": "live", "jobs": "Scheduled jobs", "by_agency": "Inspections per agency and field, last 30 days", "scans": "Scans",
        "date": "Date", "photo_too_large": f"The photo is too large to upload (limit {MAX_PHOTO_BYTES // MIB} MB). Take it again closer to the code, or choose a smaller photo.",
        "offline_retry": "No network connection: check the network and try again.", "outcomes_hidden": "Results are shown only to the enterprise's own signed-in account.",
    },
}
HOME = {"supervisor": "/", "agency_admin": "/", "officer": "/officer", "enterprise": "/enterprise"}


def _page(template: str, lang: str, p: Principal | None, **context: Any) -> Template:
    return Template(template_name=template, context={"t": TEXT[lang], "lang": lang, "other": "en" if lang == "zh" else "zh", "me": p, **context})


@get("/login", sync_to_thread=False, include_in_schema=False)
def login_page(lang: Lang = "zh") -> Template:
    """The sign-in page."""
    return _page("login.html", lang, None)


@get("/", sync_to_thread=True, include_in_schema=False)
def dashboard(request: Request, lang: Lang = "zh") -> Template | Redirect:
    """The supervisors' live dashboard (an agency's administrator sees their agency's share)."""
    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in ("supervisor", "agency_admin"):
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    return _page("dashboard.html", lang, p)


@get("/officer", sync_to_thread=True, include_in_schema=False)
def officer_page(request: Request, state: State, lang: Lang = "zh") -> Template | Redirect:
    """The officer's phone page: scan, see the decision, start, join and end, my inspections today."""
    p = principal_of(request)
    if p is None or p.role != "officer":
        return Redirect(f"/login?lang={lang}")
    with dbmod.reading(state.settings.db) as con:
        stored = console.officer_fields(con, p.officer_id)
        names = console.field_names(con)
    fields = json.loads(stored) if stored else []
    return _page("officer.html", lang, p, max_photo_bytes=MAX_PHOTO_BYTES, fields=[(f, names.get(f, f) if lang == "zh" else f) for f in fields])


@get("/enterprise", sync_to_thread=False, include_in_schema=False)
def enterprise_page(request: Request, lang: Lang = "zh") -> Template:
    """The enterprise's page: the inspections of my enterprise, reached with my own code (outcomes when signed in)."""
    return _page("enterprise.html", lang, principal_of(request), max_photo_bytes=MAX_PHOTO_BYTES)


class EnterpriseQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enterprise's code (text, or a photo of it): whoever holds it sees that inspections happened."""

    code_text: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    photo_base64: str | None = None


class VisitOutcome(msgspec.Struct, kw_only=True):
    """One agency's result of an inspection (shown to the enterprise's own signed-in account only)."""

    agency: str
    field: str
    result: InspectionResult | None  # None while that part is under way
    result_label: str


class Visit(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An inspection as the enterprise sees it: the day, the agencies, the fields; outcomes for the owner."""

    date: str  # YYYY-MM-DD, China time
    agencies: list[str]
    fields: list[str]
    outcomes: list[VisitOutcome] | None = None


class EnterpriseHistory(msgspec.Struct, kw_only=True):
    """Who inspected an enterprise. ``outcomes_shown`` is true only for the enterprise's own account."""

    credit_code: str
    name: str
    outcomes_shown: bool
    inspections: list[Visit]


#: The most recent inspections an enterprise's page lists.
HISTORY_LIMIT = 200
CHINA = dt.timezone(dt.timedelta(hours=8))
RESULT_LABELS: dict[str, dict[str | None, str]] = {
    "zh": {"no_violation": "未发现问题", "rectification_ordered": "责令整改", "case_opened": "立案", "referred": "移送", "not_completed": "未完成", None: "检查中"},
    "en": {"no_violation": "no violation", "rectification_ordered": "rectification ordered", "case_opened": "case opened", "referred": "referred",
           "not_completed": "not completed", None: "under way"},
}  # fmt: skip


def _label(names: tuple[str | None, str | None], fallback: str, lang: str) -> str:
    zh, en = names
    return (zh if lang == "zh" else en or zh) or fallback


def enterprise_history(con: Tx, credit_code: str, lang: str, with_outcomes: bool) -> list[Visit]:
    """The enterprise's latest inspections, newest first: day, agency and field names; results only if asked."""
    rows = console.visits(con, credit_code, HISTORY_LIMIT)
    visits: dict[str, Visit] = {}  # by inspection id, which never leaves this function
    for inspection_id, opened_ms, agency_id, a_zh, a_en, field_id, f_zh, f_en, result in rows:
        agency, field = _label((a_zh, a_en), agency_id, lang), _label((f_zh, f_en), field_id, lang)
        day = dt.datetime.fromtimestamp(opened_ms / 1000, CHINA).date().isoformat()
        v = visits.setdefault(inspection_id, Visit(date=day, agencies=[], fields=[], outcomes=[] if with_outcomes else None))
        if agency not in v.agencies:
            v.agencies.append(agency)
        if field not in v.fields:
            v.fields.append(field)
        if v.outcomes is not None:
            v.outcomes.append(VisitOutcome(agency=agency, field=field, result=result, result_label=RESULT_LABELS[lang][result]))
    return list(visits.values())


@post(
    "/api/v1/enterprise-view", sync_to_thread=True, status_code=200, tags=["enterprises"],
    request_max_body_size=PHOTO_JSON_MAX_BODY, opt={PHOTO_ROUTE: True}, responses=answers(Unreadable),  # 422: no code in the photo
)  # fmt: skip
def enterprise_view(request: Request, state: State, data: JSONBody[EnterpriseQuery], lang: Lang = "zh") -> EnterpriseHistory:
    """Who inspected the enterprise whose (valid, unrevoked) code is given: the day, agencies and fields.
    The results only to the enterprise's own signed-in account: anyone who photographs the door code
    learns that inspections happened, never their outcome."""
    from server.inspect_api import _photo_text

    if (data.code_text is None) == (data.photo_base64 is None):
        raise ClientException("请给出企业码内容或照片之一 / give exactly one of code_text and photo_base64")
    text = data.code_text
    if data.photo_base64 is not None:
        try:
            text = _photo_text(base64.b64decode(data.photo_base64, validate=True))
        except (binascii.Error, ValueError):
            raise ClientException("照片不是有效的 base64 编码 / photo_base64 is not valid base64") from None
    assert text is not None
    p = principal_of(request)
    with dbmod.reading(state.settings.db) as con:
        try:
            code = check_code(con, text).credit_code
        except CodeError as e:
            raise ClientException(f"企业码无效 / the code is not valid ({e.reason}): {e}") from None
        owner = p is not None and p.role == "enterprise" and p.credit_code == code
        name = console.enterprise_name(con, code)
        visits = enterprise_history(con, code, lang, with_outcomes=owner)
    return EnterpriseHistory(credit_code=code, name=name or code, outcomes_shown=owner, inspections=visits)


@get("/api/v1/live", sync_to_thread=True, tags=["dashboard"])
def live(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    """What the dashboard shows, once (the stream below sends it every few seconds)."""
    principal.require("supervisor", "agency_admin")
    return _snapshot(state, principal)


def _snapshot(state: State, p: Principal) -> dict[str, Any]:
    with dbmod.reading(state.settings.db) as con:
        return snapshot(con, p)


@get("/api/v1/stream", tags=["dashboard"])
async def stream(request: Request, state: State, principal: CurrentPrincipal) -> ServerSentEvent:
    """Server-sent events: the dashboard's data every few seconds, while the page is open and the session lasts."""
    principal.require("supervisor", "agency_admin")

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        n = 0
        while True:
            # The session is checked again before every update: a disabled account, a sign-out or an
            # expired session ends an open stream at once, not when the page is next loaded.
            if await anyio.to_thread.run_sync(principal_of, request) is None:
                return
            data = await anyio.to_thread.run_sync(_snapshot, state, principal)
            n += 1
            yield ServerSentEventMessage(data=json.dumps(data, ensure_ascii=False), event="snapshot", id=n)
            await asyncio.sleep(STREAM_INTERVAL_S)

    return ServerSentEvent(events())


#: The last N days a figure covers (the statistics' own limit, so every accepted value is answered).
Days = Annotated[int, QueryParameter(ge=1, le=MAX_PERIOD_DAYS, description="the last N days")]


@get("/api/v1/stats.csv", sync_to_thread=True, media_type="text/csv", tags=["dashboard"])  # Litestar adds "; charset=utf-8"
def stats_csv(state: State, principal: CurrentPrincipal, days: Days = 30) -> Response[str]:
    """Inspections per agency and field over the last N days, as CSV (opens in Excel)."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db) as con:
        rows = inspections_by_agency_field(con, *period, principal.agency_id if principal.role == "agency_admin" else None)
    stamp = dt.datetime.now(CHINA).strftime("%Y%m%d")
    return Response(to_csv(rows), headers={"Content-Disposition": f'attachment; filename="inspections-{stamp}.csv"'})


@get("/api/v1/stats/by-agency-field", sync_to_thread=True, tags=["dashboard"])
def by_agency_field(state: State, principal: CurrentPrincipal, days: Days = 30) -> list[dict[str, Any]]:
    """Inspections per agency and field over the last N days (what the CSV export holds)."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db) as con:
        return inspections_by_agency_field(con, *period, principal.agency_id if principal.role == "agency_admin" else None)


@get("/api/v1/trend", sync_to_thread=True, tags=["dashboard"])
def trend_api(state: State, principal: CurrentPrincipal, days: Days = 30) -> list[dict[str, Any]]:
    """Per day: inspections, joint ones, scans, refusals, repeats."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db) as con:
        return trend(con, *period, principal.agency_id if principal.role == "agency_admin" else None)


ROUTES = [login_page, dashboard, officer_page, enterprise_page, enterprise_view, live, stream, stats_csv, by_agency_field, trend_api]
