"""HTTP API of scan-to-inspect: phone scans, inspections, enterprises and their codes, alerts."""

from __future__ import annotations

import base64
import binascii
import sqlite3
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import JSONBody, MultipartBody, PathParameter, QueryParameter

from protocol.decision import Decision
from protocol.messages import DecisionWarning, ExceptionBasis, GeoPoint, InspectionResult
from server import db as dbmod
from server.alerts import agency_scope
from server.auth import CurrentPrincipal, Principal
from server.codes import Revoker, issue_code, render_png, render_svg, revoke_codes
from server.errors import Conflict, Unreadable, answers
from server.limits import MAX_PHOTO_BYTES, PHOTO_FORM_MAX_BODY, PHOTO_JSON_MAX_BODY, PHOTO_ROUTE, photo_too_large  # photo routes take more than 1 MiB
from server.scanning import ScanRequest, decide_scan, end_part


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


class EndIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An officer ends their part of an inspection."""

    result: InspectionResult
    officer_id: str | None = None  # default: the signed-in officer
    summary: Annotated[str, msgspec.Meta(max_length=4000)] = ""


class RevokeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why an enterprise's codes are revoked."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


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


class EnterpriseView(msgspec.Struct, kw_only=True):
    """An enterprise in the register."""

    credit_code: str
    name: str
    address: str
    region: str
    risk: str
    credit: str
    on_no_disturb_list: bool


class AlertView(msgspec.Struct, kw_only=True):
    """An alert for supervisors."""

    id: int
    created_ms: int
    kind: str
    severity: str
    credit_code: str | None
    agency_id: str | None
    device_id: str | None
    officer_id: str | None
    ref: str | None
    message_zh: str
    message_en: str


def _write(state: State) -> AbstractContextManager[sqlite3.Connection]:
    return dbmod.writing(state.settings.db)


def _read(state: State) -> AbstractContextManager[sqlite3.Connection]:
    return dbmod.reading(state.settings.db)


def _photo_text(data: bytes) -> str:
    from protocol.qrphoto import PhotoError, decode_photo

    if len(data) > MAX_PHOTO_BYTES:
        raise ClientException(photo_too_large(len(data)), status_code=413)
    try:
        return decode_photo(data)
    except PhotoError as e:
        raise ClientException(f"照片无法识别企业码 / no enterprise code could be read from the photo ({e.reason}): {e}", status_code=422) from None


def _scanning_officer(principal: CurrentPrincipal, officer_id: str | None) -> str:
    """Officers scan as themselves, never as someone else."""
    principal.require("officer")
    assert principal.officer_id is not None
    if officer_id is not None and officer_id != principal.officer_id:
        raise PermissionDeniedException(f"只能以本人身份扫码 / you scan as yourself ({principal.officer_id}), not as {officer_id}")
    return principal.officer_id


def can_see_inspection(con: sqlite3.Connection, p: Principal, inspection_id: str) -> bool:
    """Supervisors see every inspection; an agency's staff those their agency takes part in; an officer
    those they take part in; an enterprise those of itself."""
    if p.role == "supervisor":
        return True
    if p.role == "enterprise":
        return con.execute("SELECT 1 FROM inspections WHERE inspection_id = ? AND credit_code = ?", (inspection_id, p.credit_code)).fetchone() is not None
    if p.role == "officer":
        return con.execute("SELECT 1 FROM inspection_parts WHERE inspection_id = ? AND officer_id = ?", (inspection_id, p.officer_id)).fetchone() is not None
    return con.execute("SELECT 1 FROM inspection_parts WHERE inspection_id = ? AND agency_id = ?", (inspection_id, p.agency_id)).fetchone() is not None


def check_inspection(con: sqlite3.Connection, p: Principal, inspection_id: str) -> None:
    """404 if it does not exist, 403 if it is not the principal's to see."""
    if con.execute("SELECT 1 FROM inspections WHERE inspection_id = ?", (inspection_id,)).fetchone() is None:
        raise NotFoundException(f"inspection {inspection_id!r} does not exist")
    if not can_see_inspection(con, p, inspection_id):
        raise PermissionDeniedException("这是其他执法机关的检查记录，无权查看 / this inspection belongs to another agency")


def _scan(state: State, body: ScanIn, code_text: str, principal: CurrentPrincipal) -> ScanOut:
    officer_id = _scanning_officer(principal, body.officer_id)
    body = msgspec.structs.replace(body, officer_id=officer_id)
    scan_id = body.scan_id or str(uuid.uuid4())
    now_ms = int(time.time() * 1000)
    req = ScanRequest(
        scan_id=scan_id, channel="phone", officer_id=officer_id, code_text=code_text, field=body.field, scanned_ms=now_ms,
        matter=body.matter, reason=body.reason, exception=body.exception_basis, location=body.location,
    )  # fmt: skip
    with _write(state) as con:  # ScanConflict (409) if the scan id belongs to another scan
        d: Decision = decide_scan(con, req, state.policy, now_ms)
        row = con.execute("SELECT s.credit_code, e.name FROM scans s LEFT JOIN enterprises e USING (credit_code) WHERE s.scan_id = ?", (scan_id,)).fetchone()
    return ScanOut(
        scan_id=scan_id, outcome=d.outcome, code=d.code, message_zh=d.message_zh, message_en=d.message_en, inspection_id=d.inspection_id,
        joined_agency_id=d.joined_agency_id, exception_used=d.exception_used, pending_review=d.pending_review, warnings=d.warnings, credit_code=row[0], enterprise_name=row[1],
    )  # fmt: skip


class ScanController(Controller):
    """Phones scan enterprise codes; the answer is the decision, and the scan is recorded."""

    path = "/api/v1/scans"
    tags = ["scan-to-inspect"]

    @post("/", sync_to_thread=True, status_code=200, request_max_body_size=PHOTO_JSON_MAX_BODY, opt={PHOTO_ROUTE: True}, responses=answers(Unreadable, Conflict))
    def scan(self, state: State, data: JSONBody[ScanIn], principal: CurrentPrincipal) -> ScanOut:
        """Decide a scan given the code's text or a base64 photo of it (officers, as themselves)."""
        _scanning_officer(principal, data.officer_id)
        if (data.code_text is None) == (data.photo_base64 is None):
            raise ClientException("give exactly one of code_text and photo_base64")
        if data.photo_base64 is not None:
            try:
                raw = base64.b64decode(data.photo_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ClientException("photo_base64 is not valid base64") from None
            return _scan(state, data, _photo_text(raw), principal)
        assert data.code_text is not None
        return _scan(state, data, data.code_text, principal)

    @post("/photo", sync_to_thread=True, status_code=200, request_max_body_size=PHOTO_FORM_MAX_BODY, opt={PHOTO_ROUTE: True}, responses=answers(Unreadable, Conflict))
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
            raise ClientException(f"invalid form: {e}") from None
        return _scan(state, body, _photo_text(data.photo.file.read(MAX_PHOTO_BYTES + 1)), principal)

    @get("/", sync_to_thread=True)
    def list_scans(self, state: State, principal: CurrentPrincipal, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50) -> list[dict[str, object]]:
        """The most recent scans and their decisions (an agency's: its own; an officer's: their own)."""
        principal.require("supervisor", "agency_admin", "officer")
        where, args = {"supervisor": ("", ()), "agency_admin": (" WHERE agency_id = ?", (principal.agency_id,)), "officer": (" WHERE officer_id = ?", (principal.officer_id,))}[principal.role]
        with _read(state) as con:
            cols = ("scan_id", "channel", "device_id", "officer_id", "agency_id", "credit_code", "field", "scanned_ms", "decided_ms", "outcome", "code", "inspection_id")
            rows = con.execute(f"SELECT {', '.join(cols)} FROM scans{where} ORDER BY decided_ms DESC, scan_id LIMIT ?", (*args, limit))
            return [dict(zip(cols, r, strict=True)) for r in rows]


InspectionPath = Annotated[str, PathParameter(description="inspection id")]
CodePath = Annotated[str, PathParameter(description="unified social credit code")]


def _inspection(con: sqlite3.Connection, inspection_id: str) -> InspectionView:
    row = con.execute(
        "SELECT i.inspection_id, i.credit_code, e.name, i.lead_agency_id, i.field, i.status, i.opened_ms, i.ended_ms, i.exception_kind, i.exception_ref"
        " FROM inspections i LEFT JOIN enterprises e USING (credit_code) WHERE i.inspection_id = ?",
        (inspection_id,),
    ).fetchone()
    if row is None:
        raise NotFoundException(f"inspection {inspection_id!r} does not exist")
    parts = [
        PartView(officer_id=p[0], agency_id=p[1], field=p[2], matter=p[3], joined_ms=p[4], ended_ms=p[5], result=p[6])
        for p in con.execute(
            "SELECT officer_id, agency_id, field, matter, joined_ms, ended_ms, result FROM inspection_parts WHERE inspection_id = ? ORDER BY joined_ms, officer_id",
            (inspection_id,),
        )
    ]
    keys = ("inspection_id", "credit_code", "enterprise_name", "lead_agency_id", "field", "status", "opened_ms", "ended_ms", "exception_kind", "exception_ref")
    return InspectionView(**dict(zip(keys, row, strict=True)), parts=parts)


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
        where, args = [], []
        if principal.role == "agency_admin":
            where.append("inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE agency_id = ?)")
            args.append(principal.agency_id)
        elif principal.role == "officer":
            where.append("inspection_id IN (SELECT inspection_id FROM inspection_parts WHERE officer_id = ?)")
            args.append(principal.officer_id)
        elif principal.role == "enterprise":
            where.append("credit_code = ?")
            args.append(principal.credit_code)
        if status:
            where.append("status = ?")
            args.append(status)
        if credit_code:
            where.append("credit_code = ?")
            args.append(credit_code)
        sql = "SELECT inspection_id FROM inspections" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY opened_ms DESC, inspection_id LIMIT ?"
        with _read(state) as con:
            return [_inspection(con, r[0]) for r in con.execute(sql, (*args, limit)).fetchall()]

    @get("/{inspection_id:str}", sync_to_thread=True)
    def get_inspection(self, state: State, inspection_id: InspectionPath, principal: CurrentPrincipal) -> InspectionView:
        """One inspection with its parts (403 if it is another agency's)."""
        with _read(state) as con:
            check_inspection(con, principal, inspection_id)
            return _inspection(con, inspection_id)

    @post("/{inspection_id:str}/end", sync_to_thread=True, status_code=200, responses=answers(Conflict))
    def end(self, state: State, inspection_id: InspectionPath, data: JSONBody[EndIn], principal: CurrentPrincipal) -> InspectionView:
        """End an officer's part with its result; the inspection ends when every part has."""
        officer_id = _scanning_officer(principal, data.officer_id)
        data = msgspec.structs.replace(data, officer_id=officer_id)
        with _write(state) as con:
            if con.execute("SELECT 1 FROM inspections WHERE inspection_id = ?", (inspection_id,)).fetchone() is None:
                raise NotFoundException(f"inspection {inspection_id!r} does not exist")
            if not end_part(con, inspection_id, officer_id, data.result, data.summary, int(time.time() * 1000)):
                raise ClientException(f"officer {officer_id!r} has no open part in inspection {inspection_id!r}", status_code=409)
            return _inspection(con, inspection_id)


class EnterpriseController(Controller):
    """The enterprise register and enterprise QR codes."""

    path = "/api/v1/enterprises"
    tags = ["enterprises"]

    @get("/{credit_code:str}", sync_to_thread=True)
    def get_enterprise(self, state: State, credit_code: CodePath, principal: CurrentPrincipal) -> EnterpriseView:
        """One enterprise."""
        principal.require("supervisor", "agency_admin", "officer")
        with _read(state) as con:
            row = con.execute("SELECT credit_code, name, address, region, risk, credit FROM enterprises WHERE credit_code = ?", (credit_code.upper(),)).fetchone()
            if row is None:
                raise NotFoundException(f"no enterprise with credit code {credit_code!r}")
            nd = con.execute(
                "SELECT 1 FROM no_disturb WHERE credit_code = ? AND removed_ms IS NULL AND (valid_to_ms IS NULL OR valid_to_ms >= ?)", (row[0], int(time.time() * 1000))
            ).fetchone()
        keys = ("credit_code", "name", "address", "region", "risk", "credit")
        return EnterpriseView(**dict(zip(keys, row, strict=True)), on_no_disturb_list=nd is not None)

    def _code(self, state: State, credit_code: str, principal: CurrentPrincipal) -> tuple[str, str]:
        principal.require("supervisor", "agency_admin")
        with _write(state) as con:
            return issue_code(con, state.settings.key_base, credit_code)  # its errors are 400 / 404 (server.codes)

    @get("/{credit_code:str}/qr.png", sync_to_thread=True, media_type="image/png")
    def qr_png(self, state: State, credit_code: CodePath, principal: CurrentPrincipal) -> bytes:
        """The enterprise's signed code as PNG, its name printed under it."""
        return render_png(*self._code(state, credit_code, principal))

    @get("/{credit_code:str}/qr.svg", sync_to_thread=True, media_type="image/svg+xml")
    def qr_svg(self, state: State, credit_code: CodePath, principal: CurrentPrincipal) -> bytes:
        """The enterprise's signed code as SVG, its name under it."""
        return render_svg(*self._code(state, credit_code, principal))

    @get("/{credit_code:str}/qr.txt", sync_to_thread=True, media_type="text/plain")
    def qr_text(self, state: State, credit_code: CodePath, principal: CurrentPrincipal) -> str:
        """The text the enterprise's code encodes."""
        return self._code(state, credit_code, principal)[0]

    @post("/{credit_code:str}/qr/revoke", sync_to_thread=True, status_code=200, responses=answers(Conflict))
    def revoke(self, state: State, credit_code: CodePath, data: JSONBody[RevokeIn], principal: CurrentPrincipal) -> Response[dict[str, int]]:
        """Revoke every code in force of the enterprise (a lost or misused sticker); a new code can be issued at once.

        Who may: a supervisor, or the administrator of an agency responsible for the enterprise: the
        enterprise is in the agency's region (an agency without a region covers all), and the agency's
        officers took part in an inspection of it in the last 365 days (server.codes.responsible) or one
        of its plans in force names it. Anyone else gets 403. The revocation records who and why and raises
        a `code_revoked` alert. 400: invalid credit code or empty reason; 404: no such enterprise; 409: no
        code in force."""
        principal.require("supervisor", "agency_admin")
        by = Revoker(username=principal.username, role=principal.role, agency_id=principal.agency_id)
        with _write(state) as con:
            return Response({"revoked": revoke_codes(con, credit_code, data.reason, by)})


class AlertController(Controller):
    """Alerts for supervisors."""

    path = "/api/v1/alerts"
    tags = ["supervision"]

    @get("/", sync_to_thread=True)
    def list_alerts(
        self, state: State, principal: CurrentPrincipal, kind: Annotated[str | None, QueryParameter()] = None, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100
    ) -> list[AlertView]:
        """The most recent alerts (an agency's staff: those of their agency, its officers and devices)."""
        principal.require("supervisor", "agency_admin")
        cols = ("id", "created_ms", "kind", "severity", "credit_code", "agency_id", "device_id", "officer_id", "ref", "message_zh", "message_en")
        where, args = ["1 = 1"], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if principal.role == "agency_admin":
            scope, scope_args = agency_scope(principal.agency_id)
            where.append(scope)
            args += scope_args
        sql = f"SELECT {', '.join(cols)} FROM alerts WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        with _read(state) as con:
            return [AlertView(**dict(zip(cols, r, strict=True))) for r in con.execute(sql, (*args, limit))]
