"""Account management: list, disable, enable, reset a password; who may manage whom; every change recorded.

A supervisor manages every account; an agency's administrator manages the officers and administrators of
their own agency, never a supervisor, an enterprise or another agency's staff. Nobody disables their own
account. Disabling an account or resetting its password ends its sessions in the same transaction, so
its next request is refused at once (``principal_of`` also checks ``disabled_ms``). Each change is
appended to ``account_changes`` with who did it and when; the command line records ``cli:<OS user>``.
"""

from __future__ import annotations

import getpass
import sqlite3
from dataclasses import dataclass
from typing import Literal

from server.auth import MIN_PASSWORD_LENGTH, Principal, forget_failures
from server.errors import Forbidden, Invalid, NotFound

Action = Literal["created", "disabled", "enabled", "password_reset"]
#: Roles an agency's administrator may manage (in their own agency).
AGENCY_MANAGED_ROLES = ("officer", "agency_admin")


@dataclass(frozen=True, slots=True)
class Account:
    """A user account as its managers see it (never its password hash)."""

    username: str
    role: str
    agency_id: str | None
    agency_name: str | None
    officer_id: str | None
    officer_name: str | None
    credit_code: str | None
    enterprise_name: str | None
    created_ms: int
    disabled_ms: int | None
    active_sessions: int
    last_action: str | None
    last_by: str | None
    last_at_ms: int | None


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change of an account."""

    action: str
    by: str
    at_ms: int


_SELECT = """
SELECT u.username, u.role, u.agency_id, a.name, u.officer_id, o.name, u.credit_code, e.name, u.created_ms, u.disabled_ms,
       (SELECT count(*) FROM sessions s WHERE s.username = u.username AND s.expires_ms > ?),
       c.action, c.by_username, c.at_ms
FROM users u
LEFT JOIN agencies a ON a.agency_id = u.agency_id
LEFT JOIN officers o ON o.officer_id = u.officer_id
LEFT JOIN enterprises e ON e.credit_code = u.credit_code
LEFT JOIN account_changes c ON c.id = (SELECT max(id) FROM account_changes WHERE username = u.username)
"""


def list_accounts(con: sqlite3.Connection, viewer: Principal, now_ms: int) -> list[Account]:
    """The accounts the viewer manages: all for a supervisor, their agency's staff for its administrator."""
    if viewer.role == "supervisor":
        rows = con.execute(_SELECT + " ORDER BY u.role, u.agency_id, u.username", (now_ms,)).fetchall()
    elif viewer.role == "agency_admin":
        rows = con.execute(
            _SELECT + f" WHERE u.agency_id = ? AND u.role IN ({', '.join('?' * len(AGENCY_MANAGED_ROLES))}) ORDER BY u.role, u.username",
            (now_ms, viewer.agency_id, *AGENCY_MANAGED_ROLES),
        ).fetchall()
    else:
        raise Forbidden(f"角色 {viewer.role} 无权管理账号 / role {viewer.role} may not manage accounts")
    return [Account(*r) for r in rows]


def get_account(con: sqlite3.Connection, username: str, now_ms: int) -> Account:
    """One account, or NotFound."""
    row = con.execute(_SELECT + " WHERE u.username = ?", (now_ms, username)).fetchone()
    if row is None:
        raise NotFound(f"没有账号 {username!r} / no account {username!r}")
    return Account(*row)


def check_may_manage(actor: Principal, target: Account) -> None:
    """Forbidden unless the actor manages the target's account."""
    if actor.role == "supervisor":
        return
    if actor.role != "agency_admin":
        raise Forbidden(f"角色 {actor.role} 无权管理账号 / role {actor.role} may not manage accounts")
    if target.role not in AGENCY_MANAGED_ROLES:
        raise Forbidden("机关管理员只能管理本机关的执法人员和管理员账号 / an agency administrator manages only officers and administrators of their agency")
    if target.agency_id != actor.agency_id:
        raise Forbidden("该账号属于其他执法机关 / this account belongs to another agency")


def account_changes(con: sqlite3.Connection, username: str) -> list[Change]:
    """Every recorded change of an account, oldest first."""
    rows = con.execute("SELECT action, by_username, at_ms FROM account_changes WHERE username = ? ORDER BY id", (username,)).fetchall()
    return [Change(*r) for r in rows]


def record_change(con: sqlite3.Connection, username: str, action: Action, by: str, now_ms: int) -> None:
    """Append one change of an account to the record."""
    con.execute("INSERT INTO account_changes(username, action, by_username, at_ms) VALUES (?, ?, ?, ?)", (username, action, by, now_ms))


def _exists(con: sqlite3.Connection, username: str) -> None:
    if con.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is None:
        raise NotFound(f"没有账号 {username!r} / no account {username!r}")


def disable_account(con: sqlite3.Connection, username: str, by: str, now_ms: int) -> bool:
    """Disable an account and end its sessions (call inside a transaction); False if it already was."""
    if username == by:
        raise Forbidden("不能停用自己的账号 / you cannot disable your own account")
    _exists(con, username)
    changed = con.execute("UPDATE users SET disabled_ms = ? WHERE username = ? AND disabled_ms IS NULL", (now_ms, username)).rowcount == 1
    con.execute("DELETE FROM sessions WHERE username = ?", (username,))
    if changed:
        record_change(con, username, "disabled", by, now_ms)
    return changed


def enable_account(con: sqlite3.Connection, username: str, by: str, now_ms: int) -> bool:
    """Enable a disabled account (call inside a transaction); False if it was not disabled."""
    _exists(con, username)
    changed = con.execute("UPDATE users SET disabled_ms = NULL WHERE username = ? AND disabled_ms IS NOT NULL", (username,)).rowcount == 1
    if changed:
        record_change(con, username, "enabled", by, now_ms)
    return changed


def check_new_password(password: str) -> None:
    """Invalid unless the password is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符 / a password needs at least {MIN_PASSWORD_LENGTH} characters")


def reset_password(con: sqlite3.Connection, username: str, password_hash: str, by: str, now_ms: int) -> None:
    """Set a new password (hashed beforehand, outside the transaction), end the account's sessions and
    clear its failed sign-ins (call inside a transaction)."""
    _exists(con, username)
    con.execute("UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username))
    con.execute("DELETE FROM sessions WHERE username = ?", (username,))
    forget_failures(con, username)  # the account's own count and every (account, address) pair's
    record_change(con, username, "password_reset", by, now_ms)


def cli_actor() -> str:
    """Who runs the command line, as recorded in ``account_changes``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in the environment or the password database (a bare container)
        return "cli"
