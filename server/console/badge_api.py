"""The officer's door code (亮码检查): ``POST /api/v1/inspections/{id}/badge`` and the public ``/check/<code>`` (issue 16).

The rules (who gets a code, its lifetime, forged, expired and replayed codes) are in server/console/badges.py and
docs/badge.md; this module is the HTTP side: the officer's request, and the page the enterprise's phone opens."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

import msgspec
import segno
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import PathParameter, QueryParameter
from litestar.response import Response, Template

from protocol.cst import CST
from server import db as dbmod
from server.console import badges, labels
from server.console.auth import CurrentPrincipal
from server.console.guards import officers
from server.errors import Conflict, NotFound, TooManyRequests, answers
from server.storage import badges as store

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]

labels.register("credential_state", {
    "valid": ("有效", "valid"),
    "expired": ("已过期", "expired"),
    "not_yet_valid": ("未生效", "not yet valid"),
    "revoked": ("已吊销", "revoked"),
    "unknown": ("未登记", "not registered"),
})  # fmt: skip
labels.register("review_status", {
    "pending": ("待监督机构复核", "awaiting the supervisors' review"),
    "confirmed": ("监督机构已确认", "confirmed by the supervisors"),
    "rejected": ("监督机构已驳回", "rejected by the supervisors"),
})  # fmt: skip


class BadgeOut(msgspec.Struct, kw_only=True):
    """A door code for the officer's phone: the text, the address the enterprise opens, and that address as a QR code."""

    code: str
    url: str
    qr_data_uri: str
    issued_ms: int
    expires_ms: int
    lifetime_s: int
    checked_ms: int | None = None  # when an enterprise first opened it


def _out(request: Request[Any, Any, Any], code: str, issued_ms: int, expires_ms: int, checked_ms: int | None) -> BadgeOut:
    url = str(request.base_url).rstrip("/") + f"/check/{code}"
    qr = segno.make(url, error="m").svg_data_uri(scale=6, border=2)
    return BadgeOut(
        code=code, url=url, qr_data_uri=qr, issued_ms=issued_ms, expires_ms=expires_ms, lifetime_s=badges.LIFETIME_MS // 1000, checked_ms=checked_ms
    )  # fmt: skip


InspectionPath = Annotated[str, PathParameter(description="inspection id", max_length=200)]


@post("/api/v1/inspections/{inspection_id:str}/badge", sync_to_thread=True, status_code=201, guards=[officers], tags=["scan-to-inspect"],
      responses=answers(Conflict, TooManyRequests))  # fmt: skip
def issue_badge(request: Request[Any, Any, Any], state: State, inspection_id: InspectionPath, principal: CurrentPrincipal) -> BadgeOut:
    """A short-lived signed door code for an inspection under way (officers taking part in it, with a valid credential;
    a new code replaces the officer's earlier ones for the inspection; at most 5 a minute)."""
    assert principal.officer_id is not None
    key = badges.load_key(state.settings.key_base)
    with dbmod.writing(state.settings.db) as tx:
        issued = badges.issue(tx, key, inspection_id, principal.officer_id, int(time.time() * 1000))
    return _out(request, issued.code, issued.issued_ms, issued.expires_ms, None)


@get("/api/v1/inspections/{inspection_id:str}/badge", sync_to_thread=True, guards=[officers], tags=["scan-to-inspect"])
def current_badge(request: Request[Any, Any, Any], state: State, inspection_id: InspectionPath, principal: CurrentPrincipal) -> BadgeOut:
    """The officer's newest code for the inspection while it is good, and whether an enterprise opened it (404 if there
    is none good)."""
    assert principal.officer_id is not None
    key = badges.load_key(state.settings.key_base)
    now = int(time.time() * 1000)
    with dbmod.reading(state.settings.db) as tx:
        b = store.latest_of_part(tx, inspection_id, principal.officer_id)
        _, part_ended = store.part_state(tx, inspection_id, principal.officer_id)
    if b is None or b.superseded_ms is not None or now > b.expires_ms or part_ended is not None:
        raise NotFound("没有有效的亮码，请重新亮码 / no code in force: ask for a new one")
    return _out(request, badges.make_code(key, b.badge_id, b.expires_ms), b.issued_ms, b.expires_ms, b.first_checked_ms)


# --------------------------------------------------------------------------------------------- the public page

TEXT = {
    "zh": {
        "title": "执法人员亮码核验", "switch": "English", "logout": "退出", "valid": "亮码有效：执法人员身份已核验", "refused": "亮码无效",
        "refused_forged": "亮码无效（可能是伪造的）", "refused_expired": "亮码已过期", "refused_superseded": "亮码已失效", "refused_ended": "亮码已失效",
        "refused_clock": "无法核验该亮码",
        "enterprise": "检查对象", "check_yours": "请核对：检查对象应为贵单位。", "officers": "执法人员", "credential": "执法证号", "validity": "有效期",
        "agency": "执法机关", "shown_by": "出示人", "partners": "联合检查", "none_joint": "无（单一机关检查）", "field": "检查领域", "basis": "检查依据",
        "routine": "常规检查（未说明例外依据）", "reason": "检查事由", "no_disturb": "无事不扰名单", "listed": "贵单位在无事不扰名单上", "not_listed": "贵单位不在无事不扰名单上",
        "listed_needs_basis": "名单内企业只能依据登记在案的例外依据接受检查。", "since": "检查开始", "expires": "本亮码有效至", "checked_at": "核验时间",
        "complain": "如对本次检查有异议，可拨打 12345 或向执法监督机构反映。", "part_ended": "已离开", "status": "状态",
    },
    "en": {
        "title": "Check the officer's code", "switch": "中文", "logout": "Sign out", "valid": "Code valid: the officers are who they say", "refused": "Code not valid",
        "refused_forged": "Invalid code (possibly forged)", "refused_expired": "Code expired", "refused_superseded": "Code no longer valid",
        "refused_ended": "Code no longer valid", "refused_clock": "This code cannot be checked",
        "enterprise": "Inspected enterprise", "check_yours": "Check that this is your enterprise.", "officers": "Officers", "credential": "Credential no.",
        "validity": "Valid", "agency": "Agency", "shown_by": "showed this code", "partners": "Joint inspection", "none_joint": "none (one agency)", "field": "Field",
        "basis": "Basis", "routine": "routine inspection (no exception stated)", "reason": "Reason", "no_disturb": "No-disturb list",
        "listed": "Your enterprise is on the no-disturb list", "not_listed": "Your enterprise is not on the no-disturb list",
        "listed_needs_basis": "A listed enterprise is inspected only on a registered exception.", "since": "Inspection began", "expires": "This code is good until",
        "checked_at": "Checked at", "complain": "If you object to this inspection, call 12345 or tell the supervision office.", "part_ended": "left", "status": "Status",
    },
}  # fmt: skip


def _when(ms: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "–" if ms is None else dt.datetime.fromtimestamp(ms / 1000, CST).strftime(fmt)


def _credential_state(o: store.PartOfficer, now_ms: int) -> str:
    if not o.credential_no:
        return "unknown"
    if o.revoked_ms is not None and o.revoked_ms <= now_ms:
        return "revoked"
    if now_ms < o.valid_from_ms:
        return "not_yet_valid"
    return "expired" if now_ms > o.valid_to_ms else "valid"


def check_view(tx: Any, badge: store.Badge, lang: Literal["zh", "en"], now_ms: int) -> dict[str, Any]:
    """What the check page shows for a code that passed."""
    facts = store.facts(tx, badge.inspection_id)
    assert facts is not None
    parts = store.officers(tx, badge.inspection_id)
    fields = store.field_names(tx, sorted({p.field for p in parts} | {facts.field}))
    pick = 0 if lang == "zh" else 1
    officers_ = []
    for o in parts:
        state_ = _credential_state(o, now_ms)
        officers_.append({
            "name": o.name or ("（未登记）" if lang == "zh" else "(not registered)"), "credential_no": o.credential_no or "–",
            "validity": f"{_when(o.valid_from_ms, '%Y-%m-%d')} – {_when(o.valid_to_ms, '%Y-%m-%d')}", "state": state_,
            "state_label": labels.label("credential_state", state_, lang), "agency": (o.agency_name_en or o.agency_name) if lang == "en" else o.agency_name,
            "field": fields.get(o.field, ("", ""))[pick] or labels.label("field", o.field, lang), "shown_by": o.officer_id == badge.officer_id,
            "left": o.ended_ms is not None,
        })  # fmt: skip
    agencies = []
    for o in parts:
        name = (o.agency_name_en or o.agency_name) if lang == "en" else o.agency_name
        if name not in agencies:
            agencies.append(name)
    shower = next((o for o in parts if o.officer_id == badge.officer_id), None)
    matter, reason = store.scan_reason(tx, shower.scan_id if shower else None)
    basis = None
    if facts.exception_kind:
        basis = {
            "kind": labels.label("exception_kind", facts.exception_kind, lang), "reference": facts.exception_ref or "",
            "review": labels.label("review_status", review, lang) if (review := store.review_status(tx, badge.inspection_id)) else "",
        }  # fmt: skip
    listed = store.no_disturb_basis(tx, facts.credit_code, now_ms)
    shower_ok = any(o["shown_by"] and o["state"] == "valid" for o in officers_)
    return {
        "ok": shower_ok, "enterprise": facts.enterprise_name or facts.credit_code, "credit_code": facts.credit_code,
        "field": fields.get(facts.field, ("", ""))[pick] or labels.label("field", facts.field, lang), "officers": officers_, "agencies": agencies,
        "joint": len(agencies) > 1, "basis": basis, "reason": " · ".join(x for x in (matter, reason) if x), "listed": listed is not None,
        "since": _when(facts.opened_ms), "expires": _when(badge.expires_ms, "%H:%M:%S"), "checked_at": _when(now_ms, "%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip


CodePath = Annotated[str, PathParameter(description="the door code", max_length=200)]


@get("/check/{code:str}", sync_to_thread=True, include_in_schema=False)
def check_page(state: State, code: CodePath, lang: Lang = "zh") -> Template:
    """The enterprise's check of an officer's door code (public, no sign-in): who the officers are, their credentials,
    agencies and partners, the field and basis, the no-disturb list; a forged, expired or replayed code gets a 4xx
    page saying why. Opening the page does not mark the code checked: a messaging app's link preview opens it too.
    The page's own script (static/check.js) posts to ``/check/<code>/seen`` once a person's browser shows it."""
    t = TEXT[lang]
    ctx: dict[str, Any] = {"t": t, "lang": lang, "other": "en" if lang == "zh" else "zh", "me": None, "L": {}}
    key = badges.load_key(state.settings.key_base)
    now = int(time.time() * 1000)
    try:
        badges.parse_code(key, code)  # a forged code never reaches the database
        with dbmod.writing(state.settings.db) as tx:
            badge = badges.check(tx, key, code, now)
            view = check_view(tx, badge, lang, now)
    except badges.BadgeRefused as e:
        refusal = {"kind": e.kind, "text": e.zh if lang == "zh" else e.en}
        return Template(template_name="check.html", context={**ctx, "refusal": refusal}, status_code=e.status_code, headers=NO_STORE)
    return Template(template_name="check.html", context={**ctx, "refusal": None, "v": view, "seen": f"/check/{code}/seen"}, headers=NO_STORE)


#: The header check.js sends with its POST: a cross-site form cannot send it, and a cross-site fetch that does is
#: stopped by the browser's preflight (no CORS here), so only the page itself marks a code checked.
SEEN_HEADER = "X-Check-Seen"


@post("/check/{code:str}/seen", sync_to_thread=True, status_code=204, include_in_schema=False)
def check_seen(state: State, request: Request[Any, Any, Any], code: CodePath) -> Response[None]:
    """The check page, shown in a person's browser, says the code was seen (企业已扫码核验 on the officer's page): the
    first time only. A code the page would refuse is refused here the same (400, 409, 410), and a POST without the
    page's header is 400."""
    if request.headers.get(SEEN_HEADER) != "1":
        return Response(None, status_code=400, headers=NO_STORE)
    key = badges.load_key(state.settings.key_base)
    now = int(time.time() * 1000)
    try:
        badges.parse_code(key, code)
        with dbmod.writing(state.settings.db) as tx:
            badge = badges.check(tx, key, code, now)
            store.mark_checked(tx, badge.badge_id, now)
    except badges.BadgeRefused as e:
        return Response(None, status_code=e.status_code, headers=NO_STORE)
    return Response(None, status_code=204, headers=NO_STORE)


#: A check is true when it is made: no browser or proxy keeps the page of a code that may expire or be replaced.
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


#: This module's routes (server/app.py).
ROUTES: list[object] = [issue_badge, current_badge, check_page, check_seen]
