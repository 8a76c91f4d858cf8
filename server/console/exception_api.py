"""HTTP API of the exception registers (superior assignments, major-risk notices) and of the review queue
of inspections that went ahead on an unregistered urgent exception."""

from __future__ import annotations

import json
import time
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from protocol.decision import DAY_MS
from server import db as dbmod
from server.rules.alerts import raise_alert
from server.console.auth import CurrentPrincipal
from server.storage.engine import Tx
from server.errors import Conflict, Forbidden, Invalid, NotFound, answers
from server.console import labels
from server.console.guards import managers, officers, staff, supervisors
from server.storage import inspections as inspection_rows
from server.storage import officer_page
from server.rules.exception_bases import (
    KIND_ZH,
    BasisIn,
    BasisView,
    RegisteredKind,
    ReviewView,
    add_basis,
    decide_review,
    get_basis,
    list_bases,
    list_reviews,
    review_counts,
    withdraw_basis,
)

#: Every exception kind, in the order the officer's page offers them (protocol/README.md §13.1).
EXCEPTION_KINDS = ("complaint", "random_draw", "rectification_follow_up", "superior_assignment", "major_risk")
labels.register("exception_kind", {
    "complaint": ("投诉举报", "complaint or report"),
    "random_draw": ("双随机抽查", "random draw"),
    "rectification_follow_up": ("整改复查", "rectification follow-up"),
    "superior_assignment": ("上级交办", "superior assignment"),
    "major_risk": ("重大风险", "major risk"),
})  # fmt: skip
_DAY_MS = 86_400_000
#: How long after a scan of an enterprise its exception choices are offered to the officer who scanned it.
CHOICES_AFTER_SCAN_MS = 30 * 60_000


class WithdrawIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which register entry to withdraw."""

    kind: RegisteredKind
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    credit_code: Annotated[str, msgspec.Meta(min_length=1, max_length=18)]


class VerdictIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A supervisor's verdict on a pending review; a rejection says why."""

    note: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class ReviewSummary(msgspec.Struct, kw_only=True):
    """Reviews opened in the last N days, by outcome."""

    days: int
    pending: int
    confirmed: int
    rejected: int


class ChoiceItem(msgspec.Struct, kw_only=True):
    """A registered item the officer may cite: its reference and a line saying what it is."""

    reference: str
    text: str
    valid_to_ms: int | None = None


class ExceptionChoice(msgspec.Struct, kw_only=True):
    """One exception kind with the officer's matching registered items; ``urgent``: an unregistered reference of this
    kind goes ahead pending a supervisor's review (the policy's pending_review_kinds)."""

    kind: str
    label: str
    urgent: bool
    items: list[ChoiceItem]


def exception_choices(tx: Tx, credit_code: str, field: str, officer_id: str, urgent_kinds: tuple[str, ...], follow_up_days: int, lang: str, now_ms: int) -> list[ExceptionChoice]:
    """Per exception kind, the registered items that would check out for this officer, enterprise and field (the
    officer's agency's; those the agency already used for an inspection of the enterprise left out). Only for an
    enterprise the officer scanned in the last ``CHOICES_AFTER_SCAN_MS`` and a field their credential covers: the
    registers (complaint tickets among them) are not there to be browsed."""
    cred = inspection_rows.credential_row(tx, officer_id)
    if cred is None or field not in json.loads(cred[3] or "[]"):
        raise Forbidden("您的执法证不涵盖该执法领域 / your credential does not cover this field")
    if cred[6] is not None or not cred[4] <= now_ms <= cred[5]:  # the registers (hotline tickets among them) are for an officer who may inspect now
        raise Forbidden("您的执法证已吊销或不在有效期内 / your enforcement credential is revoked or not valid now")
    if not officer_page.scanned_since(tx, officer_id, credit_code, now_ms - CHOICES_AFTER_SCAN_MS):
        raise Forbidden("请先扫描该企业的企业码 / scan the enterprise's code first: exceptions are offered after a scan")
    agency = cred[1]
    used = officer_page.used(tx, credit_code, agency)
    items: dict[str, list[ChoiceItem]] = {k: [] for k in EXCEPTION_KINDS}
    for ticket, summary, _ in officer_page.complaints(tx, credit_code, field):
        items["complaint"].append(ChoiceItem(reference=ticket, text=summary or ticket))
    for plan, title, until in officer_page.draw_plans(tx, credit_code, agency, field, now_ms):
        items["random_draw"].append(ChoiceItem(reference=plan, text=title or plan, valid_to_ms=until))
    for inspection_id, ordered_ms in officer_page.rectifications(tx, credit_code, agency, field, now_ms - follow_up_days * _DAY_MS):
        when = _day(int(ordered_ms))
        items["rectification_follow_up"].append(ChoiceItem(reference=inspection_id, text=f"{when} 责令整改" if lang == "zh" else f"rectification ordered {when}"))
    for kind, ref, summary, issued_by, until in officer_page.registered(tx, credit_code, agency, field, now_ms):
        items[kind].append(ChoiceItem(reference=ref, text=" · ".join(x for x in (issued_by, summary) if x), valid_to_ms=until))
    lang_ = "zh" if lang == "zh" else "en"
    return [
        ExceptionChoice(kind=k, label=labels.label("exception_kind", k, lang_), urgent=k in urgent_kinds, items=[i for i in items[k] if (k, i.reference) not in used])
        for k in EXCEPTION_KINDS
    ]


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000 + 8 * 3600))


class ExceptionBasisController(Controller):
    """Superior assignments (上级交办) and major-risk notices (重大风险) that officers may cite as exceptions."""

    path = "/api/v1/exception-bases"
    tags = ["exceptions"]

    @get("/", sync_to_thread=True, guards=[staff])
    def list_entries(
        self,
        state: State,
        principal: CurrentPrincipal,
        kind: Annotated[RegisteredKind | None, QueryParameter(description="superior_assignment or major_risk")] = None,
        credit_code: Annotated[str | None, QueryParameter(max_length=18)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[BasisView]:
        """Register entries, newest first: a supervisor sees all; an agency's staff those given to their agency or to any."""
        agency = None if principal.role == "supervisor" else principal.agency_id
        with dbmod.reading(state.settings.db) as con:
            return list_bases(con, agency_id=agency, credit_code=credit_code, kind=kind, limit=limit)

    @get("/choices", sync_to_thread=True, guards=[officers], responses=answers(Forbidden))
    def choices(
        self,
        state: State,
        principal: CurrentPrincipal,
        credit_code: Annotated[str, QueryParameter(min_length=1, max_length=18, description="the enterprise scanned")],
        field: Annotated[str, QueryParameter(min_length=1, max_length=200, description="the scan's field")],
        lang: Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")] = "zh",
    ) -> list[ExceptionChoice]:
        """The exception kinds and, for each, the signed-in officer's registered items that fit this enterprise and field
        (officers: after a no-disturb, repeat or cap refusal, to scan again with a basis)."""
        assert principal.officer_id is not None
        rules = state.policy.exceptions
        with dbmod.reading(state.settings.db) as con:
            return exception_choices(
                con, credit_code, field, principal.officer_id, tuple(rules.pending_review_kinds), rules.rectification_follow_up_days, lang, int(time.time() * 1000)
            )

    @post("/", sync_to_thread=True, status_code=201, guards=[managers], responses=answers(NotFound, Conflict))
    def register(self, state: State, data: JSONBody[BasisIn], principal: CurrentPrincipal) -> BasisView:
        """Register an assignment or notice (agency admins: for their own agency only; supervisors: any, or every agency)."""
        if principal.role == "agency_admin":
            if data.agency_id not in (None, principal.agency_id):
                raise Forbidden("只能为本机关登记 / an agency admin registers for their own agency only")
            data = msgspec.structs.replace(data, agency_id=principal.agency_id)
        now = int(time.time() * 1000)
        with dbmod.writing(state.settings.db) as con:
            entry = add_basis(con, data, principal.username, now)
            # Supervisors see every entry made: an agency administrator may register the basis their own officers cite.
            ent = entry.enterprise_name or entry.credit_code
            raise_alert(
                con, "exception_registered", now,
                f"{principal.username} 登记了{KIND_ZH[entry.kind]} {entry.reference}（{entry.issued_by}），涉及“{ent}”。",
                f"{principal.username} registered {entry.kind} {entry.reference} ({entry.issued_by}) for {ent}.",
                credit_code=entry.credit_code, agency_id=entry.agency_id or principal.agency_id, ref=entry.reference,
            )  # fmt: skip
            return entry

    @post("/withdraw", sync_to_thread=True, status_code=200, guards=[managers], responses=answers(NotFound, Conflict))
    def withdraw(self, state: State, data: JSONBody[WithdrawIn], principal: CurrentPrincipal) -> BasisView:
        """Withdraw an entry: it justifies no new inspection (agency admins: their agency's entries only)."""
        with dbmod.writing(state.settings.db) as con:
            entry = get_basis(con, data.kind, data.reference, data.credit_code)
            if entry is not None and principal.role == "agency_admin" and entry.agency_id != principal.agency_id:
                raise Forbidden("这是其他机关的登记 / this entry belongs to another agency")
            return withdraw_basis(con, data.kind, data.reference, data.credit_code, principal.username, int(time.time() * 1000))


ScanPath = Annotated[str, PathParameter(description="the scan that used the exception", max_length=64)]


class ExceptionReviewController(Controller):
    """Inspections allowed on an unregistered urgent exception: a supervisor confirms or rejects each after the fact."""

    path = "/api/v1/exception-reviews"
    tags = ["exceptions"]

    @get("/", sync_to_thread=True, guards=[managers])
    def list_queue(
        self,
        state: State,
        principal: CurrentPrincipal,
        status: Annotated[Literal["pending", "confirmed", "rejected"] | None, QueryParameter()] = "pending",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[ReviewView]:
        """The queue (pending, oldest first) or past verdicts; an agency admin sees their agency's."""
        agency = None if principal.role == "supervisor" else principal.agency_id
        with dbmod.reading(state.settings.db) as con:
            return list_reviews(con, agency_id=agency, status=status, limit=limit)

    @get("/summary", sync_to_thread=True, guards=[managers])
    def summary(self, state: State, principal: CurrentPrincipal, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30) -> ReviewSummary:
        """How many were opened in the last N days, and how they were decided."""
        agency = None if principal.role == "supervisor" else principal.agency_id
        now = int(time.time() * 1000)
        with dbmod.reading(state.settings.db) as con:
            counts = review_counts(con, agency_id=agency, since_ms=now - days * DAY_MS, until_ms=now + 1)
        return ReviewSummary(days=days, **counts)

    @post("/{scan_id:str}/confirm", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(Conflict))
    def confirm(self, state: State, scan_id: ScanPath, data: JSONBody[VerdictIn], principal: CurrentPrincipal) -> ReviewView:
        """Confirm that the stated basis was lawful (supervisors)."""
        return self._decide(state, scan_id, "confirmed", data.note, principal)

    @post("/{scan_id:str}/reject", sync_to_thread=True, status_code=200, guards=[supervisors], responses=answers(Conflict))
    def reject(self, state: State, scan_id: ScanPath, data: JSONBody[VerdictIn], principal: CurrentPrincipal) -> ReviewView:
        """Reject the stated basis (supervisors; say why): the agency is alerted and the rejection counted."""
        if not data.note.strip():
            raise Invalid("驳回须说明理由 / a rejection needs a note saying why")
        return self._decide(state, scan_id, "rejected", data.note, principal)

    def _decide(self, state: State, scan_id: str, verdict: Literal["confirmed", "rejected"], note: str, principal: CurrentPrincipal) -> ReviewView:
        now = int(time.time() * 1000)
        with dbmod.writing(state.settings.db) as con:
            view = decide_review(con, scan_id, verdict, principal.username, note, now)
            if verdict == "rejected":
                ent = view.enterprise_name or view.credit_code
                raise_alert(
                    con, "exception_rejected", now,
                    f"监督人员驳回了对“{ent}”检查所依据的{KIND_ZH.get(view.kind, view.kind)} {view.reference}：{note}",
                    f"A supervisor rejected the {view.kind} {view.reference} stated for the inspection of {ent}: {note}",
                    credit_code=view.credit_code, agency_id=view.agency_id, officer_id=view.officer_id, ref=scan_id,
                )  # fmt: skip
            return view
