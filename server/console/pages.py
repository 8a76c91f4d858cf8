"""The web console's pages, rendered on the server (Jinja): sign-in, the supervisors' live dashboard, an alert with
the record it concerns, the officer's phone page, the enterprise's page, the scheduled jobs' status and the public page
of a random draw. Chinese first, English with ``?lang=en``; every id a person reads is a label from
server/console/labels.py (the pages' scripts read the same labels from the ``labels`` JSON block: ``L(group, id)``). Live updates come by server-sent events (server/console/dashboard_api.py); the pages
use a little plain JavaScript and no front-end build. Pages only: the API they call lives in the *_api modules.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from protocol.cst import CST
from server import db as dbmod
from server.console import labels
from server.console.auth import CurrentPrincipal, Principal, principal_of
from server.jobs.draws import public_view
from server.errors import Forbidden, NotFound
from server.console.guards import supervisors
from server.console.jobs_api import job_status, outcome_words, schedule_words
from server.console.limits import MAX_PHOTO_BYTES, MIB
from server.storage import cases as case_rows
from server.storage import console
from server.storage import draws as stored_draws

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]
CHINA = CST

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "执法监督平台", "login": "登录", "username": "用户名", "password": "密码", "logout": "退出", "switch": "English",
        "under_way": "正在进行的检查", "alerts": "预警", "to_finding": "立为监督事项", "fleet": "设备", "figures": "今日数据", "trend": "每日趋势",
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
        "under_way": "Inspections under way", "alerts": "Alerts", "to_finding": "Open a finding", "fleet": "Devices", "figures": "Today", "trend": "Per day",
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
#: The dashboard's own texts (added to TEXT on that page).
DASHBOARD_TEXT = {
    "zh": {
        "period": "统计区间", "month": "月份", "from": "从", "to": "到", "show": "显示", "period_figures": "区间数据", "drill": "各机关检查次数（点击查看各领域、各企业）",
        "all_agencies": "全部机关", "districts": "各行政区划检查次数", "division": "行政区划", "enterprises": "企业数", "kind": "预警类型",
        "all_kinds": "全部类型", "handled": "处理情况", "filter": "筛选", "acknowledge": "确认", "assign": "分派", "assignee": "分派给（用户名）",
        "details": "查看详情", "acknowledged_by": "已确认", "assigned_to": "已分派给", "by": "由", "state": "状态", "severity": "级别",
        "alert_done": "已保存。", "credit_code": "统一社会信用代码", "none_in_period": "该区间暂无数据",
    },
    "en": {
        "period": "Period", "month": "Month", "from": "From", "to": "To", "show": "Show", "period_figures": "Figures for the period", "drill": "Inspections per agency (click for fields, then enterprises)",
        "all_agencies": "All agencies", "districts": "Inspections per district", "division": "District", "enterprises": "Enterprises", "kind": "Kind",
        "all_kinds": "All kinds", "handled": "Handling", "filter": "Filter", "acknowledge": "Acknowledge", "assign": "Assign", "assignee": "Assign to (user name)",
        "details": "Details", "acknowledged_by": "Acknowledged by", "assigned_to": "Assigned to", "by": "by", "state": "State", "severity": "Severity",
        "alert_done": "Saved.", "credit_code": "Credit code", "none_in_period": "Nothing in this period",
    },
}  # fmt: skip
HOME = {"supervisor": "/", "agency_admin": "/", "officer": "/officer", "enterprise": "/enterprise", "monitor": "/supervision"}


def _page(template: str, lang: str, p: Principal | None, names: dict[str, dict[str, str]] | None = None, **context: Any) -> Template:
    """A page in ``lang`` for ``p``, with the labels of every registered group (and the registers' ``names``, when the
    page shows agencies or fields) for its template (``L``) and its script."""
    table = {**labels.table(lang), **(names or {})}
    unknown = labels.UNKNOWN[0 if lang == "zh" else 1]

    def lab(group: str, value: str | None) -> str:
        return table.get(group, {}).get(value or "", unknown)

    base = {"t": TEXT[lang], "lang": lang, "other": "en" if lang == "zh" else "zh", "me": p, "L": table, "lab": lab, "role_label": lab("role", p.role if p else None),
            "localized": lambda message: labels.localized(str(message), lang)}
    return Template(template_name=template, context={**base, **context})


def _names(state: State, lang: str) -> dict[str, dict[str, str]]:
    with dbmod.reading(state.settings.db) as tx:
        return labels.register_names(tx, lang)


@get("/login", sync_to_thread=False, include_in_schema=False)
def login_page(lang: Lang = "zh") -> Template:
    """The sign-in page."""
    return _page("login.html", lang, None)


@get("/", sync_to_thread=True, include_in_schema=False)
def dashboard(request: Request, state: State, lang: Lang = "zh") -> Template | Redirect:
    """The supervisors' live dashboard (an agency's administrator sees their agency's share)."""
    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in ("supervisor", "agency_admin"):
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    t = {**TEXT[lang], **DASHBOARD_TEXT[lang]}
    return _page("dashboard.html", lang, p, _names(state, lang), t=t, today=dt.datetime.now(CHINA).date().isoformat())


@get("/officer", sync_to_thread=True, include_in_schema=False)
def officer_page(request: Request, state: State, lang: Lang = "zh") -> Template | Redirect:
    """The officer's phone page: scan, see the decision, start, join and end, my inspections today."""
    p = principal_of(request)
    if p is None or p.role != "officer":
        return Redirect(f"/login?lang={lang}")
    with dbmod.reading(state.settings.db) as con:
        stored = console.officer_fields(con, p.officer_id)
        names = console.field_names(con)
        # Ended with 立案 in the last two days, no case of the agency yet: "my inspections today" links each to /cases.
        since = int(time.time() * 1000) - 2 * 86_400_000
        to_open = sorted({row[0] for row in case_rows.inspections_to_open(con, p.agency_id or "-", since, 500)})
    fields = json.loads(stored) if stored else []
    return _page("officer.html", lang, p, max_photo_bytes=MAX_PHOTO_BYTES, fields=[(f, names.get(f, f) if lang == "zh" else f) for f in fields], to_open=to_open)


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
            "name": j.name_zh if lang == "zh" else j.name_en, "schedule": schedule_words(j.id, lang), "last_run": _when(j.last_run_ms),
            "outcome": outcome_words(j.last_outcome, j.last_detail, lang), "tone": {"ok": "ok", "error": "bad"}.get(j.last_outcome or "", "muted"),
            "next_run": _when(j.next_run_ms),
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
        drawn = {o for t in ((view or {}).get("result") or {}).get("teams", []) for o in t["officers"]}
        facts = case_rows.officer_facts(con, sorted(drawn))
    officers = {o: f[1] if (f := facts.get(o)) else labels.UNKNOWN[0 if lang == "zh" else 1] for o in drawn}  # by name, never the id
    if view is None:
        raise NotFound(f"没有编号为 {draw_id!r} 的抽查 / no draw {draw_id!r}")
    result = view["result"] or {}
    teams = [(t["credit_code"], names.get(t["credit_code"], ""), ("、" if lang == "zh" else ", ").join(officers[o] for o in t["officers"])) for t in result.get("teams", [])]
    times = {k: _when(view[k]) for k in ("committed_ms", "draw_at_ms", "drawn_ms")}
    counts = {k: len(result.get(k, [])) for k in ("eligible_enterprises", "eligible_officers")}
    return _page("draw.html", lang, None, _names(state, lang), t=_jobs_text(lang), draw=view, times=times, counts=counts, teams=teams)


#: The alert kinds whose ``ref`` is an inspection, and those whose ``ref`` is a scan (which may have opened one).
_REF_INSPECTION = frozenset({"unknown_inspection", "inspection_without_scan", "unrecorded_inspection", "low_rating"})
_REF_SCAN = frozenset({
    "no_disturb_attempt", "no_disturb_exception", "repeat_inspection", "cap_refused", "cap_exception", "joint_inspection", "credential_refused",
    "exception_invalid", "exception_pending_review", "exception_rejected", "forged_code", "device_agency_mismatch", "provisional_overturned",
})  # fmt: skip


def _inspection(tx: Any, alert: dict[str, Any], lang: str) -> dict[str, Any] | None:
    """The inspection an alert concerns, as its page shows it (None when it names none, or none that exists)."""
    ref = alert["ref"]
    if not ref or alert["kind"] not in _REF_INSPECTION | _REF_SCAN:
        return None
    inspection_id = ref if alert["kind"] in _REF_INSPECTION else console.inspection_of_scan(tx, ref)
    row = console.inspection_record(tx, inspection_id) if inspection_id else None
    if row is None:
        return None
    iid, code, name, lead, field, status, opened, ended = row
    parts = [
        {"officer": officer_name, "agency": agency, "field": part_field, "result": labels.label("result", result, lang) if result else "–"}
        for _, officer_name, agency, part_field, result in console.inspection_parts(tx, iid)
    ]
    return {"id": iid, "credit_code": code, "enterprise": name or code, "lead": lead, "field": field, "state": status, "opened": _when(opened), "ended": _when(ended), "parts": parts}


@get("/alerts/{alert_id:int}", sync_to_thread=True, include_in_schema=False)
def alert_page(request: Request, state: State, alert_id: Annotated[int, PathParameter(ge=1, le=2**62)], lang: Lang = "zh") -> Template | Redirect:
    """One alert with the record it concerns (the inspection, the letter, the draw, the device), how it was handled,
    and its buttons: acknowledge, assign, open a finding."""
    from server.evidence.bundle import Selector, may_export
    from server.rules.alerts import visible_alert

    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in ("supervisor", "agency_admin"):
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    with dbmod.reading(state.settings.db) as tx:
        try:
            alert = visible_alert(tx, alert_id, p.role, p.agency_id)
        except (Forbidden, NotFound) as e:  # a page, not JSON, for a person who followed a link
            page = _page("error.html", lang, p, message=labels.localized(str(e), lang))
            page.status_code = e.status_code
            return page
        names = labels.register_names(tx, lang)
        inspection = _inspection(tx, alert, lang)
        if inspection is not None:  # the export link only where the bundle API would give the bundle (the same rule)
            inspection["exportable"] = may_export(tx, p, Selector(kind="inspection", inspection_id=inspection["id"]))
        enterprise = console.enterprise_name(tx, alert["credit_code"]) if alert["credit_code"] else None
        officer = console.officer_name(tx, alert["officer_id"]) if alert["officer_id"] else None
        device_kind = console.device_kind(tx, alert["device_id"]) if alert["device_id"] else None
    kind = alert["kind"]
    link = None
    if kind.startswith("letter_"):
        link = (f"/supervision?lang={lang}", "监督文书" if lang == "zh" else "Supervision letters")
    elif kind in ("major_without_review", "review_disagreement", "case_transfer") and alert["ref"]:  # ref: the case
        link = (f"/cases?case={quote(alert['ref'])}&lang={lang}", "所涉案件" if lang == "zh" else "The case")
    elif kind in ("case_deadline_due", "case_overdue") and alert["ref"]:  # ref: <case id>@<deadline>
        link = (f"/cases?case={quote(alert['ref'].partition('@')[0])}&lang={lang}", "所涉案件" if lang == "zh" else "The case")
    elif kind == "review_overdue":  # ref: the review; the cases page lists the reviews to do
        link = (f"/cases?lang={lang}", "案件" if lang == "zh" else "Cases")
    elif kind == "draw_announced" and alert["ref"]:
        link = (f"/public/draws/{alert['ref']}?lang={lang}", "双随机公示" if lang == "zh" else "The draw's public page")
    t = {**TEXT[lang], **DASHBOARD_TEXT[lang]}
    times = {k: _when(alert[k]) for k in ("created_ms", "acknowledged_ms", "assigned_ms")}
    return _page(
        "alert.html", lang, p, names, t=t, a=alert, times=times, inspection=inspection, enterprise=enterprise, officer=officer,
        device_kind=device_kind, link=link, message=alert["message_zh"] if lang == "zh" else alert["message_en"],
    )  # fmt: skip


ROUTES = [login_page, dashboard, alert_page, officer_page, enterprise_page, jobs_page, public_draw_page]
