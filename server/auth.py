"""Users, roles, sign-in and who may see what.

Roles: ``officer`` (their own scans and inspections), ``agency_admin`` (everything of their agency and
nothing of another's), ``supervisor`` (everything), ``enterprise`` (the inspections of itself).
Passwords are hashed with scrypt (stdlib, OpenSSL). A wrong user name and a wrong password get the same
answer and take the same time. Sessions are random tokens, stored hashed, sent as an HttpOnly cookie
or an ``Authorization: Bearer`` header. Sign-in attempts are rate limited per client (``app.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from server import db as dbmod

Role = Literal["officer", "agency_admin", "supervisor", "enterprise"]
ROLES: tuple[str, ...] = ("officer", "agency_admin", "supervisor", "enterprise")
COOKIE = "fe_session"
SESSION_TTL_MS = 12 * 3600 * 1000
#: scrypt cost (2**14 x 8: ~30 ms and 16 MiB here, per OWASP's minimum for scrypt).
_N, _R, _P = 2**14, 8, 1
_DUMMY_HASH = "scrypt$16384$8$1$" + base64.b64encode(b"0" * 16).decode() + "$" + base64.b64encode(b"0" * 32).decode()
WRONG_CREDENTIALS = "用户名或密码错误 / wrong user name or password"


class AuthError(ValueError):
    """A user that cannot be created, with the reason."""


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
    if len(password) < 8:
        raise AuthError("a password needs at least 8 characters")
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


def sign_in(con: sqlite3.Connection, username: str, password: str) -> tuple[str, Principal] | None:
    """A new session token and the principal, or None (the same for a wrong name or password)."""
    row = con.execute(
        "SELECT username, role, agency_id, officer_id, credit_code, password_hash FROM users WHERE username = ? AND disabled_ms IS NULL", (username,)
    ).fetchone()
    ok = check_password(password, row[5] if row else _DUMMY_HASH)  # always hash: no timing difference
    if row is None or not ok:
        return None
    token = secrets.token_urlsafe(32)
    now = int(time.time() * 1000)
    con.execute(
        "INSERT INTO sessions(token_hash, username, created_ms, expires_ms) VALUES (?, ?, ?, ?)", (hashlib.sha256(token.encode()).hexdigest(), username, now, now + SESSION_TTL_MS)
    )
    return token, Principal(username=row[0], role=row[1], agency_id=row[2], officer_id=row[3], credit_code=row[4])


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
    with dbmod.reading(connection.app.state.settings.db_path) as con:
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
