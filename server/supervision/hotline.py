"""The 12345 hotline joined with inspections (issue 14 item 4): each ticket names an enterprise by its credit code, or
an address that exactly one registered enterprise has; the enterprise's inspections around the ticket's time give
two flags, each of which can open a finding (source "hotline", source_ref the ticket's id), once per ticket:

* ``no_inspection`` (投诉后未及时检查): no inspection of the enterprise was opened from the ticket's time to the end of
  the N-th working day after the ticket's date (China Standard Time, on the official calendar with its holidays and
  adjusted working weekends: server/rules/workdays.py), and that day is over; addressed to the agency in charge of
  the ticket's category (the one agency whose fields include it), if there is one;
* ``complained_again`` (检查后仍被投诉): the enterprise was inspected within the window (calendar days) before the
  ticket, and is complained about all the same; addressed to the agency that led the latest of those inspections.

The window and N are the policy file's (``[hotline]`` in server/policy.toml, server only); the API takes either as an
option to look with other numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from protocol.cst import CST
from protocol.decision import HotlinePolicy
from server.console.auth import Principal
from server.errors import Conflict, Invalid, NotFound
from protocol.cst import cst_date
from server.rules.workdays import add_working_days
from server.storage import hotline as rows
from server.storage import supervision as supervision_rows
from server.storage.engine import Tx
from server.supervision import workflow

#: Working days within which a ticket should be followed by an inspection; calendar days an inspection is recent
#: (the policy file's [hotline] gives the numbers the server uses; these are the defaults of the functions below).
DEFAULT_WITHIN_DAYS = HotlinePolicy().within_days
DEFAULT_WINDOW_DAYS = HotlinePolicy().window_days
MAX_WITHIN_DAYS = 60
MAX_WINDOW_DAYS = 366
DAY_MS = 86_400_000

FlagKind = Literal["no_inspection", "complained_again"]
KIND_ZH = {"no_inspection": "投诉后未在期限内检查", "complained_again": "检查后再次被投诉"}
KIND_EN = {"no_inspection": "complaint, no inspection within the working days", "complained_again": "inspected, then complained about again"}


class InspectionRef(msgspec.Struct, kw_only=True):
    """An inspection a flag is about."""

    inspection_id: str
    agency_id: str
    opened_ms: int
    ended_ms: int | None


class HotlineFlag(msgspec.Struct, kw_only=True):
    """A hotline ticket flagged, with the enterprise, the agency it concerns and the inspections concerned (for
    ``no_inspection``, those after the deadline, if any; for ``complained_again``, those before the ticket)."""

    ticket_id: str
    kind: FlagKind
    kind_zh: str
    kind_en: str
    received_ms: int
    category: str
    text: str
    address: str
    credit_code: str
    enterprise_name: str
    agency_id: str | None
    agency_name: str | None
    agency_name_en: str | None
    deadline: str | None  # no_inspection: the last day (CST) an inspection was due
    inspections: list[InspectionRef]
    finding_id: str | None


class FlagFindingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A finding from a ticket's flags: the agency (default: the flag's) and the reason (default: the flag's words)."""

    agency_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)] | None = None
    within_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_WITHIN_DAYS)] | None = None  # default: the policy's
    window_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_DAYS)] | None = None


def _day_end_ms(day: dt.date) -> int:
    """The first instant after ``day`` in China Standard Time, as epoch ms."""
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), CST).timestamp() * 1000)


def flags(
    tx: Tx, now_ms: int, *, within_days: int = DEFAULT_WITHIN_DAYS, window_days: int = DEFAULT_WINDOW_DAYS, ticket_id: str | None = None,
) -> list[HotlineFlag]:
    """Every flag (or one ticket's), by the tickets' time: the tickets joined with their enterprise's inspections
    (one statement), the working days counted here. Tickets naming no known enterprise are not flagged."""
    if not 1 <= within_days <= MAX_WITHIN_DAYS or not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise Invalid(f"within_days 1..{MAX_WITHIN_DAYS}, window_days 1..{MAX_WINDOW_DAYS}")
    # N working days never span more than 2N + 20 calendar days (the longest holiday is 8 days, with its weekends).
    joined = rows.joined(tx, before_ms=window_days * DAY_MS, after_ms=(2 * within_days + 20) * DAY_MS, ticket_id=ticket_id)
    names = supervision_rows.agency_names(tx)
    tickets: dict[str, tuple[dict[str, Any], list[InspectionRef]]] = {}
    for r in joined:
        t = dict(zip(rows.TICKET_COLUMNS, r[: len(rows.TICKET_COLUMNS)], strict=True))
        if t["credit_code"] is None:
            continue
        _, found = tickets.setdefault(t["ticket_id"], (t, []))
        iid, agency, opened, ended = r[len(rows.TICKET_COLUMNS) :]
        if iid is not None:
            found.append(InspectionRef(inspection_id=iid, agency_id=agency, opened_ms=int(opened), ended_ms=None if ended is None else int(ended)))
    out = []
    for t, found in tickets.values():
        received = int(t["received_ms"])
        due, _ = add_working_days(cst_date(received), within_days)
        due_end = _day_end_ms(due)
        before = [i for i in found if i.opened_ms < received]
        after = [i for i in found if i.opened_ms >= received]

        def flag(kind: FlagKind, agency: str | None, inspections: list[InspectionRef], deadline: str | None) -> HotlineFlag:
            name = names.get(agency) if agency else None
            return HotlineFlag(
                ticket_id=t["ticket_id"], kind=kind, kind_zh=KIND_ZH[kind], kind_en=KIND_EN[kind], received_ms=received,
                category=t["category"], text=t["text"], address=t["address"], credit_code=t["credit_code"],
                enterprise_name=t["enterprise_name"], agency_id=agency, agency_name=name[0] if name else None,
                agency_name_en=name[1] if name else None, deadline=deadline, inspections=inspections, finding_id=t["finding_id"],
            )  # fmt: skip

        if before:
            out.append(flag("complained_again", before[-1].agency_id, before, None))
        if now_ms >= due_end and not any(i.opened_ms < due_end for i in after):
            out.append(flag("no_inspection", t["category_agency"], after, due.isoformat()))
    return out


def visible_flags(tx: Tx, principal: Principal, now_ms: int, *, within_days: int, window_days: int, kind: str | None, limit: int) -> list[HotlineFlag]:
    """The flags a manager sees: a supervisor all, an agency's administrator those addressed to their agency."""
    found = flags(tx, now_ms, within_days=within_days, window_days=window_days)
    if principal.role != "supervisor":
        found = [f for f in found if f.agency_id is not None and f.agency_id == principal.agency_id]
    if kind is not None:
        found = [f for f in found if f.kind == kind]
    return found[:limit]


def open_finding(
    tx: Tx, ticket_id: str, data: FlagFindingIn, principal: Principal, now_ms: int, policy: HotlinePolicy = HotlinePolicy()
) -> workflow.FindingView:
    """Open a finding from a flagged ticket (supervisors), once: a ticket that opened one is refused (Conflict), a
    ticket without a flag is not found. The finding names the ticket's enterprise and the inspections concerned."""
    tx.lock(f"hotline-ticket:{ticket_id}")
    exists, finding_id = rows.ticket_finding(tx, ticket_id)
    if not exists:
        raise NotFound(f"没有这张工单：{ticket_id} / no such ticket {ticket_id}")
    if finding_id is not None:
        raise Conflict(f"该工单已立为监督事项 {finding_id} / the ticket already opened finding {finding_id}")
    found = flags(
        tx, now_ms, within_days=data.within_days or policy.within_days, window_days=data.window_days or policy.window_days, ticket_id=ticket_id,
    )  # fmt: skip
    if not found:
        raise NotFound(f"该工单没有需要监督的情形：{ticket_id} / ticket {ticket_id} is not flagged")
    agency = data.agency_id or next((f.agency_id for f in found if f.agency_id), None)
    if agency is None:
        raise Invalid("无法确定主管执法机关，请指定 agency_id / no agency is in charge of the ticket's category: give agency_id")
    reason = data.reason or "；".join(f"12345 工单 {ticket_id}：{f.kind_zh}（{f.enterprise_name}）" for f in found)
    refs = list(dict.fromkeys(i.inspection_id for f in found for i in f.inspections))[: workflow.MAX_REFS]
    view = workflow.open_finding(
        tx, workflow.FindingIn(agency_id=agency, reason=reason, source="hotline", source_ref=ticket_id, credit_code=found[0].credit_code, refs=refs),
        principal, now_ms,
    )  # fmt: skip
    if not rows.set_finding(tx, ticket_id, view.finding_id):
        raise Conflict("该工单已立为监督事项 / the ticket already opened a finding")
    return view
