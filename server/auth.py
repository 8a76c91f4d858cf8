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
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from server import db as dbmod
from server.settings import SignInLimits

Role = Literal["officer", "agency_admin", "supervisor", "enterprise"]
ROLES: tuple[str, ...] = ("officer", "agency_admin", "supervisor", "enterprise")
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
#: Doubling stops growing the exponent here (the wait is capped long before; keeps the integers small).
_MAX_DOUBLINGS = 32


class AuthError(ValueError):
    """A user that cannot be created, with the reason."""


class SignInThrottled(Exception):
    """Too many failed sign-ins for this account or address: wait ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"登录失败次数过多，请 {retry_after_s} 秒后再试 / too many failed sign-ins, try again in {retry_after_s} s")
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


def add_user(
    con: sqlite3.Connection,
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
    if con.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
        raise AuthError(f"user {username!r} already exists")
    con.execute(
        "INSERT INTO users(username, role, agency_id, officer_id, credit_code, password_hash, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (username, role, agency_id, officer_id, credit_code, password_hash or hash_password(password), int(time.time() * 1000)),
    )


def _verify(con: sqlite3.Connection, username: str, password: str) -> Principal | None:
    """The principal whose password this is, or None (the same time for a wrong name or password)."""
    row = con.execute(
        "SELECT username, role, agency_id, officer_id, credit_code, password_hash FROM users WHERE username = ? AND disabled_ms IS NULL", (username,)
    ).fetchone()
    ok = check_password(password, row[5] if row else _DUMMY_HASH)  # always hash: no timing difference
    if row is None or not ok:
        return None
    return Principal(username=row[0], role=row[1], agency_id=row[2], officer_id=row[3], credit_code=row[4])


def _new_session(con: sqlite3.Connection, username: str, now: int) -> str | None:
    """A session token for the user, or None if the account was disabled meanwhile."""
    token = secrets.token_urlsafe(32)
    cur = con.execute(
        "INSERT INTO sessions(token_hash, username, created_ms, expires_ms) SELECT ?, username, ?, ? FROM users WHERE username = ? AND disabled_ms IS NULL",
        (hashlib.sha256(token.encode()).hexdigest(), now, now + SESSION_TTL_MS, username),
    )
    return token if cur.rowcount == 1 else None


def sign_in(con: sqlite3.Connection, username: str, password: str) -> tuple[str, Principal] | None:
    """A new session token and the principal, or None (the same for a wrong name or password); no limits."""
    p = _verify(con, username, password)
    token = _new_session(con, username, int(time.time() * 1000)) if p else None
    return (token, p) if p and token else None


@dataclass(frozen=True, slots=True)
class _Counted:
    """One attempt as counted in advance: the longest wait it met, and the lock ends (before, after) it
    may have moved, per kind of key, so that a success can put them back."""

    wait_ms: int
    locks: dict[str, tuple[int, int]]


def pair_key(username: str, address: str) -> str:
    """The key of one account tried from one address (a newline never occurs in an address)."""
    return f"{address}\n{username}"


def _lock_end(con: sqlite3.Connection, kind: str, key: str) -> int:
    row = con.execute("SELECT locked_until_ms FROM sign_in_failures WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return row[0] if row else 0


def _count_failure(con: sqlite3.Connection, kind: str, key: str, threshold: int, limits: SignInLimits, now: int) -> tuple[int, int]:
    """Count one failure under a key; returns its lock end before and after."""
    row = con.execute("SELECT failures, window_start_ms, locked_until_ms FROM sign_in_failures WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    failures, start, locked_until = row or (0, now, 0)
    window_ms = int(limits.window_s * 1000)
    if now >= max(start, locked_until) + window_ms:  # a whole window without failures or waits: start afresh
        failures, start = 0, now
    failures += 1
    new_lock = locked_until
    if failures >= threshold:
        doublings = min(failures - threshold, _MAX_DOUBLINGS)
        new_lock = max(locked_until, now + int(min(limits.backoff_s * 2**doublings, limits.backoff_max_s) * 1000))
    con.execute(
        "INSERT INTO sign_in_failures(kind, key, failures, window_start_ms, last_failure_ms, locked_until_ms) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures, window_start_ms = excluded.window_start_ms,"
        " last_failure_ms = excluded.last_failure_ms, locked_until_ms = excluded.locked_until_ms",
        (kind, key, failures, start, now, new_lock),
    )
    return locked_until, new_lock


def _count_attempt(con: sqlite3.Connection, username: str, address: str, limits: SignInLimits, now: int) -> _Counted:
    """Count an attempt as a failure before its password is checked (OWASP: per account and address
    pair, per address, per account, each with its own threshold).

    While this pair or this address must wait, the attempt is refused unchecked and counts on both
    (a guesser's own wait grows), never on the account: one address cannot lock an account's owner
    out. While only the account waits (a guesser spread over many addresses), the attempt is refused
    unchecked and counts on the address alone: the owner's own tries do not make the wait longer.
    Otherwise it counts on all three, and a success takes its counts back (``_forgive``)."""
    pair = pair_key(username, address)
    pair_lock, address_lock, account_lock = (_lock_end(con, kind, key) for kind, key in ((PAIR, pair), (ADDRESS, address), (ACCOUNT, username)))
    locks: dict[str, tuple[int, int]] = {}
    if pair_lock > now or address_lock > now:
        locks[PAIR] = _count_failure(con, PAIR, pair, limits.pair_failures, limits, now)
        locks[ADDRESS] = _count_failure(con, ADDRESS, address, limits.address_failures, limits, now)
        waits = [after for before, after in locks.values() if before > now] + [account_lock]
    elif account_lock > now:
        locks[ADDRESS] = _count_failure(con, ADDRESS, address, limits.address_failures, limits, now)
        waits = [account_lock] + ([locks[ADDRESS][1]] if locks[ADDRESS][0] > now else [])
    else:
        locks[PAIR] = _count_failure(con, PAIR, pair, limits.pair_failures, limits, now)
        locks[ADDRESS] = _count_failure(con, ADDRESS, address, limits.address_failures, limits, now)
        locks[ACCOUNT] = _count_failure(con, ACCOUNT, username, limits.account_failures, limits, now)
        waits = []
    # Past a window and the longest wait a row can no longer matter: keep the table small.
    con.execute("DELETE FROM sign_in_failures WHERE last_failure_ms < ?", (now - int((limits.window_s + limits.backoff_max_s) * 1000),))
    return _Counted(wait_ms=max((end - now for end in waits), default=0), locks=locks)


def _forgive(con: sqlite3.Connection, username: str, address: str, counted: _Counted) -> None:
    """A success: clear this pair's failures, and take this attempt's count back from its address and
    its account (failures from other addresses stay counted on the account)."""
    con.execute("DELETE FROM sign_in_failures WHERE kind = ? AND key = ?", (PAIR, pair_key(username, address)))
    for kind, key in ((ADDRESS, address), (ACCOUNT, username)):
        before, after = counted.locks[kind]
        con.execute(
            "UPDATE sign_in_failures SET failures = max(failures - 1, 0), locked_until_ms = CASE WHEN locked_until_ms = ? THEN ? ELSE locked_until_ms END"
            " WHERE kind = ? AND key = ?",
            (after, before, kind, key),
        )


def forget_failures(con: sqlite3.Connection, username: str) -> None:
    """Clear an account's failed sign-ins, its own and those of every address it was tried from (a password reset)."""
    con.execute("DELETE FROM sign_in_failures WHERE kind = ? AND key = ?", (ACCOUNT, username))
    con.execute("DELETE FROM sign_in_failures WHERE kind = ? AND substr(key, instr(key, char(10)) + 1) = ?", (PAIR, username))


def sign_in_limited(
    db_path: str | Path, username: str, password: str, *, address: str, limits: SignInLimits, now_ms: int | None = None
) -> tuple[str, Principal] | None:
    """``sign_in`` behind the failure limits of the (account, address) pair, the address and the account.

    Raises SignInThrottled while one must wait (the same for an account that does not exist)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with dbmod.writing(db_path) as con:
        counted = _count_attempt(con, username, address, limits, now)
    if counted.wait_ms > 0:
        raise SignInThrottled(max(1, math.ceil(counted.wait_ms / 1000)))
    with dbmod.reading(db_path) as con:  # scrypt outside any write transaction
        p = _verify(con, username, password)
    if p is None:
        return None
    with dbmod.writing(db_path) as con:
        token = _new_session(con, username, now)
        if token is not None:
            _forgive(con, username, address, counted)
    return (token, p) if token else None


def sign_out(con: sqlite3.Connection, token: str) -> None:
    """End a session."""
    con.execute("DELETE FROM sessions WHERE token_hash = ?", (hashlib.sha256(token.encode()).hexdigest(),))


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
    with dbmod.reading(connection.app.state.settings.db) as con:
        row = con.execute(
            "SELECT u.username, u.role, u.agency_id, u.officer_id, u.credit_code FROM sessions s JOIN users u USING (username)"
            " WHERE s.token_hash = ? AND s.expires_ms > ? AND u.disabled_ms IS NULL",
            (hashlib.sha256(token.encode()).hexdigest(), int(time.time() * 1000)),
        ).fetchone()
    return Principal(*row) if row else None


def provide_principal(request: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    """Dependency: the signed-in principal, or 401."""
    p = principal_of(request)
    if p is None:
        raise NotAuthorizedException("请先登录 / sign in first")
    return p
