"""Sign-in, sign-out and who am I."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.params import JSONBody

from server import db as dbmod
from server.errors import TooManyRequests, Unauthenticated, answers
from server.console.auth import COOKIE, SESSION_TTL_MS, WRONG_CREDENTIALS, CurrentPrincipal, Principal, sign_in_limited, sign_out

#: The client address counted when the server cannot tell (no peer address, e.g. a Unix socket).
UNKNOWN_ADDRESS = "unknown"


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Credentials."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Me(msgspec.Struct, kw_only=True):
    """The signed-in user."""

    username: str
    role: str
    agency_id: str | None
    officer_id: str | None
    credit_code: str | None


class SignedOut(msgspec.Struct, kw_only=True):
    """A session ended."""

    status: str


class LoginOut(Me, kw_only=True):
    """A new session (the token is also set as an HttpOnly cookie)."""

    token: str


def _me(p: Principal) -> Me:
    return Me(username=p.username, role=p.role, agency_id=p.agency_id, officer_id=p.officer_id, credit_code=p.credit_code)


@post(
    "/api/v1/auth/login",
    sync_to_thread=True,
    status_code=200,
    tags=["auth"],
    responses=answers(Unauthenticated, TooManyRequests),  # 429 with Retry-After, in seconds
)
def login(request: Request, state: State, data: JSONBody[LoginIn]) -> Response[LoginOut]:
    """Sign in; a wrong user name and a wrong password get the same answer. Failures are limited per account and client address (429)."""
    address = request.client.host if request.client else UNKNOWN_ADDRESS
    result = sign_in_limited(state.settings.db, data.username, data.password, address=address, limits=state.settings.sign_in_limits)  # 429: SignInThrottled
    if result is None:
        raise Unauthenticated(WRONG_CREDENTIALS)
    token, p = result
    cookie = Cookie(key=COOKIE, value=token, httponly=True, samesite="lax", max_age=SESSION_TTL_MS // 1000, path="/", secure=request.url.scheme == "https")  # Secure over HTTPS
    return Response(LoginOut(token=token, **msgspec.structs.asdict(_me(p))), cookies=[cookie])


@post("/api/v1/auth/logout", sync_to_thread=True, status_code=200, tags=["auth"])
def logout(request: Request, state: State, principal: CurrentPrincipal) -> Response[SignedOut]:
    """End the session."""
    token = request.headers.get("authorization", "")[7:].strip() or request.cookies.get(COOKIE, "")
    with dbmod.writing(state.settings.db) as tx:
        sign_out(tx, token)
    response = Response(SignedOut(status="signed out"))
    response.delete_cookie(COOKIE, path="/")
    return response


@get("/api/v1/auth/me", sync_to_thread=False, tags=["auth"])
def me(principal: CurrentPrincipal) -> Me:
    """Who is signed in."""
    return _me(principal)
