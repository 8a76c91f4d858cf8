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

import sqlite3
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from protocol.messages import ExceptionBasis
from server.errors import Conflict, Forbidden, Invalid, NotFound

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
ReviewStatus = Literal["pending", "confirmed", "rejected"]
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


class BasisView(msgspec.Struct, kw_only=True):
    """A registered superior assignment or major-risk notice."""

    kind: str
    reference: str
    credit_code: str
    enterprise_name: str | None
    agency_id: str | None
    field: str | None
    issued_by: str
    summary: str
    valid_from_ms: int
    valid_to_ms: int
    created_by: str
    created_ms: int
    withdrawn_ms: int | None
    withdrawn_by: str | None


class ReviewView(msgspec.Struct, kw_only=True):
    """An inspection that went ahead on an unregistered urgent exception, and what a supervisor said of it."""

    scan_id: str
    inspection_id: str | None
    kind: str
    reference: str
    credit_code: str
    enterprise_name: str | None
    officer_id: str
    agency_id: str | None
    problem: str
    created_ms: int
    status: ReviewStatus
    reviewed_by: str | None
    reviewed_ms: int | None
    note: str | None


# ------------------------------------------------------------------------------------------ checking


def check_exception(con: sqlite3.Connection, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int, *, follow_up_days: int) -> Check:
    """Check a stated exception against its register. Each basis opens at most one inspection per agency
    (others join it): one ticket, plan target or rectification order is not a pass for repeated visits."""
    ref = exc.reference
    if not ref.strip():
        return Check("invalid", "未填写例外依据的文号或编号 / the exception names no reference")
    if exc.kind == "complaint":
        row = con.execute("SELECT credit_code, closed_ms, field FROM complaints WHERE ticket_no = ?", (ref,)).fetchone()
        if row is None:
            return Check("unregistered", f"投诉举报工单 {ref} 未登记 / complaint ticket {ref} is not registered")
        if row[0] != credit_code:
            return Check("invalid", f"工单 {ref} 针对的是其他企业 / ticket {ref} concerns another enterprise")
        if row[1] is not None:
            return Check("invalid", f"工单 {ref} 已办结 / ticket {ref} is closed")
        if row[2] and field and row[2] != field:
            return Check("invalid", f"工单 {ref} 涉及其他执法领域 / ticket {ref} concerns another field ({row[2]})")
        return _unused(con, exc, credit_code, agency_id)
    if exc.kind == "random_draw":
        plan = con.execute("SELECT agency_id, valid_from_ms, valid_to_ms, kind, field FROM plans WHERE plan_id = ?", (ref,)).fetchone()
        if plan is None:
            return Check("unregistered", f"抽查计划 {ref} 未登记 / draw plan {ref} is not registered")
        if plan[3] != "random_draw":
            return Check("invalid", f"计划 {ref} 不是双随机抽查计划 / plan {ref} is not a random draw")
        if con.execute("SELECT 1 FROM plan_targets WHERE plan_id = ? AND credit_code = ?", (ref, credit_code)).fetchone() is None:
            return Check("invalid", f"抽查计划 {ref} 未抽中该企业 / draw plan {ref} did not draw this enterprise")
        if plan[0] != agency_id:
            return Check("invalid", f"抽查计划 {ref} 属于其他执法机关 / draw plan {ref} belongs to another agency")
        if field and plan[4] != field:
            return Check("invalid", f"抽查计划 {ref} 涉及其他执法领域 / draw plan {ref} concerns another field")
        if not plan[1] <= now_ms <= plan[2]:
            return Check("invalid", f"抽查计划 {ref} 不在有效期内 / draw plan {ref} is not in force")
        return _unused(con, exc, credit_code, agency_id)
    if exc.kind == "rectification_follow_up":
        return _check_follow_up(con, exc, credit_code, agency_id, field, now_ms, follow_up_days)
    return _check_registered(con, exc, credit_code, agency_id, field, now_ms)


def _unused(con: sqlite3.Connection, exc: ExceptionBasis, credit_code: str, agency_id: str) -> Check:
    """ok, unless the agency already opened an inspection of the enterprise on this very basis."""
    used = con.execute(
        "SELECT 1 FROM inspections WHERE credit_code = ? AND lead_agency_id = ? AND exception_kind = ? AND exception_ref = ? LIMIT 1",
        (credit_code, agency_id, exc.kind, exc.reference),
    ).fetchone()
    if used is not None:
        what = KIND_ZH[exc.kind]
        return Check("invalid", f"{what} {exc.reference} 已用于本机关对该企业的一次检查 / {exc.kind} {exc.reference} was already used for an inspection of this enterprise by your agency")
    return Check("ok")


def _check_follow_up(con: sqlite3.Connection, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int, days: int) -> Check:
    """A follow-up cites an inspection of this enterprise in which this agency ordered rectification, in this
    field, within the follow-up period, and whose own basis was not rejected."""
    ref = exc.reference
    insp = con.execute("SELECT credit_code FROM inspections WHERE inspection_id = ?", (ref,)).fetchone()
    if insp is None:
        return Check("unregistered", f"检查记录 {ref} 不存在 / inspection {ref} does not exist")
    ordered = con.execute(
        "SELECT MAX(ended_ms) FROM inspection_parts WHERE inspection_id = ? AND result = 'rectification_ordered' AND agency_id = ? AND (? = '' OR field = ?)",
        (ref, agency_id, field, field),
    ).fetchone()[0]
    if insp[0] != credit_code or ordered is None:
        return Check("invalid", f"检查 {ref} 未由本机关在该领域对该企业责令整改 / in inspection {ref} your agency ordered no rectification of this enterprise in this field")
    if ordered < now_ms - days * 86_400_000:
        return Check("invalid", f"检查 {ref} 责令整改已超过 {days} 天复查期限 / the rectification ordered in {ref} is older than the {days}-day follow-up period")
    rejected = con.execute("SELECT 1 FROM exception_reviews WHERE inspection_id = ? AND status = 'rejected'", (ref,)).fetchone()
    if rejected is not None:
        return Check("invalid", f"检查 {ref} 的例外依据已被驳回，不能作为复查依据 / the basis of inspection {ref} was rejected")
    return _unused(con, exc, credit_code, agency_id)


#: Dash-like characters a look-alike reference may use instead of "-".
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def reference_key(reference: str) -> str:
    """A reference as compared for look-alikes: NFKC, dashes unified, invisible characters dropped, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", reference).translate(_DASHES).translate(_INVISIBLE).strip().casefold()


def _check_registered(con: sqlite3.Connection, exc: ExceptionBasis, credit_code: str, agency_id: str, field: str, now_ms: int) -> Check:
    what = KIND_ZH[exc.kind]
    ref = exc.reference
    cols = "reference, credit_code, agency_id, field, valid_from_ms, valid_to_ms, withdrawn_ms"
    rows = con.execute(f"SELECT {cols} FROM exception_bases WHERE kind = ? AND reference = ? ORDER BY credit_code = ? DESC, credit_code", (exc.kind, ref, credit_code)).fetchall()
    if not rows:
        # A look-alike of a registered reference (a trailing space, another case, another dash) is that
        # reference: it must not turn a refusal into "unregistered", and so into pending review.
        key = reference_key(ref)
        rows = sorted(
            (r for r in con.execute(f"SELECT {cols} FROM exception_bases WHERE kind = ? ORDER BY reference, credit_code", (exc.kind,)) if reference_key(r[0]) == key),
            key=lambda r: r[1] != credit_code,
        )
    if not rows:
        return Check("unregistered", f"{what} {ref} 未登记 / {exc.kind} {ref} is not registered")
    _, code, agency, only_field, valid_from, valid_to, withdrawn = rows[0]
    if code != credit_code:
        return Check("invalid", f"{what} {ref} 针对的是其他企业 / {exc.kind} {ref} concerns another enterprise")
    if withdrawn is not None:
        return Check("invalid", f"{what} {ref} 已撤销 / {exc.kind} {ref} was withdrawn")
    if agency is not None and agency != agency_id:
        return Check("invalid", f"{what} {ref} 交由其他执法机关办理 / {exc.kind} {ref} was given to another agency")
    if only_field is not None and field and only_field != field:
        return Check("invalid", f"{what} {ref} 涉及其他执法领域 / {exc.kind} {ref} concerns another field")
    if not valid_from <= now_ms <= valid_to:
        return Check("invalid", f"{what} {ref} 不在有效期内 / {exc.kind} {ref} is not in force")
    return _unused(con, ExceptionBasis(kind=exc.kind, reference=rows[0][0]), credit_code, agency_id)


# ------------------------------------------------------------------------------------------ the register


def _where(*conditions: tuple[str, str | None]) -> tuple[str, list[str]]:
    """A WHERE clause of the conditions whose value is given (each condition has one placeholder)."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    return " AND ".join(["1 = 1", *(sql for sql, _ in given)]), [value for _, value in given]


_BASIS_COLS = (
    "b.kind, b.reference, b.credit_code, e.name, b.agency_id, b.field, b.issued_by, b.summary, b.valid_from_ms, b.valid_to_ms,"
    " b.created_by, b.created_ms, b.withdrawn_ms, b.withdrawn_by"
)
_BASIS_KEYS = tuple(BasisView.__struct_fields__)


def add_basis(con: sqlite3.Connection, b: BasisIn, created_by: str, now_ms: int) -> BasisView:
    """Register an assignment or notice (inside the caller's write transaction)."""
    from protocol.creditcode import CreditCodeError, validate

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
    if con.execute("SELECT 1 FROM enterprises WHERE credit_code = ?", (credit_code,)).fetchone() is None:
        raise NotFound(f"企业 {credit_code} 未在企业名录中登记 / no enterprise {credit_code} is registered")
    if b.agency_id is not None and con.execute("SELECT 1 FROM agencies WHERE agency_id = ?", (b.agency_id,)).fetchone() is None:
        raise NotFound(f"执法机关 {b.agency_id} 未登记 / agency {b.agency_id} is not registered")
    if b.field is not None and con.execute("SELECT 1 FROM fields WHERE field_id = ?", (b.field,)).fetchone() is None:
        raise NotFound(f"执法领域 {b.field} 未登记 / field {b.field} is not registered")
    if b.agency_id is not None and not agency_covers(con, b.agency_id, credit_code):
        raise Forbidden(f"企业 {credit_code} 不在执法机关 {b.agency_id} 的辖区内 / enterprise {credit_code} is outside the agency's region")
    cur = con.execute(
        "INSERT INTO exception_bases(kind, reference, credit_code, agency_id, field, issued_by, summary, valid_from_ms, valid_to_ms, created_by, created_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind, reference, credit_code) DO NOTHING",
        (b.kind, b.reference, credit_code, b.agency_id, b.field, b.issued_by, b.summary, b.valid_from_ms, b.valid_to_ms, created_by, now_ms),
    )
    if cur.rowcount == 0:
        raise Conflict(f"{KIND_ZH[b.kind]} {b.reference} 已为该企业登记 / {b.kind} {b.reference} is already registered for {credit_code}")
    view = get_basis(con, b.kind, b.reference, credit_code)
    assert view is not None
    return view


def agency_covers(con: sqlite3.Connection, agency_id: str, credit_code: str) -> bool:
    """Is the enterprise in the agency's region (an agency without a region covers every region)?"""
    row = con.execute(
        "SELECT a.region, e.region FROM agencies a, enterprises e WHERE a.agency_id = ? AND e.credit_code = ?", (agency_id, credit_code)
    ).fetchone()
    return row is not None and (not row[0] or row[0] == row[1])


def get_basis(con: sqlite3.Connection, kind: str, reference: str, credit_code: str) -> BasisView | None:
    """One register entry."""
    row = con.execute(
        f"SELECT {_BASIS_COLS} FROM exception_bases b LEFT JOIN enterprises e USING (credit_code) WHERE b.kind = ? AND b.reference = ? AND b.credit_code = ?",
        (kind, reference, credit_code),
    ).fetchone()
    return None if row is None else BasisView(**dict(zip(_BASIS_KEYS, row, strict=True)))


def list_bases(con: sqlite3.Connection, *, agency_id: str | None, credit_code: str | None, kind: str | None, limit: int) -> list[BasisView]:
    """Register entries, newest first (``agency_id``: those given to that agency or to any)."""
    where, args = _where(("(b.agency_id = ? OR b.agency_id IS NULL)", agency_id), ("b.credit_code = ?", credit_code), ("b.kind = ?", kind))
    rows = con.execute(
        f"SELECT {_BASIS_COLS} FROM exception_bases b LEFT JOIN enterprises e USING (credit_code) WHERE {where}"
        " ORDER BY b.created_ms DESC, b.kind, b.reference, b.credit_code LIMIT ?",
        (*args, limit),
    )
    return [BasisView(**dict(zip(_BASIS_KEYS, r, strict=True))) for r in rows]


def withdraw_basis(con: sqlite3.Connection, kind: str, reference: str, credit_code: str, by: str, now_ms: int) -> BasisView:
    """Withdraw an entry: it no longer justifies a new inspection (past ones keep their record)."""
    cur = con.execute(
        "UPDATE exception_bases SET withdrawn_ms = ?, withdrawn_by = ? WHERE kind = ? AND reference = ? AND credit_code = ? AND withdrawn_ms IS NULL",
        (now_ms, by, kind, reference, credit_code),
    )
    view = get_basis(con, kind, reference, credit_code)
    if view is None:
        raise NotFound(f"{KIND_ZH.get(kind, kind)} {reference} 未为该企业登记 / {kind} {reference} is not registered for {credit_code}")
    if cur.rowcount == 0:
        raise Conflict(f"{KIND_ZH.get(kind, kind)} {reference} 已撤销 / {kind} {reference} was already withdrawn")
    return view


# ------------------------------------------------------------------------------------------ the review queue


_REVIEW_COLS = (
    "r.scan_id, r.inspection_id, r.kind, r.reference, r.credit_code, e.name, r.officer_id, r.agency_id, r.problem, r.created_ms,"
    " r.status, r.reviewed_by, r.reviewed_ms, r.note"
)
_REVIEW_KEYS = tuple(ReviewView.__struct_fields__)


def queue_review(con: sqlite3.Connection, scan_id: str, inspection_id: str | None, exc: ExceptionBasis, credit_code: str, officer_id: str, agency_id: str | None, problem: str, now_ms: int) -> None:
    """Put an inspection allowed on an unregistered urgent exception in the review queue (once per scan)."""
    con.execute(
        "INSERT INTO exception_reviews(scan_id, inspection_id, kind, reference, credit_code, officer_id, agency_id, problem, created_ms, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT(scan_id) DO NOTHING",
        (scan_id, inspection_id, exc.kind, exc.reference, credit_code, officer_id, agency_id, problem, now_ms),
    )


def pending_reviews_of(con: sqlite3.Connection, officer_id: str) -> int:
    """How many of an officer's inspections wait for a supervisor's review."""
    return int(con.execute("SELECT COUNT(*) FROM exception_reviews WHERE officer_id = ? AND status = 'pending'", (officer_id,)).fetchone()[0])


def get_review(con: sqlite3.Connection, scan_id: str) -> ReviewView | None:
    """One review."""
    row = con.execute(f"SELECT {_REVIEW_COLS} FROM exception_reviews r LEFT JOIN enterprises e USING (credit_code) WHERE r.scan_id = ?", (scan_id,)).fetchone()
    return None if row is None else ReviewView(**dict(zip(_REVIEW_KEYS, row, strict=True)))


def list_reviews(con: sqlite3.Connection, *, agency_id: str | None, status: str | None, limit: int) -> list[ReviewView]:
    """Reviews, oldest pending first when asked for pending ones, otherwise newest first."""
    where, args = _where(("r.agency_id = ?", agency_id), ("r.status = ?", status))
    order = "r.created_ms, r.scan_id" if status == "pending" else "r.created_ms DESC, r.scan_id"
    rows = con.execute(
        f"SELECT {_REVIEW_COLS} FROM exception_reviews r LEFT JOIN enterprises e USING (credit_code) WHERE {where} ORDER BY {order} LIMIT ?",
        (*args, limit),
    )
    return [ReviewView(**dict(zip(_REVIEW_KEYS, r, strict=True))) for r in rows]


def decide_review(con: sqlite3.Connection, scan_id: str, verdict: Literal["confirmed", "rejected"], by: str, note: str, now_ms: int) -> ReviewView:
    """Record a supervisor's verdict on a pending review; a decided review is never changed."""
    cur = con.execute(
        "UPDATE exception_reviews SET status = ?, reviewed_by = ?, reviewed_ms = ?, note = ? WHERE scan_id = ? AND status = 'pending'",
        (verdict, by, now_ms, note, scan_id),
    )
    view = get_review(con, scan_id)
    if view is None:
        raise NotFound(f"没有待复核的例外依据 {scan_id} / no review {scan_id}")
    if cur.rowcount == 0:
        raise Conflict(f"该例外依据已复核（{view.status}），不能更改 / this review was already decided ({view.status})")
    return view


def review_counts(con: sqlite3.Connection, *, agency_id: str | None, since_ms: int, until_ms: int) -> dict[str, int]:
    """Reviews opened in a period, by status (pending, confirmed, rejected)."""
    rows = con.execute(
        "SELECT status, COUNT(*) FROM exception_reviews WHERE created_ms >= ? AND created_ms < ? AND (? IS NULL OR agency_id = ?) GROUP BY status ORDER BY status",
        (since_ms, until_ms, agency_id, agency_id),
    ).fetchall()
    return {"pending": 0, "confirmed": 0, "rejected": 0, **dict(rows)}
