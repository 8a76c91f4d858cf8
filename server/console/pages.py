"""The web console's pages, rendered on the server (Jinja): sign-in, the supervisors' live dashboard, the officer's
phone page, the enterprise's page, the scheduled jobs' status and the public page of a random draw. Chinese
first, English with ``?lang=en``. Live updates come by server-sent events (server/console/dashboard_api.py); the pages
use a little plain JavaScript and no front-end build. Pages only: the API they call lives in the *_api modules.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from server import db as dbmod
from server.console.auth import CurrentPrincipal, Principal, principal_of
from server.jobs.draws import public_view
from server.errors import NotFound
from server.console.guards import supervisors
from server.console.jobs_api import job_status
from server.console.limits import MAX_PHOTO_BYTES, MIB
from server.storage import console
from server.storage import draws as stored_draws

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]
CHINA = dt.timezone(dt.timedelta(hours=8))

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "执法监督平台", "login": "登录", "username": "用户名", "password": "密码", "logout": "退出", "switch": "English",
        "under_way": "正在进行的检查", "alerts": "预警", "to_finding": "立为监督事项", "fleet": "设备", "figures": "今日数据", "trend": "近 30 天趋势",
        "enterprise": "企业", "agencies": "执法机关", "officers": "执法人员", "since": "开始", "recorded": "录像", "joint": "联合检查",
        "yes": "是", "no": "否", "online": "在线", "offline": "离线", "backlog": "积压", "battery": "电量", "clock": "时钟偏差",
        "last_seen": "最后联系", "device": "设备", "inspections": "检查次数", "joint_rate": "联合检查率", "repeat_rate": "重复检查率",
        "blocked": "拦截（无事不扰）", "coverage_rate": "全过程记录率", "participation_rate": "执法人员参与率", "export": "导出 CSV",
        "none": "暂无", "scan": "扫码检查", "photo": "拍摄或选择企业码照片", "field": "执法领域", "reason": "检查事由", "submit": "提交",
        "decision": "判定结果", "my_today": "我今天的检查", "end": "结束检查", "result": "检查结果", "join": "加入检查",
        "enterprise_title": "企业查询：谁检查了我", "code_text": "企业码内容", "or_photo": "或上传企业码照片", "query": "查询",
        "when": "时间", "agency": "机关", "status": "状态", "wrong": "用户名或密码错误", "live": "实时", "jobs": "定时任务", "by_agency": "近 30 天各机关、各领域检查次数", "scans": "扫码次数",
        "date": "日期", "photo_too_large": f"照片太大，无法上传（上限 {MAX_PHOTO_BYTES // MIB} MB）。请靠近企业码重新拍摄，或选择较小的照片。",
        "offline_retry": "网络连接失败，请检查网络后重试。", "outcomes_hidden": "检查结果仅向登录的本企业账号显示。", "rating": "评价", "rate": "提交评价",
        "rating_comment": "留言（可不填）", "rated": "已评价", "rating_thanks": "感谢评价。",
    },
    "en": {
        "title": "Enforcement supervision", "login": "Sign in", "username": "User name", "password": "Password", "logout": "Sign out", "switch": "中文",
        "under_way": "Inspections under way", "alerts": "Alerts", "to_finding": "Open a finding", "fleet": "Devices", "figures": "Today", "trend": "Last 30 days",
        "enterprise": "Enterprise", "agencies": "Agencies", "officers": "Officers", "since": "Since", "recorded": "Recorded", "joint": "Joint",
        "yes": "yes", "no": "no", "online": "online", "offline": "offline", "backlog": "Backlog", "battery": "Battery", "clock": "Clock offset",
        "last_seen": "Last heard", "device": "Device", "inspections": "Inspections", "joint_rate": "Joint-inspection rate", "repeat_rate": "Repeat rate",
        "blocked": "Blocked (no-disturb)", "coverage_rate": "Recorded start to end", "participation_rate": "Officer participation", "export": "Export CSV",
        "none": "none", "scan": "Scan an enterprise", "photo": "Take or choose a photo of the code", "field": "Field", "reason": "Reason", "submit": "Submit",
        "decision": "Decision", "my_today": "My inspections today", "end": "End", "result": "Result", "join": "Join",
        "enterprise_title": "Who inspected my enterprise", "code_text": "Code text", "or_photo": "or upload a photo of the code", "query": "Look up",
        "when": "When", "agency": "Agency", "status": "Status", "wrong": "Wrong user name or password", "live": "live", "jobs": "Scheduled jobs", "by_agency": "Inspections per agency and field, last 30 days", "scans": "Scans",
        "date": "Date", "photo_too_large": f"The photo is too large to upload (limit {MAX_PHOTO_BYTES // MIB} MB). Take it again closer to the code, or choose a smaller photo.",
        "offline_retry": "No network connection: check the network and try again.", "outcomes_hidden": "Results are shown only to the enterprise's own signed-in account.", "rating": "Rating",
        "rate": "Rate", "rating_comment": "Comment (optional)", "rated": "rated", "rating_thanks": "Thank you for your rating.",
    },
}
HOME = {"supervisor": "/", "agency_admin": "/", "officer": "/officer", "enterprise": "/enterprise", "monitor": "/supervision"}


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


#: The texts of the jobs' status page and of a draw's public page.
JOBS_TEXT = {
    "zh": {
        "job": "任务", "schedule": "计划", "last_run": "上次运行", "outcome": "结果", "next_run": "下次运行",
        "draw_title": "双随机抽查结果公示", "draw_short": "双随机公示", "draw": "抽查编号", "field": "领域",
        "commitment": "种子承诺（SHA-256，抽取前公布）", "to_be_drawn": "将于", "to_be_drawn_end": "抽取。", "seed": "种子", "drawn_at": "抽取时间",
        "order_rule": "排序规则：每个候选按 SHA-256(种子字节 + “:” + 编号) 升序排列，任何人可据公布的候选名单复算。",
        "eligible_enterprises": "候选企业", "eligible_officers": "候选执法人员", "credit_code": "统一社会信用代码", "officers_drawn": "执法人员",
    },
    "en": {
        "job": "Job", "schedule": "Schedule", "last_run": "Last run", "outcome": "Outcome", "next_run": "Next run",
        "draw_title": "Random inspection draw", "draw_short": "Draw", "draw": "Draw", "field": "Field",
        "commitment": "Seed commitment (SHA-256, published before the draw)", "to_be_drawn": "To be drawn at", "to_be_drawn_end": ".", "seed": "Seed",
        "drawn_at": "Drawn at", "order_rule": "Order: each candidate by SHA-256(seed bytes + ':' + id), ascending; anyone can recompute it from the published candidates.",
        "eligible_enterprises": "Eligible enterprises", "eligible_officers": "eligible officers", "credit_code": "Credit code", "officers_drawn": "Officers",
    },
}  # fmt: skip
#: How much of a job's last error the status page shows.
DETAIL_CHARS = 120


def _when(ms: int | None) -> str:
    """An instant as China time, to the minute ("–" for none)."""
    return "–" if ms is None else dt.datetime.fromtimestamp(ms / 1000, CHINA).strftime("%Y-%m-%d %H:%M")


def _jobs_text(lang: str) -> dict[str, str]:
    return {**TEXT[lang], **JOBS_TEXT[lang]}


@get("/jobs", sync_to_thread=True, include_in_schema=False, guards=[supervisors])
def jobs_page(state: State, principal: CurrentPrincipal, lang: Lang = "zh") -> Template:
    """The status page of the scheduled jobs (supervisors)."""
    jobs = [
        {
            "name": j.name_zh if lang == "zh" else j.name_en, "schedule": j.schedule, "last_run": _when(j.last_run_ms),
            "outcome": j.last_outcome or "–", "detail": (j.last_detail or "")[:DETAIL_CHARS], "next_run": _when(j.next_run_ms),
        }
        for j in job_status(state)
    ]  # fmt: skip
    return _page("jobs.html", lang, principal, t=_jobs_text(lang), jobs=jobs)


@get("/public/draws/{draw_id:str}", sync_to_thread=True, include_in_schema=False)
def public_draw_page(state: State, draw_id: Annotated[str, PathParameter(description="identifier")], lang: Lang = "zh") -> Template:
    """The public page of a draw (双随机、一公开): commitment, seed and result, for anyone to check."""
    with dbmod.reading(state.settings.db) as con:
        view = public_view(con, draw_id)
        names = stored_draws.draw_target_names(con, draw_id)
    if view is None:
        raise NotFound(f"no draw {draw_id!r}")
    result = view["result"] or {}
    teams = [(t["credit_code"], names.get(t["credit_code"], ""), "、".join(t["officers"])) for t in result.get("teams", [])]
    times = {k: _when(view[k]) for k in ("committed_ms", "draw_at_ms", "drawn_ms")}
    counts = {k: len(result.get(k, [])) for k in ("eligible_enterprises", "eligible_officers")}
    return _page("draw.html", lang, None, t=_jobs_text(lang), draw=view, times=times, counts=counts, teams=teams)


ROUTES = [login_page, dashboard, officer_page, enterprise_page, jobs_page, public_draw_page]
