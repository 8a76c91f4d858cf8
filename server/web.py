"""The web console, rendered on the server (Jinja): sign-in, the supervisors' live dashboard, the officer's
phone page and the enterprise's page. Chinese first, English with ``?lang=en``. Live updates come by
server-sent events; the pages use a little plain JavaScript and no front-end build.
"""

from __future__ import annotations

import asyncio
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
from server import db as dbmod
from server.auth import CurrentPrincipal, Principal, principal_of
from server.codes import check_code
from server.live import snapshot
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
    with dbmod.reading(state.settings.db_path) as con:
        row = con.execute("SELECT fields FROM officers WHERE officer_id = ?", (p.officer_id,)).fetchone()
        names = dict(con.execute("SELECT field_id, name FROM fields ORDER BY field_id").fetchall())
    fields = json.loads(row[0]) if row else []
    return _page("officer.html", lang, p, fields=[(f, names.get(f, f) if lang == "zh" else f) for f in fields])


@get("/enterprise", sync_to_thread=False, include_in_schema=False)
def enterprise_page(lang: Lang = "zh") -> Template:
    """The enterprise's page: the inspections of my enterprise, reached with my own code."""
    return _page("enterprise.html", lang, None)


class EnterpriseQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enterprise proves who it is with its own code (text, or a photo of it)."""

    code_text: str | None = None
    photo_base64: str | None = None


@post("/api/v1/enterprise-view", sync_to_thread=True, status_code=200, tags=["enterprises"])
def enterprise_view(state: State, data: JSONBody[EnterpriseQuery]) -> dict[str, Any]:
    """The inspections of the enterprise whose (valid, unrevoked) code is given: who, when, result."""
    from server.inspect_api import _photo_text

    if (data.code_text is None) == (data.photo_base64 is None):
        raise ClientException("give exactly one of code_text and photo_base64")
    text = data.code_text
    if data.photo_base64 is not None:
        import base64
        import binascii

        try:
            text = _photo_text(base64.b64decode(data.photo_base64, validate=True))
        except (binascii.Error, ValueError):
            raise ClientException("photo_base64 is not valid base64") from None
    assert text is not None
    with dbmod.reading(state.settings.db_path) as con:
        try:
            code = check_code(con, text).credit_code
        except CodeError as e:
            raise ClientException(f"企业码无效 / the code is not valid ({e.reason}): {e}") from None
        name = con.execute("SELECT name FROM enterprises WHERE credit_code = ?", (code,)).fetchone()
        rows = con.execute(
            "SELECT i.inspection_id, i.opened_ms, i.ended_ms, i.status, p.agency_id, a.name, p.field, p.result FROM inspections i"
            " JOIN inspection_parts p USING (inspection_id) LEFT JOIN agencies a ON a.agency_id = p.agency_id WHERE i.credit_code = ? ORDER BY i.opened_ms DESC, p.joined_ms",
            (code,),
        ).fetchall()
    keys = ("inspection_id", "opened_ms", "ended_ms", "status", "agency_id", "agency", "field", "result")
    return {"credit_code": code, "name": name[0] if name else code, "inspections": [dict(zip(keys, r, strict=True)) for r in rows]}


@get("/api/v1/live", sync_to_thread=True, tags=["dashboard"])
def live(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    """What the dashboard shows, once (the stream below sends it every few seconds)."""
    principal.require("supervisor", "agency_admin")
    return _snapshot(state, principal)


def _snapshot(state: State, p: Principal) -> dict[str, Any]:
    with dbmod.reading(state.settings.db_path) as con:
        return snapshot(con, p)


@get("/api/v1/stream", tags=["dashboard"])
async def stream(state: State, principal: CurrentPrincipal) -> ServerSentEvent:
    """Server-sent events: the dashboard's data every few seconds, while the page is open."""
    principal.require("supervisor", "agency_admin")

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        n = 0
        while True:
            data = await anyio.to_thread.run_sync(_snapshot, state, principal)
            n += 1
            yield ServerSentEventMessage(data=json.dumps(data, ensure_ascii=False), event="snapshot", id=n)
            await asyncio.sleep(STREAM_INTERVAL_S)

    return ServerSentEvent(events())


#: The last N days a figure covers (the statistics' own limit, so every accepted value is answered).
Days = Annotated[int, QueryParameter(ge=1, le=MAX_PERIOD_DAYS, description="the last N days")]


@get("/api/v1/stats.csv", sync_to_thread=True, media_type="text/csv; charset=utf-8", tags=["dashboard"])
def stats_csv(state: State, principal: CurrentPrincipal, days: Days = 30) -> Response[str]:
    """Inspections per agency and field over the last N days, as CSV (opens in Excel)."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db_path) as con:
        rows = inspections_by_agency_field(con, *period, principal.agency_id if principal.role == "agency_admin" else None)
    stamp = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d")
    return Response(to_csv(rows), headers={"Content-Disposition": f'attachment; filename="inspections-{stamp}.csv"'})


@get("/api/v1/stats/by-agency-field", sync_to_thread=True, tags=["dashboard"])
def by_agency_field(state: State, principal: CurrentPrincipal, days: Days = 30) -> list[dict[str, Any]]:
    """Inspections per agency and field over the last N days (what the CSV export holds)."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db_path) as con:
        return inspections_by_agency_field(con, *period, principal.agency_id if principal.role == "agency_admin" else None)


@get("/api/v1/trend", sync_to_thread=True, tags=["dashboard"])
def trend_api(state: State, principal: CurrentPrincipal, days: Days = 30) -> list[dict[str, Any]]:
    """Per day: inspections, joint ones, scans, refusals, repeats."""
    principal.require("supervisor", "agency_admin")
    period = last_days(days, int(time.time() * 1000))
    with dbmod.reading(state.settings.db_path) as con:
        return trend(con, *period, principal.agency_id if principal.role == "agency_admin" else None)


ROUTES = [login_page, dashboard, officer_page, enterprise_page, enterprise_view, live, stream, stats_csv, by_agency_field, trend_api]
