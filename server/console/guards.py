"""Role guards: who may reach a route is stated on its controller or decorator (``guards=[requires(...)]``),
not checked by a call in each handler. Checks that depend on a record (an agency's own, an officer's own)
stay in the handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from server.console.auth import require_signed_in

Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]  # type: ignore[type-arg]
#: The roles that manage: supervisors (everything) and agency administrators (their agency's share).
MANAGERS = ("supervisor", "agency_admin")


def requires(*roles: str) -> Guard:
    """A guard: 401 without a session, 403 (naming the roles needed) for a principal of another role."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        principal = await anyio.to_thread.run_sync(require_signed_in, connection)  # a database read: off the event loop
        principal.require(*roles)

    guard.__name__ = guard.__qualname__ = f"requires({', '.join(roles)})"
    return guard


#: The guards used most.
supervisors = requires("supervisor")
managers = requires(*MANAGERS)
staff = requires(*MANAGERS, "officer")
officers = requires("officer")
