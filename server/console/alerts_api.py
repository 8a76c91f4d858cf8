"""HTTP API of the alerts for supervisors (and for an agency's administrators, their agency's): listed by kind, by the
agency they concern and by whether they were handled; acknowledged and assigned (server/rules/alerts.py says who may)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.console.guards import managers
from server.errors import Conflict, Forbidden, Invalid, NotFound, answers
from server.rules.alerts import acknowledge_alert, assign_alert, visible_alert
from server.storage.alerts import HANDLED_COLUMNS, alerts_page

AlertId = Annotated[int, PathParameter(ge=1, le=2**62, description="the alert's number")]


class AlertView(msgspec.Struct, kw_only=True):
    """An alert for supervisors, with how it was handled (null: not yet)."""

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
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    assigned_to: str | None = None
    assigned_by: str | None = None
    assigned_ms: int | None = None
    #: The console page that shows the alert and the record it concerns.
    page: str = ""


class AssignIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Whom to assign an alert to: an account's user name."""

    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


def view(row: dict[str, Any]) -> AlertView:
    """An alert as the API answers it."""
    return AlertView(**row, page=f"/alerts/{row['id']}")


class AlertController(Controller):
    """Alerts for supervisors."""

    path = "/api/v1/alerts"
    tags = ["supervision"]
    guards = [managers]

    @get("/", sync_to_thread=True)
    def list_alerts(
        self, state: State, principal: CurrentPrincipal,
        kind: Annotated[str | None, QueryParameter(max_length=100, description="only alerts of this kind")] = None,
        agency_id: Annotated[str | None, QueryParameter(max_length=100, description="only alerts concerning this agency")] = None,
        handled: Annotated[Literal["", "new", "acknowledged", "mine"], QueryParameter(description="new: not acknowledged; mine: assigned to me")] = "",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[AlertView]:  # fmt: skip
        """The most recent alerts (an agency's staff: those of their agency, its officers and devices)."""
        with dbmod.reading(state.settings.db) as tx:
            found = alerts_page(
                tx, agency_id=principal.agency_id, everyone=principal.role == "supervisor", kind=kind or None, about=agency_id or None,
                state=handled, username=principal.username, limit=limit,
            )  # fmt: skip
        return [view(dict(zip(HANDLED_COLUMNS, r, strict=True))) for r in found]

    @get("/{alert_id:int}", sync_to_thread=True, responses=answers(Forbidden, NotFound))
    def one(self, state: State, principal: CurrentPrincipal, alert_id: AlertId) -> AlertView:
        """One alert with its handling."""
        with dbmod.reading(state.settings.db) as tx:
            return view(visible_alert(tx, alert_id, principal.role, principal.agency_id))

    @post("/{alert_id:int}/acknowledge", sync_to_thread=True, status_code=200, responses=answers(Forbidden, NotFound, Conflict))
    def acknowledge(self, state: State, principal: CurrentPrincipal, alert_id: AlertId) -> AlertView:
        """Acknowledge an alert (once: 409 when someone already did)."""
        p = principal
        with dbmod.writing(state.settings.db) as tx:
            return view(acknowledge_alert(tx, alert_id, username=p.username, role=p.role, agency_id=p.agency_id, now_ms=int(time.time() * 1000)))

    @post("/{alert_id:int}/assign", sync_to_thread=True, status_code=200, responses=answers(Invalid, Forbidden, NotFound))
    def assign(self, state: State, principal: CurrentPrincipal, alert_id: AlertId, data: JSONBody[AssignIn]) -> AlertView:
        """Assign an alert to a supervisor, or to an administrator of the agency it concerns."""
        p = principal
        with dbmod.writing(state.settings.db) as tx:
            return view(assign_alert(tx, alert_id, data.assignee, username=p.username, role=p.role, agency_id=p.agency_id, now_ms=int(time.time() * 1000)))

