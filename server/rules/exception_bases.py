"""Exceptions to the no-disturb list, the repeat window and the yearly cap: every one is checkable.

An officer who inspects a no-disturb enterprise (无事不扰), repeats a recent inspection or passes the
yearly cap states a basis: a complaint ticket (投诉举报), a random-draw plan (双随机), a rectification
follow-up (整改复查), a superior authority's assignment (上级交办) or a major-risk notice (重大风险).
Each kind is checked against its register here:

- complaint: ``complaints`` (the ticket exists, concerns this enterprise and field, is still open);
- random_draw: ``plans`` / ``plan_targets`` (drew this enterprise, the officer's agency's, in force);
- rectification_follow_up: ``inspection_parts`` (the inspection named ordered rectification here);
- superior_assignment, major_risk: ``exception_bases``, filled by import and by agency admins and
  supervisors through the API (for this enterprise, this agency or any, this field or any, in force,
  not withdrawn).

A reference that matches nothing is *unregistered*: refused, unless the policy names its kind as one that
may go ahead urgently, and then only "pending review": the scan is allowed, an alert is raised, and the
basis waits in ``exception_reviews`` until a supervisor confirms or rejects it. A reference that exists
but does not fit (another enterprise, a closed ticket, a plan out of force) is *invalid*: always refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from protocol.creditcode import CreditCodeError, validate
from protocol.messages import ExceptionBasis
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.storage import exceptions as store
from server.storage.engine import Tx
from server.storage.exceptions import BasisView as BasisView  # re-exported: the API names the views from here
from server.storage.exceptions import ReviewStatus as ReviewStatus
from server.storage.exceptions import ReviewView as ReviewView

#: Kinds kept in the ``exception_bases`` register (the others have registers of their own).
REGISTERED_KINDS = ("superior_assignment", "major_risk")
RegisteredKind = Literal["superior_assignment", "major_risk"]
KIND_ZH = {
    "complaint": "投诉举报",
    "random_draw": "双随机抽查",
    "major_risk": "重大风险",
    "rectification_follow_up": "整改复查",
    "superior_assignment": "上级交办",
}
Verdict = Literal["ok", "invalid", "unregistered"]
#: Longest validity of a registered assignment or notice: each must end, and be renewed if it goes on.
MAX_VALIDITY_MS = 366 * 86_400_000
#: How far back an entry registered through the API may start (registering after the fact is an import's job).
MAX_BACKDATE_MS = 86_400_000

Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Authority = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Note = Annotated[str, msgspec.Meta(max_length=4000)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)]  # up to 9999-12-31


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of checking a stated exception against the registers."""

    verdict: Verdict
    problem: str = ""


class BasisIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A superior assignment or major-risk notice to register."""

    kind: RegisteredKind
    reference: Reference
    credit_code: Annotated[str, msgspec.Meta(min_length=18, max_length=18)]
    issued_by: Authority  # the authority that assigned it or issued the notice
    valid_from_ms: Millis
    valid_to_ms: Millis
    agency_id: Ident | None = None  # None: any agency may cite it (supervisors only); agency admins: their own
    field: Ident | None = None  # None: any field
    summary: Note = ""


# ------------------------------------------------------------------------------------------ checking


def check_exception(tx: Tx, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int, *, follow_up_days: int) -> Check:
    """Check a stated exception against its register. Each basis opens at most one inspection per agency
    (others join it): one ticket, plan target or rectification order is not a pass for repeated visits."""
    ref = exc.reference
    if not ref.strip():
        return Check("invalid", "未填写例外依据的文号或编号 / the exception names no reference")
    if exc.kind == "complaint":
        ticket = store.complaint(tx, ref)
        if ticket is None:
            return Check("unregistered", f"投诉举报工单 {ref} 未登记 / complaint ticket {ref} is not registered")
        if ticket.credit_code != credit_code:
            return Check("invalid", f"工单 {ref} 针对的是其他企业 / ticket {ref} concerns another enterprise")
        if ticket.closed_ms is not None:
            return Check("invalid", f"工单 {ref} 已办结 / ticket {ref} is closed")
        if ticket.field and field and ticket.field != field:
            return Check("invalid", f"工单 {ref} 涉及其他执法领域 / ticket {ref} concerns another field ({ticket.field})")
        return _unused(tx, exc, credit_code, agency_id)
    if exc.kind == "random_draw":
        plan = store.plan(tx, ref)
        if plan is None:
            return Check("unregistered", f"抽查计划 {ref} 未登记 / draw plan {ref} is not registered")
        if plan.kind != "random_draw":
            return Check("invalid", f"计划 {ref} 不是双随机抽查计划 / plan {ref} is not a random draw")
        if not store.plan_names(tx, ref, credit_code):
            return Check("invalid", f"抽查计划 {ref} 未抽中该企业 / draw plan {ref} did not draw this enterprise")
        if plan.agency_id != agency_id:
            return Check("invalid", f"抽查计划 {ref} 属于其他执法机关 / draw plan {ref} belongs to another agency")
        if field and plan.field != field:
            return Check("invalid", f"抽查计划 {ref} 涉及其他执法领域 / draw plan {ref} concerns another field")
        if not plan.valid_from_ms <= now_ms <= plan.valid_to_ms:
            return Check("invalid", f"抽查计划 {ref} 不在有效期内 / draw plan {ref} is not in force")
        return _unused(tx, exc, credit_code, agency_id)
    if exc.kind == "rectification_follow_up":
        return _check_follow_up(tx, exc, credit_code, agency_id, field, now_ms, follow_up_days)
    return _check_registered(tx, exc, credit_code, agency_id, field, now_ms)


def _unused(tx: Tx, exc: ExceptionBasis, credit_code: str, agency_id: str) -> Check:
    """ok, unless the agency already opened an inspection of the enterprise on this very basis. The check holds
    until the scan's transaction ends, so two scans citing one basis at once cannot both open one."""
    store.lock_basis_use(tx, credit_code, agency_id, exc.kind, exc.reference)
    if store.basis_used(tx, credit_code, agency_id, exc.kind, exc.reference):
        what = KIND_ZH[exc.kind]
        return Check("invalid", f"{what} {exc.reference} 已用于本机关对该企业的一次检查 / {exc.kind} {exc.reference} was already used for an inspection of this enterprise by your agency")
    return Check("ok")


def _check_follow_up(tx: Tx, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int, days: int) -> Check:
    """A follow-up cites an inspection of this enterprise in which this agency ordered rectification, in this
    field, within the follow-up period, and whose own basis was not rejected."""
    ref = exc.reference
    inspected = store.inspected_enterprise(tx, ref)
    if inspected is None:
        return Check("unregistered", f"检查记录 {ref} 不存在 / inspection {ref} does not exist")
    ordered = store.rectification_ordered_ms(tx, ref, agency_id, field)
    if inspected != credit_code or ordered is None:
        return Check("invalid", f"检查 {ref} 未由本机关在该领域对该企业责令整改 / in inspection {ref} your agency ordered no rectification of this enterprise in this field")
    if ordered < now_ms - days * 86_400_000:
        return Check("invalid", f"检查 {ref} 责令整改已超过 {days} 天复查期限 / the rectification ordered in {ref} is older than the {days}-day follow-up period")
    if store.review_rejected(tx, ref):
        return Check("invalid", f"检查 {ref} 的例外依据已被驳回，不能作为复查依据 / the basis of inspection {ref} was rejected")
    return _unused(tx, exc, credit_code, agency_id)


#: Dash-like characters a look-alike reference may use instead of "-".
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def reference_key(reference: str) -> str:
    """A reference as compared for look-alikes: NFKC, dashes unified, invisible characters dropped, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", reference).translate(_DASHES).translate(_INVISIBLE).strip().casefold()


def _entry_for(tx: Tx, kind: str, ref: str, credit_code: str) -> store.BasisFit | None:
    """The register entry a reference names, the enterprise's own first. A look-alike of a registered reference (a
    trailing space, another case, another dash) is that reference: it must not turn a refusal into "unregistered",
    and so into pending review. Compared here, not in SQL: the backends' collations differ."""
    rows = store.bases_named(tx, kind, ref)
    if not rows:
        key = reference_key(ref)
        rows = [r for r in store.bases_of_kind(tx, kind) if reference_key(r.reference) == key]
    return min(rows, key=lambda r: (r.credit_code != credit_code, r.reference, r.credit_code), default=None)


def _check_registered(tx: Tx, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int) -> Check:
    what = KIND_ZH[exc.kind]
    ref = exc.reference
    entry = _entry_for(tx, exc.kind, ref, credit_code)
    if entry is None:
        return Check("unregistered", f"{what} {ref} 未登记 / {exc.kind} {ref} is not registered")
    if entry.credit_code != credit_code:
        return Check("invalid", f"{what} {ref} 针对的是其他企业 / {exc.kind} {ref} concerns another enterprise")
    if entry.withdrawn_ms is not None:
        return Check("invalid", f"{what} {ref} 已撤销 / {exc.kind} {ref} was withdrawn")
    if entry.agency_id is not None and entry.agency_id != agency_id:
        return Check("invalid", f"{what} {ref} 交由其他执法机关办理 / {exc.kind} {ref} was given to another agency")
    if entry.field is not None and field and entry.field != field:
        return Check("invalid", f"{what} {ref} 涉及其他执法领域 / {exc.kind} {ref} concerns another field")
    if not entry.valid_from_ms <= now_ms <= entry.valid_to_ms:
        return Check("invalid", f"{what} {ref} 不在有效期内 / {exc.kind} {ref} is not in force")
    return _unused(tx, ExceptionBasis(kind=exc.kind, reference=entry.reference), credit_code, agency_id)


# ------------------------------------------------------------------------------------------ the register


def add_basis(tx: Tx, b: BasisIn, created_by: str, now_ms: int) -> BasisView:
    """Register an assignment or notice (inside the caller's write transaction)."""
    try:
        credit_code = validate(b.credit_code)
    except CreditCodeError as e:
        raise Invalid(f"统一社会信用代码无效 / invalid credit code: {e}") from None
    if b.valid_to_ms <= b.valid_from_ms:
        raise Invalid("有效期止日须晚于起日 / valid_to_ms must be after valid_from_ms")
    if b.valid_from_ms < now_ms - MAX_BACKDATE_MS:
        raise Invalid("有效期起日最多早于登记时一天 / valid_from_ms may be at most one day before registration")
    if b.valid_to_ms - b.valid_from_ms > MAX_VALIDITY_MS:
        raise Invalid("有效期最长 366 天，到期后重新登记 / at most 366 days of validity; register it again to extend")
    if not store.enterprise_known(tx, credit_code):
        raise NotFound(f"企业 {credit_code} 未在企业名录中登记 / no enterprise {credit_code} is registered")
    if b.agency_id is not None and not store.agency_known(tx, b.agency_id):
        raise NotFound(f"执法机关 {b.agency_id} 未登记 / agency {b.agency_id} is not registered")
    if b.field is not None and not store.field_known(tx, b.field):
        raise NotFound(f"执法领域 {b.field} 未登记 / field {b.field} is not registered")
    if b.agency_id is not None and not agency_covers(tx, b.agency_id, credit_code):
        raise Forbidden(f"企业 {credit_code} 不在执法机关 {b.agency_id} 的辖区内 / enterprise {credit_code} is outside the agency's region")
    entry = store.NewBasis(
        kind=b.kind, reference=b.reference, credit_code=credit_code, agency_id=b.agency_id, field=b.field,
        issued_by=b.issued_by, summary=b.summary, valid_from_ms=b.valid_from_ms, valid_to_ms=b.valid_to_ms,
    )  # fmt: skip
    if not store.add_basis(tx, entry, created_by, now_ms):
        raise Conflict(f"{KIND_ZH[b.kind]} {b.reference} 已为该企业登记 / {b.kind} {b.reference} is already registered for {credit_code}")
    view = store.get_basis(tx, b.kind, b.reference, credit_code)
    assert view is not None
    return view


def agency_covers(tx: Tx, agency_id: str, credit_code: str) -> bool:
    """Is the enterprise in the agency's region (an agency without a region covers every region)?"""
    regions = store.regions(tx, agency_id, credit_code)
    return regions is not None and (not regions[0] or regions[0] == regions[1])


def get_basis(tx: Tx, kind: str, reference: str, credit_code: str) -> BasisView | None:
    """One register entry."""
    return store.get_basis(tx, kind, reference, credit_code)


def list_bases(tx: Tx, *, agency_id: str | None, credit_code: str | None, kind: str | None, limit: int) -> list[BasisView]:
    """Register entries, newest first (``agency_id``: those given to that agency or to any)."""
    return store.list_bases(tx, agency_id=agency_id, credit_code=credit_code, kind=kind, limit=limit)


def withdraw_basis(tx: Tx, kind: str, reference: str, credit_code: str, by: str, now_ms: int) -> BasisView:
    """Withdraw an entry: it no longer justifies a new inspection (past ones keep their record)."""
    withdrawn = store.withdraw_basis(tx, kind, reference, credit_code, by, now_ms)
    view = store.get_basis(tx, kind, reference, credit_code)
    if view is None:
        raise NotFound(f"{KIND_ZH.get(kind, kind)} {reference} 未为该企业登记 / {kind} {reference} is not registered for {credit_code}")
    if not withdrawn:
        raise Conflict(f"{KIND_ZH.get(kind, kind)} {reference} 已撤销 / {kind} {reference} was already withdrawn")
    return view


# ------------------------------------------------------------------------------------------ the review queue


def queue_review(con: Tx, scan_id: str, inspection_id: str | None, exc: ExceptionBasis, credit_code: str, officer_id: str, agency_id: str | None, problem: str, now_ms: int) -> None:
    """Put an inspection allowed on an unregistered urgent exception in the review queue (once per scan)."""
    store.queue_review(
        con, scan_id=scan_id, inspection_id=inspection_id, kind=exc.kind, reference=exc.reference, credit_code=credit_code,
        officer_id=officer_id, agency_id=agency_id, problem=problem, now_ms=now_ms,
    )  # fmt: skip


def pending_reviews_of(con: Tx, officer_id: str) -> int:
    """How many of an officer's inspections wait for a supervisor's review."""
    return store.pending_reviews_of(con, officer_id)


def get_review(tx: Tx, scan_id: str) -> ReviewView | None:
    """One review."""
    return store.get_review(tx, scan_id)


def list_reviews(tx: Tx, *, agency_id: str | None, status: str | None, limit: int) -> list[ReviewView]:
    """Reviews, oldest pending first when asked for pending ones, otherwise newest first."""
    return store.list_reviews(tx, agency_id=agency_id, status=status, oldest_first=status == "pending", limit=limit)


def decide_review(tx: Tx, scan_id: str, verdict: Literal["confirmed", "rejected"], by: str, note: str, now_ms: int) -> ReviewView:
    """Record a supervisor's verdict on a pending review; a decided review is never changed."""
    decided = store.decide_review(tx, scan_id, verdict, by, note, now_ms)
    view = store.get_review(tx, scan_id)
    if view is None:
        raise NotFound(f"没有待复核的例外依据 {scan_id} / no review {scan_id}")
    if not decided:
        raise Conflict(f"该例外依据已复核（{view.status}），不能更改 / this review was already decided ({view.status})")
    return view


def review_counts(tx: Tx, *, agency_id: str | None, since_ms: int, until_ms: int) -> dict[str, int]:
    """Reviews opened in a period, by status (pending, confirmed, rejected)."""
    return {"pending": 0, "confirmed": 0, "rejected": 0, **store.review_counts(tx, agency_id=agency_id, since_ms=since_ms, until_ms=until_ms)}
