"""HTTP API of enterprises' ratings of inspections (the rules: server/supervision/ratings.py)."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from server import db as dbmod
from server.console.auth import CurrentPrincipal
from server.console.guards import MANAGERS, requires
from server.errors import Conflict, NotFound, answers
from server.supervision.ratings import RatingIn, RatingView, list_ratings, rate


class RatingController(Controller):
    """An enterprise rates each inspection it received, once it has ended; supervisors and agencies read them."""

    path = "/api/v1/ratings"
    tags = ["supervision"]

    @post("/", sync_to_thread=True, status_code=201, guards=[requires("enterprise")], responses=answers(NotFound, Conflict))
    def rate(self, state: State, data: JSONBody[RatingIn], principal: CurrentPrincipal) -> RatingView:
        """Rate one of the enterprise's own ended inspections, 1 to 5 with a comment: once per inspection."""
        with dbmod.writing(state.settings.db) as tx:
            return rate(tx, data, principal, int(time.time() * 1000))

    @get("/", sync_to_thread=True, guards=[requires("enterprise", *MANAGERS)])
    def ratings(self, state: State, principal: CurrentPrincipal, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> list[RatingView]:
        """Ratings, newest first: an enterprise its own, an agency's administrator its agency's inspections', a supervisor all."""
        with dbmod.reading(state.settings.db) as tx:
            return list_ratings(tx, principal, limit=limit)


ROUTES = [RatingController]
