"""HTTP API of the enterprise register as scan-to-inspect sees it: an enterprise, its QR codes, revoking them."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody, PathParameter

from server import db as dbmod
from server.auth import CurrentPrincipal
from server.codes import Revoker, issue_code, render_png, render_svg, revoke_codes
from server.errors import Conflict, answers
from server.storage import inspections as rows


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


CodePath = Annotated[str, PathParameter(description="unified social credit code")]


class EnterpriseController(Controller):
    """The enterprise register and enterprise QR codes."""

    path = "/api/v1/enterprises"
    tags = ["enterprises"]

    @get("/{credit_code:str}", sync_to_thread=True)
    def get_enterprise(self, state: State, credit_code: CodePath, principal: CurrentPrincipal) -> EnterpriseView:
        """One enterprise."""
        principal.require("supervisor", "agency_admin", "officer")
        with dbmod.reading(state.settings.db) as tx:
            row = rows.enterprise_card(tx, credit_code.upper())
            if row is None:
                raise NotFoundException(f"no enterprise with credit code {credit_code!r}")
            listed = rows.on_no_disturb_list(tx, credit_code.upper(), int(time.time() * 1000))
        return EnterpriseView(**dict(zip(rows.ENTERPRISE_COLUMNS, row, strict=True)), on_no_disturb_list=listed)

    def _code(self, state: State, credit_code: str, principal: CurrentPrincipal) -> tuple[str, str]:
        principal.require("supervisor", "agency_admin")
        with dbmod.writing(state.settings.db) as tx:
            return issue_code(tx, state.settings.key_base, credit_code)  # its errors are 400 / 404 (server.codes)

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
        with dbmod.writing(state.settings.db) as tx:
            return Response({"revoked": revoke_codes(tx, credit_code, data.reason, by)})
