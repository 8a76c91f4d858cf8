"""HTTP API of the alerts for supervisors (and for an agency's administrators, their agency's)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.console.guards import managers
from server.storage.alerts import ALERT_COLUMNS, recent_alerts


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


class AlertController(Controller):
    """Alerts for supervisors."""

    path = "/api/v1/alerts"
    tags = ["supervision"]
    guards = [managers]

    @get("/", sync_to_thread=True)
    def list_alerts(
        self, state: State, principal: CurrentPrincipal, kind: Annotated[str | None, QueryParameter()] = None, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100
    ) -> list[AlertView]:
        """The most recent alerts (an agency's staff: those of their agency, its officers and devices)."""
        with dbmod.reading(state.settings.db) as tx:
            found = recent_alerts(tx, agency_id=principal.agency_id, everyone=principal.role == "supervisor", kind=kind or None, limit=limit)
        return [AlertView(**dict(zip(ALERT_COLUMNS, r, strict=True))) for r in found]
