"""The supervision page (``/supervision``): findings and letters in words, for supervisors (open a finding, issue a
letter, accept or send back a report, close) and agency administrators (their agency's letters, and the report on
each). The actions go through the API (server/console/supervision_api.py); the page only shows and asks."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from server import db as dbmod
from server.console import labels
from server.console.auth import principal_of
from server.console.guards import MANAGERS
from server.storage import supervision as names
from server.supervision import hotline, workflow

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]

PAGE_TEXT = {
    "zh": {
        "heading": "执法监督", "letters": "监督文书", "findings": "监督事项", "letter": "文书", "agency": "被监督机关", "finding": "事项",
        "deadline": "整改期限", "state": "状态", "actions": "操作", "enterprise": "企业", "reason": "事由", "source": "来源", "opened": "立项",
        "none": "暂无", "new_finding": "新建监督事项", "credit_code": "统一社会信用代码（可不填）", "open": "立项", "issue_opinion": "发出监督意见书",
        "issue_decision": "作出监督决定书", "issuer": "发文机关", "facts": "发现的问题", "basis": "依据", "requirements": "整改要求",
        "deadline_days": "整改期限（工作日）", "send": "发出", "reply": "报送整改情况", "report": "整改情况", "submit": "报送", "accept": "认可",
        "return": "退回", "return_note": "退回理由", "close": "办结", "close_note": "办结意见", "cancel": "取消", "pdf": "PDF", "report_late": "（逾期报送）",
        "finding_open": "办理中", "finding_closed": "已办结", "scope_all": "全部机关", "scope_agency": "本机关收到的监督文书与事项", "done": "已完成：",
        "source_alert": "告警", "source_case_review": "案卷评查", "source_hotline": "12345 热线", "source_complaint": "投诉举报", "source_rating": "企业评价",
        "source_manual": "监督人员发现", "by": "经办", "from_alert": "由告警立项", "remark": "提出意见", "scope_monitor": "指派给您的监督事项", "hotline": "12345 热线与检查比对", "ticket": "工单", "received": "受理时间", "due": "应检查期限", "open_from_flag": "立为监督事项", "files": "附件（PDF、JPEG、PNG，最多 5 个）", "reviews": "案卷评查未通过", "review_failed": "案卷评查未通过", "case": "案卷", "notes": "评查意见",
    },
    "en": {
        "heading": "Supervision", "letters": "Supervision letters", "findings": "Findings", "letter": "Letter", "agency": "Supervised agency",
        "finding": "Finding", "deadline": "Deadline", "state": "State", "actions": "Actions", "enterprise": "Enterprise", "reason": "Reason",
        "source": "Source", "opened": "Opened", "none": "none", "new_finding": "New finding", "credit_code": "Credit code (optional)", "open": "Open",
        "issue_opinion": "Issue an opinion letter", "issue_decision": "Issue a decision letter", "issuer": "Issuing body", "facts": "Facts found",
        "basis": "Basis", "requirements": "What must be rectified", "deadline_days": "Deadline (working days)", "send": "Issue", "reply": "Report on rectification",
        "report": "Rectification report", "submit": "Submit", "accept": "Accept", "return": "Send back", "return_note": "Why it is sent back",
        "close": "Close", "close_note": "Closing note", "cancel": "Cancel", "pdf": "PDF", "report_late": " (late)", "finding_open": "in progress",
        "finding_closed": "closed", "scope_all": "every agency", "scope_agency": "letters and findings addressed to your agency", "done": "Done:",
        "source_alert": "alert", "source_case_review": "case-file review", "source_hotline": "12345 hotline", "source_complaint": "complaint",
        "source_rating": "enterprise rating", "source_manual": "found by a supervisor", "by": "by", "from_alert": "from an alert", "remark": "Add a remark", "scope_monitor": "findings assigned to you", "hotline": "12345 hotline against inspections", "ticket": "Ticket", "received": "Received", "due": "Inspection due by", "open_from_flag": "Open a finding", "files": "Files (PDF, JPEG, PNG; at most 5)", "reviews": "Case-file reviews failed", "review_failed": "Case-file review failed", "case": "Case file", "notes": "Review notes",
    },
}
LETTER_TITLE = {"zh": workflow.KIND_ZH, "en": {"opinion": "Supervision opinion letter", "decision": "Supervision decision letter"}}
STATUS = {
    "zh": workflow.STATUS_ZH,
    "en": {"issued": "issued, awaiting the report", "replied": "report awaiting a verdict", "returned": "sent back, to rectify again", "accepted": "rectification accepted", "overdue": "overdue: no report by the deadline"},
}
# The ids this page shows, as words (server/console/labels.py: the one place; tests check no raw id reaches a page).
labels.register("finding_status", {"open": ("办理中", "in progress"), "closed": ("已办结", "closed")})
labels.register("finding_source", {
    k: (PAGE_TEXT["zh"][f"source_{k}"], PAGE_TEXT["en"][f"source_{k}"]) for k in ("alert", "case_review", "hotline", "complaint", "rating", "manual")
})  # fmt: skip
labels.register("letter_status", {k: (STATUS["zh"][k], STATUS["en"][k]) for k in STATUS["en"]})
labels.register("letter_kind", {k: (LETTER_TITLE["zh"][k], LETTER_TITLE["en"][k]) for k in LETTER_TITLE["en"]})
#: The colour of a state: what still needs someone (warn), what went wrong (bad), what is done (ok).
TONE = {"issued": "warn", "replied": "warn", "returned": "bad", "overdue": "bad", "accepted": "ok", "open": "warn", "closed": "ok"}


@get("/supervision", sync_to_thread=True, include_in_schema=False)
def supervision_page(
    request: Request, state: State, lang: Lang = "zh", alert: Annotated[int | None, QueryParameter(ge=1, le=2**62, description="an alert to open a finding from")] = None
) -> Template | Redirect:
    """The supervision page of supervisors and agency administrators (``?alert=N``: the new-finding form filled in
    from that alert, for a supervisor)."""
    from server.console.pages import HOME, TEXT, _page, _when

    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in (*MANAGERS, "monitor"):
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    with dbmod.reading(state.settings.db) as tx:
        findings = workflow.list_findings(tx, p, status=None, limit=200)
        letters = workflow.list_letters(tx, p, finding_id=None, status=None, limit=200)
        agencies = names.agency_names(tx)
        enterprises = names.enterprise_names(tx, [f.credit_code for f in findings if f.credit_code])
        from_alert = names.alert_text(tx, alert) if alert is not None and p.role == "supervisor" else None
        reviews = [] if p.role == "monitor" else names.failed_reviews(tx, None if p.role == "supervisor" else p.agency_id, 100)
        policy = state.policy.hotline
        flags = [] if p.role == "monitor" else hotline.visible_flags(
            tx, p, int(time.time() * 1000), within_days=policy.within_days, window_days=policy.window_days, kind=None, limit=100,
        )  # fmt: skip
    t = {**TEXT[lang], **PAGE_TEXT[lang]}
    agency = {a: (zh if lang == "zh" else en or zh) for a, (zh, en) in agencies.items()}
    unknown = labels.UNKNOWN[0 if lang == "zh" else 1]
    reasons = {f.finding_id: f.reason for f in findings}
    open_letter = {x.finding_id for x in letters if x.kind == "opinion" and x.status in ("issued", "replied", "returned")}
    may_decide = {x.finding_id for x in letters if x.kind == "opinion" and x.status in ("overdue", "returned")}
    letter_rows: list[dict[str, Any]] = [
        {
            "id": x.letter_id, "title": labels.label("letter_kind", x.kind, lang), "number": x.number, "agency": agency.get(x.agency_id, unknown),
            "finding": reasons.get(x.finding_id, ""), "deadline": x.deadline, "status": labels.label("letter_status", x.status, lang), "tone": TONE[x.status],
            "issued": f"{x.issuer} · {x.issued_on}", "reply": x.reply, "can_reply": p.role == "agency_admin" and x.status in ("issued", "returned", "overdue"),
            "can_decide": p.role == "supervisor" and x.status == "replied",
        }
        for x in letters
    ]  # fmt: skip
    finding_rows: list[dict[str, Any]] = [
        {
            "id": f.finding_id, "agency": agency.get(f.agency_id, unknown), "enterprise": enterprises.get(f.credit_code or "", f.credit_code or "–"),
            "reason": f.reason, "source": labels.label("finding_source", f.source, lang), "opened": f"{_when(f.opened_ms)} · {f.opened_by}",
            "status": labels.label("finding_status", f.status, lang), "tone": TONE.get(f.status, "muted"), "supervisor": p.role == "supervisor" and f.status == "open",
            "can_issue": f.finding_id not in open_letter, "can_decide": f.finding_id in may_decide, "can_remark": p.role == "monitor",
        }
        for f in findings
    ]  # fmt: skip
    scope = {"supervisor": t["scope_all"], "monitor": t["scope_monitor"]}.get(p.role, t["scope_agency"])
    flag_rows: list[dict[str, Any]] = [
        {
            "ticket": x.ticket_id, "kind": x.kind_zh if lang == "zh" else x.kind_en, "received": _when(x.received_ms),
            "enterprise": x.enterprise_name, "agency": (x.agency_name if lang == "zh" else x.agency_name_en or x.agency_name) or "–",
            "text": x.text, "deadline": x.deadline or "–", "finding": x.finding_id, "can_open": p.role == "supervisor" and x.finding_id is None,
        }
        for x in flags
    ]  # fmt: skip
    review_rows: list[dict[str, Any]] = [
        {
            "ref": f"{sample}/{decision}", "agency_id": agency_id, "agency": agency.get(agency_id, unknown), "case": _case_number(case_no or decision, lang),
            "notes": notes, "reviewed": f"{_when(reviewed_ms)} · {reviewer or '–'}", "finding": finding_id,
            "can_open": p.role == "supervisor" and finding_id is None,
            "reason": f"{t['review_failed']}：{_case_number(case_no or decision, lang)}" + (f"（{notes}）" if notes else ""),
        }
        for sample, decision, agency_id, case_no, _, notes, reviewer, reviewed_ms, finding_id in reviews
    ]  # fmt: skip
    prefill = None
    if from_alert is not None and from_alert[0] is not None:
        prefill = {"alert": str(alert), "agency": from_alert[0], "code": from_alert[1] or "", "reason": from_alert[2] if lang == "zh" else from_alert[3]}
    return _page(
        "supervision.html", lang, p, t=t, letters=letter_rows, findings=finding_rows, agencies=sorted(agency.items(), key=lambda kv: kv[1]), scope=scope,
        prefill=prefill, flags=flag_rows, reviews=review_rows,
    )


def _case_number(case_no: str, lang: str) -> str:
    """A case's number as people write it (〔2026〕第 1 号) when the decision came from a case, else as recorded."""
    from server.cases.pages import number

    return number(case_no, lang) if case_no.startswith("CASE-") else case_no
