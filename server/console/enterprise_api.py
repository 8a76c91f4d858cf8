"""HTTP API of the enterprise register as scan-to-inspect sees it: an enterprise, its QR codes, revoking them; and
what anyone holding an enterprise's code may learn of its inspections (the enterprise's page)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from protocol.cst import CST
from protocol.enterprise_code import CodeError
from protocol.messages import InspectionResult
from server import db as dbmod
from server.console.auth import CurrentPrincipal, principal_of
from server.rules.codes import Revoker, check_code, issue_code, render_png, render_svg, revoke_codes
from server.console import labels
from server.errors import Conflict, Invalid, NotFound, TooLarge, Unreadable, answers
from server.console.guards import managers, staff
from server.console.limits import MAX_PHOTO_BYTES, PHOTO_JSON_MAX_BODY, PHOTO_ROUTE, photo_too_large
from server.storage import console
from server.storage import ratings
from server.storage import inspections as rows
from server.storage.engine import Tx

Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]


class RevokeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why an enterprise's codes are revoked."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class EnterpriseView(msgspec.Struct, kw_only=True):
    """An enterprise in the register."""

    credit_code: str
    name: str
    address: str
    region: str
    risk: str
    credit: str
    on_no_disturb_list: bool


class Revoked(msgspec.Struct, kw_only=True):
    """How many codes a revocation ended."""

    revoked: int


def photo_text(data: bytes) -> str:
    """The text of the enterprise code in a photo (413 if the photo is too large, 422 if no code is read)."""
    from protocol.qrphoto import PhotoError, decode_photo

    if len(data) > MAX_PHOTO_BYTES:
        raise TooLarge(photo_too_large(len(data)))
    try:
        return decode_photo(data)
    except PhotoError as e:
        raise Unreadable(f"照片无法识别企业码 / no enterprise code could be read from the photo ({e.reason}): {e}") from None


CodePath = Annotated[str, PathParameter(description="unified social credit code")]


class EnterpriseController(Controller):
    """The enterprise register and enterprise QR codes."""

    path = "/api/v1/enterprises"
    tags = ["enterprises"]

    @get("/{credit_code:str}", sync_to_thread=True, guards=[staff])
    def get_enterprise(self, state: State, credit_code: CodePath) -> EnterpriseView:
        """One enterprise."""
        with dbmod.reading(state.settings.db) as tx:
            row = rows.enterprise_card(tx, credit_code.upper())
            if row is None:
                raise NotFound(f"没有统一社会信用代码为 {credit_code!r} 的企业 / no enterprise with credit code {credit_code!r}")
            listed = rows.on_no_disturb_list(tx, credit_code.upper(), int(time.time() * 1000))
        return EnterpriseView(**dict(zip(rows.ENTERPRISE_COLUMNS, row, strict=True)), on_no_disturb_list=listed)

    def _code(self, state: State, credit_code: str) -> tuple[str, str]:
        with dbmod.writing(state.settings.db) as tx:
            return issue_code(tx, state.settings.key_base, credit_code)  # its errors are 400 / 404 (server.rules.codes)

    @get("/{credit_code:str}/qr.png", sync_to_thread=True, guards=[managers], media_type="image/png")
    def qr_png(self, state: State, credit_code: CodePath) -> bytes:
        """The enterprise's signed code as PNG, its name printed under it."""
        return render_png(*self._code(state, credit_code))

    @get("/{credit_code:str}/qr.svg", sync_to_thread=True, guards=[managers], media_type="image/svg+xml")
    def qr_svg(self, state: State, credit_code: CodePath) -> bytes:
        """The enterprise's signed code as SVG, its name under it."""
        return render_svg(*self._code(state, credit_code))

    @get("/{credit_code:str}/qr.txt", sync_to_thread=True, guards=[managers], media_type="text/plain")
    def qr_text(self, state: State, credit_code: CodePath) -> str:
        """The text the enterprise's code encodes."""
        return self._code(state, credit_code)[0]

    @post("/{credit_code:str}/qr/revoke", sync_to_thread=True, status_code=200, guards=[managers], responses=answers(Conflict))
    def revoke(self, state: State, credit_code: CodePath, data: JSONBody[RevokeIn], principal: CurrentPrincipal) -> Revoked:
        """Revoke every code in force of the enterprise (a lost or misused sticker); a new code can be issued at once.

        Who may: a supervisor, or the administrator of an agency responsible for the enterprise: the
        enterprise is in the agency's region (an agency without a region covers all), and the agency's
        officers took part in an inspection of it in the last 365 days (server.rules.codes.responsible) or one
        of its plans in force names it. Anyone else gets 403. The revocation records who and why and raises
        a `code_revoked` alert. 400: invalid credit code or empty reason; 404: no such enterprise; 409: no
        code in force."""
        by = Revoker(username=principal.username, role=principal.role, agency_id=principal.agency_id)
        with dbmod.writing(state.settings.db) as tx:
            return Revoked(revoked=revoke_codes(tx, credit_code, data.reason, by))


class EnterpriseQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enterprise's code (text, or a photo of it): whoever holds it sees that inspections happened."""

    code_text: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    photo_base64: str | None = None


class VisitOutcome(msgspec.Struct, kw_only=True):
    """One agency's result of an inspection (shown to the enterprise's own signed-in account only)."""

    agency: str
    field: str
    result: InspectionResult | None  # None while that part is under way
    result_label: str


class Visit(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An inspection as the enterprise sees it: the day, the agencies, the fields; outcomes for the owner."""

    date: str  # YYYY-MM-DD, China time
    agencies: list[str]
    fields: list[str]
    outcomes: list[VisitOutcome] | None = None
    # For the owner only: what it needs to rate the inspection (its reference, and its rating once given).
    inspection_id: str | None = None
    rating: int | None = None


class EnterpriseHistory(msgspec.Struct, kw_only=True):
    """Who inspected an enterprise. ``outcomes_shown`` is true only for the enterprise's own account."""

    credit_code: str
    name: str
    outcomes_shown: bool
    inspections: list[Visit]


#: The most recent inspections an enterprise's page lists.
HISTORY_LIMIT = 200
CHINA = CST


def _result_label(result: str | None, lang: str) -> str:
    """An inspection part's result in words (labels.py's group "result"; none yet: under way)."""
    return labels.label("result", result, lang) if result else ("检查中" if lang == "zh" else "under way")


def _label(names: tuple[str | None, str | None], fallback: str, lang: str) -> str:
    """A register's name in ``lang`` (the Chinese one when no English one is kept); never the id."""
    zh, en = names
    return (zh if lang == "zh" else en or zh) or labels.label("", None, lang)


def enterprise_history(con: Tx, credit_code: str, lang: str, with_outcomes: bool) -> list[Visit]:
    """The enterprise's latest inspections, newest first: day, agency and field names; results only if asked."""
    rows = console.visits(con, credit_code, HISTORY_LIMIT)
    visits: dict[str, Visit] = {}  # by inspection id, which never leaves this function
    for inspection_id, opened_ms, agency_id, a_zh, a_en, field_id, f_zh, f_en, result in rows:
        agency, field = _label((a_zh, a_en), agency_id, lang), _label((f_zh, f_en), field_id, lang)
        day = dt.datetime.fromtimestamp(opened_ms / 1000, CHINA).date().isoformat()
        v = visits.setdefault(inspection_id, Visit(date=day, agencies=[], fields=[], outcomes=[] if with_outcomes else None))
        if agency not in v.agencies:
            v.agencies.append(agency)
        if field not in v.fields:
            v.fields.append(field)
        if v.outcomes is not None:
            v.outcomes.append(VisitOutcome(agency=agency, field=field, result=result, result_label=_result_label(result, lang)))
            v.inspection_id = inspection_id
    if with_outcomes:
        scores = ratings.scores_of(con, list(visits))
        for inspection_id, v in visits.items():
            v.rating = scores.get(inspection_id)
    return list(visits.values())


@post(
    "/api/v1/enterprise-view", sync_to_thread=True, status_code=200, tags=["enterprises"],
    request_max_body_size=PHOTO_JSON_MAX_BODY, opt={PHOTO_ROUTE: True}, responses=answers(Unreadable),  # 422: no code in the photo
)  # fmt: skip
def enterprise_view(request: Request, state: State, data: JSONBody[EnterpriseQuery], lang: Lang = "zh") -> EnterpriseHistory:
    """Who inspected the enterprise whose (valid, unrevoked) code is given: the day, agencies and fields.
    The results only to the enterprise's own signed-in account: anyone who photographs the door code
    learns that inspections happened, never their outcome."""
    if (data.code_text is None) == (data.photo_base64 is None):
        raise Invalid("请给出企业码内容或照片之一 / give exactly one of code_text and photo_base64")
    text = data.code_text
    if data.photo_base64 is not None:
        try:
            raw = base64.b64decode(data.photo_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("照片不是有效的 base64 编码 / photo_base64 is not valid base64") from None
        text = photo_text(raw)
    assert text is not None
    p = principal_of(request)
    with dbmod.reading(state.settings.db) as con:
        try:
            code = check_code(con, text).credit_code
        except CodeError as e:
            zh, en = labels.localized(str(e), "zh"), labels.localized(str(e), "en")
            raise Invalid(f"企业码无效：{zh} / the code is not valid ({e.reason}): {en}") from None
        owner = p is not None and p.role == "enterprise" and p.credit_code == code
        name = console.enterprise_name(con, code)
        visits = enterprise_history(con, code, lang, with_outcomes=owner)
    return EnterpriseHistory(credit_code=code, name=name or code, outcomes_shown=owner, inspections=visits)
