"""HTTP API of scan-to-inspect: phone scans and inspections (enterprises and their codes: enterprise_api.py; alerts:
alerts_api.py, both re-exported here for server/app.py)."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State, UploadFile
from litestar.params import JSONBody, MultipartBody, PathParameter, QueryParameter

from protocol.cst import CST_OFFSET_MS
from protocol.decision import Decision
from protocol.messages import DecisionWarning, ExceptionBasis, GeoPoint, InspectionResult
from server import db as dbmod
from server.console.alerts_api import AlertController, AlertView
from server.console.auth import CurrentPrincipal, Principal
from server.console.enterprise_api import EnterpriseController, EnterpriseView, RevokeIn, photo_text
from server.errors import Conflict, Forbidden, Invalid, NotFound, Unreadable, answers
from server.console.guards import officers, staff
from server.console.limits import MAX_PHOTO_BYTES, PHOTO_FORM_MAX_BODY, PHOTO_JSON_MAX_BODY, PHOTO_ROUTE  # photo routes take more than 1 MiB
from server.rules.scanning import ScanRequest, decide_scan_for_answer, end_part
from server.storage import inspections as rows
from server.storage import officer_page
from server.storage.engine import Tx

__all__ = [
    "AlertController", "AlertView", "EnterpriseController", "EnterpriseView", "InspectionController", "InspectionView", "PartView", "RevokeIn",
    "ScanController", "ScanIn", "ScanListed", "ScanOut", "can_see_inspection", "check_inspection",
]


class ScanIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scan from a phone: the code's text, or a photo of it (base64)."""

    field: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    officer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None  # default: the signed-in officer
    code_text: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    photo_base64: str | None = None
    matter: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    exception_basis: ExceptionBasis | None = None
    location: GeoPoint | None = None
    scan_id: Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None


@dataclass
class ScanForm:
    """A scan from a phone as a multipart form, with the photo as a file."""

    photo: UploadFile
    field: str
    officer_id: str | None = None
    matter: str = ""
    reason: str = ""
    exception_kind: str | None = None
    exception_ref: str | None = None
    scan_id: str | None = None


class ScanOut(msgspec.Struct, kw_only=True):
    """The decision on a scan."""

    scan_id: str
    outcome: Literal["allowed", "join", "repeat", "refused"]
    code: str
    message_zh: str
    message_en: str
    inspection_id: str | None
    joined_agency_id: str | None
    exception_used: bool
    pending_review: bool  # allowed on an unregistered urgent exception: a supervisor will confirm or reject it
    warnings: list[DecisionWarning]
    credit_code: str | None
    enterprise_name: str | None


class ScanListed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A decided scan as the list shows it."""

    scan_id: str
    channel: str
    device_id: str | None
    officer_id: str
    agency_id: str | None
    credit_code: str | None
    field: str | None
    scanned_ms: int
    decided_ms: int
    outcome: str
    code: str
    inspection_id: str | None


class EndIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An officer ends their part of an inspection."""

    result: InspectionResult
    officer_id: str | None = None  # default: the signed-in officer
    summary: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class PartView(msgspec.Struct, kw_only=True):
    """One officer's part in an inspection."""

    officer_id: str
    agency_id: str
    field: str
    matter: str
    joined_ms: int
    ended_ms: int | None
    result: str | None


class InspectionView(msgspec.Struct, kw_only=True):
    """An inspection and who took part."""

    inspection_id: str
    credit_code: str
    enterprise_name: str | None
    lead_agency_id: str
    field: str
    status: str
    opened_ms: int
    ended_ms: int | None
    exception_kind: str | None
    exception_ref: str | None
    parts: list[PartView]


def _scanning_officer(principal: CurrentPrincipal, officer_id: str | None) -> str:
    """Officers (the route's guard) scan as themselves, never as someone else."""
    assert principal.officer_id is not None
    if officer_id is not None and officer_id != principal.officer_id:
        raise Forbidden(f"只能以本人身份扫码 / you scan as yourself ({principal.officer_id}), not as {officer_id}")
    return principal.officer_id


def can_see_inspection(tx: Tx, p: Principal, inspection_id: str) -> bool:
    """Supervisors see every inspection; an agency's staff those their agency takes part in; an officer
    those they take part in; an enterprise those of itself."""
    if p.role == "supervisor":
        return True
    if p.role == "enterprise":
        return rows.inspection_of_enterprise(tx, inspection_id, p.credit_code)
    if p.role == "officer":
        return rows.officer_took_part(tx, inspection_id, p.officer_id)
    return rows.agency_took_part(tx, inspection_id, p.agency_id)


def check_inspection(tx: Tx, p: Principal, inspection_id: str) -> None:
    """404 if it does not exist, 403 if it is not the principal's to see."""
    if not rows.inspection_exists(tx, inspection_id):
        raise NotFound(f"inspection {inspection_id!r} does not exist")
    if not can_see_inspection(tx, p, inspection_id):
        raise Forbidden("这是其他执法机关的检查记录，无权查看 / this inspection belongs to another agency")


def _scan(state: State, body: ScanIn, code_text: str, principal: CurrentPrincipal) -> ScanOut:
    officer_id = _scanning_officer(principal, body.officer_id)
    body = msgspec.structs.replace(body, officer_id=officer_id)
    scan_id = body.scan_id or str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    req = ScanRequest(
        scan_id=scan_id, channel="phone", officer_id=officer_id, code_text=code_text, field=body.field, scanned_ms=now_ms,
        matter=body.matter, reason=body.reason, exception=body.exception_basis, location=body.location,
    )  # fmt: skip
    with dbmod.writing(state.settings.db) as tx:  # ScanConflict (409) if the scan id belongs to another scan
        answer = decide_scan_for_answer(tx, req, state.policy, now_ms)  # the enterprise from the decision's own reads
    d: Decision = answer.decision
    credit_code, name = answer.credit_code, answer.enterprise_name
    return ScanOut(
        scan_id=scan_id, outcome=d.outcome, code=d.code, message_zh=d.message_zh, message_en=d.message_en, inspection_id=d.inspection_id,
        joined_agency_id=d.joined_agency_id, exception_used=d.exception_used, pending_review=d.pending_review, warnings=d.warnings, credit_code=credit_code, enterprise_name=name,
    )  # fmt: skip


class ScanController(Controller):
    """Phones scan enterprise codes; the answer is the decision, and the scan is recorded."""

    path = "/api/v1/scans"
    tags = ["scan-to-inspect"]

    @post("/", sync_to_thread=True, status_code=200, request_max_body_size=PHOTO_JSON_MAX_BODY, opt={PHOTO_ROUTE: True}, guards=[officers], responses=answers(Unreadable, Conflict))
    def scan(self, state: State, data: JSONBody[ScanIn], principal: CurrentPrincipal) -> ScanOut:
        """Decide a scan given the code's text or a base64 photo of it (officers, as themselves)."""
        _scanning_officer(principal, data.officer_id)
        if (data.code_text is None) == (data.photo_base64 is None):
            raise Invalid("give exactly one of code_text and photo_base64")
        if data.photo_base64 is not None:
            try:
                raw = base64.b64decode(data.photo_base64, validate=True)
            except (binascii.Error, ValueError):
                raise Invalid("photo_base64 is not valid base64") from None
            return _scan(state, data, photo_text(raw), principal)
        assert data.code_text is not None
        return _scan(state, data, data.code_text, principal)

    @post("/photo", sync_to_thread=True, status_code=200, request_max_body_size=PHOTO_FORM_MAX_BODY, opt={PHOTO_ROUTE: True}, guards=[officers], responses=answers(Unreadable, Conflict))
    def scan_photo(self, state: State, data: MultipartBody[ScanForm], principal: CurrentPrincipal) -> ScanOut:
        """Decide a scan from a multipart form: a `photo` file and the scan's fields (officers, as themselves)."""
        _scanning_officer(principal, data.officer_id)
        fields: dict[str, object] = {"officer_id": data.officer_id or principal.officer_id, "field": data.field, "matter": data.matter, "reason": data.reason}
        if data.scan_id:
            fields["scan_id"] = data.scan_id
        if data.exception_kind:
            fields["exception_basis"] = {"kind": data.exception_kind, "reference": data.exception_ref or ""}
        try:
            body = msgspec.convert(fields, ScanIn)
        except msgspec.ValidationError as e:
            raise Invalid(f"invalid form: {e}") from None
        return _scan(state, body, photo_text(data.photo.file.read(MAX_PHOTO_BYTES + 1)), principal)

    @get("/", sync_to_thread=True, guards=[staff])
    def list_scans(self, state: State, principal: CurrentPrincipal, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50) -> list[ScanListed]:
        """The most recent scans and their decisions (an agency's: its own; an officer's: their own)."""
        scope, who = {"supervisor": ("all", None), "agency_admin": ("agency", principal.agency_id), "officer": ("officer", principal.officer_id)}[principal.role]
        with dbmod.reading(state.settings.db) as tx:
            return msgspec.convert(rows.latest_scans(tx, scope=scope, who=who, limit=limit), list[ScanListed])  # type: ignore[arg-type]


InspectionPath = Annotated[str, PathParameter(description="inspection id")]
#: China Standard Time, whose days "my inspections today" counts.
DAY_MS = 86_400_000


class MyInspections(msgspec.Struct, kw_only=True):
    """One page of the signed-in officer's own inspections of a day (China time), newest first."""

    day_start_ms: int
    total: int
    page: int
    per_page: int
    items: list[InspectionView]


def _inspection(tx: Tx, inspection_id: str) -> InspectionView:
    row = rows.inspection(tx, inspection_id)
    if row is None:
        raise NotFound(f"inspection {inspection_id!r} does not exist")
    parts = [PartView(**dict(zip(rows.PART_COLUMNS, p, strict=True))) for p in rows.parts(tx, inspection_id)]
    return InspectionView(**dict(zip(rows.INSPECTION_COLUMNS, row, strict=True)), parts=parts)  # type: ignore[arg-type]


class InspectionController(Controller):
    """Inspections: under way and past; officers end their part with a result."""

    path = "/api/v1/inspections"
    tags = ["scan-to-inspect"]

    @get("/", sync_to_thread=True)
    def list_inspections(
        self,
        state: State,
        principal: CurrentPrincipal,
        status: Annotated[Literal["open", "ended"] | None, QueryParameter(description="open or ended")] = None,
        credit_code: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
    ) -> list[InspectionView]:
        """Inspections, newest first: those the signed-in user may see."""
        scope, who = {
            "agency_admin": ("agency", principal.agency_id), "officer": ("officer", principal.officer_id), "enterprise": ("enterprise", principal.credit_code),
        }.get(principal.role, ("all", None))  # fmt: skip
        with dbmod.reading(state.settings.db) as tx:
            ids = rows.latest_inspections(tx, scope=scope, who=who, status=status, credit_code=credit_code or None, limit=limit)  # type: ignore[arg-type]
            return [_inspection(tx, i) for i in ids]

    @get("/mine", sync_to_thread=True, guards=[officers])
    def mine(
        self,
        state: State,
        principal: CurrentPrincipal,
        page: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
        days_ago: Annotated[int, QueryParameter(ge=0, le=366, description="0: today (China time), 1: yesterday, ...")] = 0,
    ) -> MyInspections:
        """The signed-in officer's own inspections (those they took part in) opened on a day, a page at a time."""
        assert principal.officer_id is not None
        now = int(time.time() * 1000)
        start = (now + CST_OFFSET_MS) // DAY_MS * DAY_MS - CST_OFFSET_MS - days_ago * DAY_MS
        with dbmod.reading(state.settings.db) as tx:
            total, ids = officer_page.mine(tx, principal.officer_id, start, start + DAY_MS, limit=per_page, offset=(page - 1) * per_page)
            return MyInspections(day_start_ms=start, total=total, page=page, per_page=per_page, items=[_inspection(tx, i) for i in ids])

    @get("/{inspection_id:str}", sync_to_thread=True)
    def get_inspection(self, state: State, inspection_id: InspectionPath, principal: CurrentPrincipal) -> InspectionView:
        """One inspection with its parts (403 if it is another agency's)."""
        with dbmod.reading(state.settings.db) as tx:
            check_inspection(tx, principal, inspection_id)
            return _inspection(tx, inspection_id)

    @post("/{inspection_id:str}/end", sync_to_thread=True, status_code=200, guards=[officers], responses=answers(Conflict))
    def end(self, state: State, inspection_id: InspectionPath, data: JSONBody[EndIn], principal: CurrentPrincipal) -> InspectionView:
        """End an officer's part with its result; the inspection ends when every part has."""
        officer_id = _scanning_officer(principal, data.officer_id)
        data = msgspec.structs.replace(data, officer_id=officer_id)
        with dbmod.writing(state.settings.db) as tx:
            if not rows.inspection_exists(tx, inspection_id):
                raise NotFound(f"inspection {inspection_id!r} does not exist")
            if not end_part(tx, inspection_id, officer_id, data.result, data.summary, int(time.time() * 1000)):
                raise Conflict(f"officer {officer_id!r} has no open part in inspection {inspection_id!r}")
            return _inspection(tx, inspection_id)


