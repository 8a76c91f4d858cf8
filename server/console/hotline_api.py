"""HTTP API of the 12345 hotline flags (``/api/v1/supervision/hotline-flags``): tickets joined with inspections, and a
finding opened from a flag (the rules: server/supervision/hotline.py)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.console.guards import managers, supervisors
from server.errors import Conflict, Invalid, NotFound, answers
from server.supervision import hotline
from server.supervision.hotline import FlagFindingIn, HotlineFlag
from server.supervision.workflow import FindingView

TicketPath = Annotated[str, PathParameter(description="the hotline ticket's id", max_length=64)]


class HotlineController(Controller):
    """12345 hotline tickets flagged against the inspections (接诉即办与执法检查比对)."""

    path = "/api/v1/supervision/hotline-flags"
    tags = ["supervision"]

    @get("/", sync_to_thread=True, guards=[managers], responses=answers(Invalid))
    def flags(
        self,
        state: State,
        principal: CurrentPrincipal,
        kind: Annotated[Literal["no_inspection", "complained_again"] | None, QueryParameter()] = None,
        within_days: Annotated[int | None, QueryParameter(ge=1, le=hotline.MAX_WITHIN_DAYS, description="default: the policy's [hotline] within_days")] = None,
        window_days: Annotated[int | None, QueryParameter(ge=1, le=hotline.MAX_WINDOW_DAYS, description="default: the policy's [hotline] window_days")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[HotlineFlag]:
        """Flagged tickets by time: no inspection within ``within_days`` working days, or inspected within
        ``window_days`` before and complained about again. A supervisor sees all, an agency's administrator those
        addressed to their agency."""
        with dbmod.reading(state.settings.db) as tx:
            policy = state.policy.hotline
            return hotline.visible_flags(
                tx, principal, int(time.time() * 1000), within_days=within_days or policy.within_days, window_days=window_days or policy.window_days,
                kind=kind, limit=limit,
            )  # fmt: skip

    @post("/{ticket_id:str}/finding", sync_to_thread=True, status_code=201, guards=[supervisors], responses=answers(NotFound, Conflict, Invalid))
    def open_finding(self, state: State, ticket_id: TicketPath, data: JSONBody[FlagFindingIn], principal: CurrentPrincipal) -> FindingView:
        """Open a finding from a flagged ticket, once (source hotline, the ticket as its reference)."""
        with dbmod.writing(state.settings.db) as tx:
            return hotline.open_finding(tx, ticket_id, data, principal, int(time.time() * 1000), state.policy.hotline)


ROUTES = [HotlineController]
