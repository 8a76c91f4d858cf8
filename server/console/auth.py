"""Users, roles, sign-in and who may see what.

Roles: ``officer`` (their own scans and inspections), ``agency_admin`` (everything of their agency and
nothing of another's), ``supervisor`` (everything), ``enterprise`` (the inspections of itself).
Passwords are hashed with scrypt (stdlib, OpenSSL). A wrong user name and a wrong password get the same
answer and take the same time. Sessions are random tokens, stored hashed, sent as an HttpOnly cookie
or an ``Authorization: Bearer`` header.

Failed sign-ins are counted in the database (the server may run as several processes), as OWASP
recommends, per (account, client address) pair with a low threshold, per address with a high one and per
account with a much higher one, each with a wait that doubles after each further failure
(``SignInLimits``). So a guesser at one address soon waits for that account, but cannot keep its owner,
signing in from another address, out; only guesses spread over many addresses lock the account itself.
Every attempt is counted *before* its password is checked, so parallel guesses cannot slip past a limit;
a success then takes its own counts back and clears its pair's. An attempt during a wait is refused
unchecked (checking it would tell a guesser, by the wait, whether the guess was right); during a pair's or
an address's wait it counts as a failure of both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from server.errors import TooManyRequests
from server import db as dbmod
from server.settings import SignInLimits
from server.storage import users as user_store
from server.storage.engine import Tx

Role = Literal["officer", "agency_admin", "supervisor", "enterprise", "monitor"]
ROLES: tuple[str, ...] = ("officer", "agency_admin", "supervisor", "enterprise", "monitor")  # monitor: 行政执法监督员
COOKIE = "fe_session"
SESSION_TTL_MS = 12 * 3600 * 1000
#: scrypt cost (2**14 x 8: ~30 ms and 16 MiB here, per OWASP's minimum for scrypt).
_N, _R, _P = 2**14, 8, 1
_DUMMY_HASH = "scrypt$16384$8$1$" + base64.b64encode(b"0" * 16).decode() + "$" + base64.b64encode(b"0" * 32).decode()
WRONG_CREDENTIALS = "用户名或密码错误 / wrong user name or password"
MIN_PASSWORD_LENGTH = 8
#: The keys failed sign-ins are counted under: an account from any address, a client address whatever
#: the account, and one account tried from one address.
ACCOUNT, ADDRESS, PAIR = "account", "address", "pair"
#: Between the address and the user name in a pair's key (a newline never occurs in an address).
PAIR_SEPARATOR = "\n"
#: Doubling stops growing the exponent here (the wait is capped long before; keeps the integers small).
_MAX_DOUBLINGS = 32


class AuthError(ValueError):
    """A user that cannot be created, with the reason."""


class SignInThrottled(TooManyRequests):
    """Too many failed sign-ins for this account or address: wait ``retry_after_s`` seconds (429 with Retry-After)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"登录失败次数过多，请 {retry_after_s} 秒后再试 / too many failed sign-ins, try again in {retry_after_s} s", retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


def hash_password(password: str) -> str:
    """A salted scrypt hash of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Compare in constant time."""
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking."""

    username: str
    role: str
    agency_id: str | None = None
    officer_id: str | None = None
    credit_code: str | None = None

    def require(self, *roles: str) -> None:
        """403 unless the principal has one of the roles."""
        if self.role not in roles:
            raise PermissionDeniedException(f"角色 {self.role} 无权执行此操作 / role {self.role} may not do this (needs {' or '.join(roles)})")

    def may_see_agency(self, agency_id: str | None) -> bool:
        """A supervisor sees every agency; an agency's staff only their own."""
        return self.role == "supervisor" or (agency_id is not None and agency_id == self.agency_id)


#: How a handler asks for the signed-in principal (provided app-wide by ``provide_principal``).
CurrentPrincipal = NamedDependency[Principal]


def _token_hash(token: str) -> str:
    """Sessions are stored by the SHA-256 of their token: a copy of the table signs nobody in."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    con: Tx,
    username: str,
    password: str,
    role: str,
    *,
    agency_id: str | None = None,
    officer_id: str | None = None,
    credit_code: str | None = None,
    password_hash: str | None = None,
) -> None:
    """Create a user (``password_hash``: one made earlier by hash_password for this password)."""
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if role in ("officer", "agency_admin") and not agency_id:
        raise AuthError(f"a {role} belongs to an agency: give --agency")
    if role == "officer" and not officer_id:
        raise AuthError("an officer user names its officer id: give --officer")
    if role == "enterprise" and not credit_code:
        raise AuthError("an enterprise user names its credit code: give --enterprise")
    stored = user_store.insert_user(
        con, username=username, role=role, agency_id=agency_id, officer_id=officer_id, credit_code=credit_code,
        password_hash=password_hash or hash_password(password), created_ms=int(time.time() * 1000),
    )
    if not stored:
        raise AuthError(f"user {username!r} already exists")


def _verify(tx: Tx, username: str, password: str) -> Principal | None:
    """The principal whose password this is, or None (the same time for a wrong name or password)."""
    found = user_store.active_user(tx, username)
    ok = check_password(password, found[1] if found else _DUMMY_HASH)  # always hash: no timing difference
    if found is None or not ok:
        return None
    return Principal(*found[0])


def _new_session(tx: Tx, username: str, now: int) -> str | None:
    """A session token for the user, or None if the account was disabled meanwhile (a disable or password reset
    running at the same moment is waited for, so its end of every session is never undone by this one)."""
    token = secrets.token_urlsafe(32)
    user_store.lock_user(tx, username)
    stored = user_store.insert_session(tx, token_hash=_token_hash(token), username=username, created_ms=now, expires_ms=now + SESSION_TTL_MS)
    return token if stored else None


def sign_in(tx: Tx, username: str, password: str) -> tuple[str, Principal] | None:
    """A new session token and the principal, or None (the same for a wrong name or password); no limits."""
    p = _verify(tx, username, password)
    token = _new_session(tx, username, int(time.time() * 1000)) if p else None
    return (token, p) if p and token else None


@dataclass(frozen=True, slots=True)
class _Counted:
    """One attempt as counted in advance: the longest wait it met, and the lock ends (before, after) it
    may have moved, per kind of key, so that a success can put them back."""

    wait_ms: int
    locks: dict[str, tuple[int, int]]


def pair_key(username: str, address: str) -> str:
    """The key of one account tried from one address (a newline never occurs in an address)."""
    return f"{address}{PAIR_SEPARATOR}{username}"


def _lock_end(tx: Tx, kind: str, key: str) -> int:
    row = user_store.failure(tx, kind, key)
    return row[2] if row else 0


def _count_failure(tx: Tx, kind: str, key: str, threshold: int, limits: SignInLimits, now: int) -> tuple[int, int]:
    """Count one failure under a key; returns its lock end before and after."""
    failures, start, locked_until = user_store.failure(tx, kind, key) or (0, now, 0)
    window_ms = int(limits.window_s * 1000)
    if now >= max(start, locked_until) + window_ms:  # a whole window without failures or waits: start afresh
        failures, start = 0, now
    failures += 1
    new_lock = locked_until
    if failures >= threshold:
        doublings = min(failures - threshold, _MAX_DOUBLINGS)
        new_lock = max(locked_until, now + int(min(limits.backoff_s * 2**doublings, limits.backoff_max_s) * 1000))
    user_store.put_failure(tx, kind=kind, key=key, failures=failures, window_start_ms=start, last_failure_ms=now, locked_until_ms=new_lock)
    return locked_until, new_lock


def _count_attempt(tx: Tx, username: str, address: str, limits: SignInLimits, now: int) -> _Counted:
    """Count an attempt as a failure before its password is checked (OWASP: per account and address
    pair, per address, per account, each with its own threshold).

    While this pair or this address must wait, the attempt is refused unchecked and counts on both
    (a guesser's own wait grows), never on the account: one address cannot lock an account's owner
    out. While only the account waits (a guesser spread over many addresses), the attempt is refused
    unchecked and counts on the address alone: the owner's own tries do not make the wait longer.
    Otherwise it counts on all three, and a success takes its counts back (``_forgive``).
    Every count is read and written back under one lock (several server processes count at once)."""
    user_store.lock_failures(tx)
    pair = pair_key(username, address)
    pair_lock, address_lock, account_lock = (_lock_end(tx, kind, key) for kind, key in ((PAIR, pair), (ADDRESS, address), (ACCOUNT, username)))
    locks: dict[str, tuple[int, int]] = {}
    if pair_lock > now or address_lock > now:
        locks[PAIR] = _count_failure(tx, PAIR, pair, limits.pair_failures, limits, now)
        locks[ADDRESS] = _count_failure(tx, ADDRESS, address, limits.address_failures, limits, now)
        waits = [after for before, after in locks.values() if before > now] + [account_lock]
    elif account_lock > now:
        locks[ADDRESS] = _count_failure(tx, ADDRESS, address, limits.address_failures, limits, now)
        waits = [account_lock] + ([locks[ADDRESS][1]] if locks[ADDRESS][0] > now else [])
    else:
        locks[PAIR] = _count_failure(tx, PAIR, pair, limits.pair_failures, limits, now)
        locks[ADDRESS] = _count_failure(tx, ADDRESS, address, limits.address_failures, limits, now)
        locks[ACCOUNT] = _count_failure(tx, ACCOUNT, username, limits.account_failures, limits, now)
        waits = []
    # Past a window and the longest wait a row can no longer matter: keep the table small.
    user_store.delete_failures_before(tx, now - int((limits.window_s + limits.backoff_max_s) * 1000))
    return _Counted(wait_ms=max((end - now for end in waits), default=0), locks=locks)


def _forgive(tx: Tx, username: str, address: str, counted: _Counted) -> None:
    """A success: clear this pair's failures, and take this attempt's count back from its address and
    its account (failures from other addresses stay counted on the account)."""
    user_store.lock_failures(tx)
    user_store.delete_failure(tx, PAIR, pair_key(username, address))
    for kind, key in ((ADDRESS, address), (ACCOUNT, username)):
        before, after = counted.locks[kind]
        user_store.take_back_failure(tx, kind=kind, key=key, moved_from_ms=before, moved_to_ms=after)


def forget_failures(tx: Tx, username: str) -> None:
    """Clear an account's failed sign-ins, its own and those of every address it was tried from (a password reset)."""
    user_store.lock_failures(tx)
    user_store.delete_failures_ending_with(tx, PAIR, PAIR_SEPARATOR, username)  # every (address, this account) pair
    user_store.delete_failure(tx, ACCOUNT, username)


def sign_in_limited(
    db_path: str | Path, username: str, password: str, *, address: str, limits: SignInLimits, now_ms: int | None = None
) -> tuple[str, Principal] | None:
    """``sign_in`` behind the failure limits of the (account, address) pair, the address and the account.

    Raises SignInThrottled while one must wait (the same for an account that does not exist)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with dbmod.writing(db_path) as tx:
        counted = _count_attempt(tx, username, address, limits, now)
    if counted.wait_ms > 0:
        raise SignInThrottled(max(1, math.ceil(counted.wait_ms / 1000)))
    with dbmod.reading(db_path) as tx:  # scrypt outside any write transaction
        p = _verify(tx, username, password)
    if p is None:
        return None
    with dbmod.writing(db_path) as tx:
        token = _new_session(tx, username, now)
        if token is not None:
            _forgive(tx, username, address, counted)
    return (token, p) if token else None


def sign_out(tx: Tx, token: str) -> None:
    """End a session."""
    user_store.delete_session(tx, _token_hash(token))


def principal_for_token(tx: Tx, token: str, now_ms: int) -> Principal | None:
    """The principal of a session token, unless the session has expired or ended or the account is disabled."""
    row = user_store.session_principal(tx, _token_hash(token), now_ms)
    return Principal(*row) if row else None


def bearer_or_cookie(connection: ASGIConnection) -> str | None:  # type: ignore[type-arg]
    """The session token a request carries (Authorization: Bearer, else the session cookie), or None."""
    return _token(connection)


def _token(connection: ASGIConnection) -> str | None:  # type: ignore[type-arg]
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.cookies.get(COOKIE)


def principal_of(connection: ASGIConnection) -> Principal | None:  # type: ignore[type-arg]
    """The signed-in principal of a request, or None."""
    token = _token(connection)
    if not token:
        return None
    with dbmod.reading(connection.app.state.settings.db) as tx:
        return principal_for_token(tx, token, int(time.time() * 1000))


#: Where a request keeps its principal once read: a key of its own ASGI scope, which is made for each request
#: (not the scope's "state", which a server may share with the lifespan's).
_SIGNED_IN = "fe_principal"
SIGN_IN_FIRST = "请先登录 / sign in first"


def signed_in(connection: ASGIConnection) -> Principal | None:  # type: ignore[type-arg]
    """``principal_of``, read once per request: a role guard and the ``principal`` dependency share it."""
    scope = cast("dict[str, Any]", connection.scope)
    if _SIGNED_IN not in scope:
        scope[_SIGNED_IN] = principal_of(connection)
    return cast("Principal | None", scope[_SIGNED_IN])


def require_signed_in(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """The signed-in principal, or 401."""
    p = signed_in(connection)
    if p is None:
        raise NotAuthorizedException(SIGN_IN_FIRST)
    return p


async def provide_principal(request: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """Dependency: the signed-in principal, or 401. A route whose guard already read it (``signed_in`` keeps it in the
    request's scope) gets it on the event loop, without another hand-off to a worker thread; otherwise the session is
    read in a worker thread (a database read never runs on the event loop)."""
    scope = cast("dict[str, Any]", request.scope)
    if _SIGNED_IN in scope:
        p = cast("Principal | None", scope[_SIGNED_IN])
        if p is None:
            raise NotAuthorizedException(SIGN_IN_FIRST)
        return p
    import anyio.to_thread

    return await anyio.to_thread.run_sync(require_signed_in, request)
