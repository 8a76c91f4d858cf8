"""Account management: list, disable, enable, reset a password; who may manage whom; every change recorded.

A supervisor manages every account; an agency's administrator manages the officers and administrators of
their own agency, never a supervisor, an enterprise or another agency's staff. Nobody disables their own
account. Disabling an account or resetting its password ends its sessions in the same transaction, so
its next request is refused at once (``principal_of`` also checks ``disabled_ms``). Each change is
appended to ``account_changes`` with who did it and when; the command line records ``cli:<OS user>``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

from server.console.auth import MIN_PASSWORD_LENGTH, Principal, forget_failures
from server.errors import Forbidden, Invalid, NotFound
from server.storage import users as user_store
from server.storage.engine import Tx

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


def list_accounts(tx: Tx, viewer: Principal, now_ms: int) -> list[Account]:
    """The accounts the viewer manages: all for a supervisor, their agency's staff for its administrator."""
    if viewer.role == "supervisor":
        rows = user_store.all_accounts(tx, now_ms)
    elif viewer.role == "agency_admin":
        rows = user_store.agency_accounts(tx, viewer.agency_id, AGENCY_MANAGED_ROLES, now_ms)
    else:
        raise Forbidden(f"角色 {viewer.role} 无权管理账号 / role {viewer.role} may not manage accounts")
    return [Account(*r) for r in rows]


def get_account(tx: Tx, username: str, now_ms: int) -> Account:
    """One account, or NotFound."""
    row = user_store.account(tx, username, now_ms)
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


def account_changes(tx: Tx, username: str) -> list[Change]:
    """Every recorded change of an account, oldest first."""
    return [Change(*r) for r in user_store.changes(tx, username)]


def record_change(tx: Tx, username: str, action: Action, by: str, now_ms: int) -> None:
    """Append one change of an account to the record."""
    user_store.insert_change(tx, username=username, action=action, by=by, at_ms=now_ms)


def _exists(tx: Tx, username: str) -> None:
    if not user_store.user_exists(tx, username):
        raise NotFound(f"没有账号 {username!r} / no account {username!r}")


def disable_account(tx: Tx, username: str, by: str, now_ms: int) -> bool:
    """Disable an account and end its sessions (call inside a transaction); False if it already was.

    The account is locked first: a sign-in that checked the password before the disable commits waits, then
    finds the account disabled and makes no session (``auth._new_session``)."""
    if username == by:
        raise Forbidden("不能停用自己的账号 / you cannot disable your own account")
    _exists(tx, username)
    user_store.lock_user(tx, username)
    changed = user_store.disable_user(tx, username, now_ms)
    user_store.delete_sessions_of(tx, username)
    if changed:
        record_change(tx, username, "disabled", by, now_ms)
    return changed


def enable_account(tx: Tx, username: str, by: str, now_ms: int) -> bool:
    """Enable a disabled account (call inside a transaction); False if it was not disabled."""
    _exists(tx, username)
    changed = user_store.enable_user(tx, username)
    if changed:
        record_change(tx, username, "enabled", by, now_ms)
    return changed


def check_new_password(password: str) -> None:
    """Invalid unless the password is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符 / a password needs at least {MIN_PASSWORD_LENGTH} characters")


def reset_password(tx: Tx, username: str, password_hash: str, by: str, now_ms: int) -> None:
    """Set a new password (hashed beforehand, outside the transaction), end the account's sessions and
    clear its failed sign-ins (call inside a transaction; the account is locked as ``disable_account`` does)."""
    _exists(tx, username)
    user_store.lock_user(tx, username)
    user_store.set_password_hash(tx, username, password_hash)
    user_store.delete_sessions_of(tx, username)
    forget_failures(tx, username)  # the account's own count and every (account, address) pair's
    record_change(tx, username, "password_reset", by, now_ms)


def cli_actor() -> str:
    """Who runs the command line, as recorded in ``account_changes``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in the environment or the password database (a bare container)
        return "cli"
