"""Enterprises rate the inspections they received (1–5 and a comment), once per inspection and only once it has
ended; a rating is a record in the evidence log, and a low one alerts the inspecting agency's supervisors so that it
can open a finding (source ``rating``). An enterprise sees only its own ratings; a supervisor all, an agency's
administrator those of its inspections."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from protocol.cst import CST
from server.console.auth import Principal
from server.errors import Conflict, NotFound
from server.evidence.records import append_record
from server.rules.alerts import raise_alert
from server.storage import ratings as rows
from server.storage.engine import Tx

#: A rating at or below this alerts the inspecting agency's supervisors.
LOW_SCORE = 2
CHINA = CST


class RatingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enterprise's rating of one of its inspections."""

    inspection_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class RatingView(msgspec.Struct, kw_only=True):
    """A rating as stored."""

    inspection_id: str
    credit_code: str
    lead_agency_id: str
    score: int
    comment: str
    rated_by: str
    rated_ms: int
    inspected_on: str  # the inspection's day, China time


def rate(tx: Tx, data: RatingIn, principal: Principal, now_ms: int) -> RatingView:
    """Record an enterprise account's rating of one of its own ended inspections (another's: not found)."""
    found = rows.inspection(tx, data.inspection_id)
    if found is None or found[0] != principal.credit_code:
        raise NotFound(f"没有这次检查：{data.inspection_id} / no such inspection of your enterprise")
    credit_code, agency_id, status, _ = found
    if status != "ended":
        raise Conflict("检查尚未结束，结束后才能评价 / the inspection has not ended: rate it once it has")
    if not rows.insert(
        tx, inspection_id=data.inspection_id, credit_code=credit_code, lead_agency_id=agency_id, score=data.score,
        comment=data.comment, rated_by=principal.username, rated_ms=now_ms,
    ):  # fmt: skip
        raise Conflict("这次检查已评价过，每次检查只能评价一次 / this inspection was rated already: once per inspection")
    append_record(tx, kind="inspection.rated", subject=f"inspection:{data.inspection_id}", actor=principal.username, content=data, now_ms=now_ms)
    if data.score <= LOW_SCORE:
        raise_alert(
            tx, "low_rating", now_ms,
            f"企业对本机关的一次检查评价为 {data.score} 分：{data.comment or '（无留言）'}",
            f"An enterprise rated an inspection by the agency {data.score} of 5: {data.comment or '(no comment)'}",
            agency_id=agency_id, credit_code=credit_code, ref=data.inspection_id,
        )  # fmt: skip
    return _view(rows.rating(tx, data.inspection_id))  # type: ignore[arg-type]  # just inserted


def list_ratings(tx: Tx, principal: Principal, *, limit: int) -> list[RatingView]:
    """The ratings the principal may see, newest first."""
    code = principal.credit_code if principal.role == "enterprise" else None
    agency = principal.agency_id if principal.role == "agency_admin" else None
    return [_view(r) for r in rows.ratings(tx, credit_code=code, agency_id=agency, limit=limit)]


def _view(row: tuple[object, ...]) -> RatingView:
    *values, opened_ms = row
    day = dt.datetime.fromtimestamp(int(opened_ms) / 1000, CHINA).date().isoformat()  # type: ignore[call-overload]
    return RatingView(**dict(zip(rows.RATING_COLUMNS, values, strict=True)), inspected_on=day)
