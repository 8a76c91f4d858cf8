"""Account management over HTTP: ``/api/v1/users`` (list, show, disable, enable, reset a password) and the
console's ``/users`` page, for supervisors (every account) and agency administrators (their agency's staff).
Who may manage whom is decided in ``server.console.accounts``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from server import db as dbmod
from server.console.accounts import (
    Account,
    account_changes,
    check_may_manage,
    check_new_password,
    disable_account,
    enable_account,
    get_account,
    list_accounts,
    reset_password,
)
from server.console import labels
from server.console.auth import MIN_PASSWORD_LENGTH, CurrentPrincipal, Principal, hash_password, principal_of
from server.errors import Invalid, answers
from server.console.guards import MANAGERS, managers

labels.register("account_action", {
    "created": ("创建", "created"), "disabled": ("停用", "disabled"), "enabled": ("启用", "enabled"), "password_reset": ("重置密码", "password reset"),
})  # fmt: skip
PAGE_TEXT = {
    "zh": {
        "accounts": "账号管理", "scope_all": "全部账号", "scope_agency": "本机关的执法人员和管理员账号", "user": "用户名", "role": "角色",
        "agency": "执法机关", "person": "执法人员 / 企业", "state": "状态", "active": "正常", "disabled": "已停用", "sessions": "在线会话",
        "last_change": "最近变更", "actions": "操作", "disable": "停用", "enable": "启用", "reset": "重置密码", "self": "本人账号",
        "new_password": f"新密码（至少 {MIN_PASSWORD_LENGTH} 个字符）", "save": "保存新密码", "cancel": "取消", "done_disabled": "已停用账号，其登录已全部失效：",
        "done_enabled": "已启用账号：", "done_reset": "已重置密码，其登录已全部失效：", "none": "暂无账号",
        "act_created": "创建", "act_disabled": "停用", "act_enabled": "启用", "act_password_reset": "重置密码",
    },
    "en": {
        "accounts": "Accounts", "scope_all": "Every account", "scope_agency": "Officers and administrators of your agency", "user": "User name", "role": "Role",
        "agency": "Agency", "person": "Officer / enterprise", "state": "State", "active": "active", "disabled": "disabled", "sessions": "Sessions",
        "last_change": "Last change", "actions": "Actions", "disable": "Disable", "enable": "Enable", "reset": "Reset password", "self": "your own account",
        "new_password": f"New password (at least {MIN_PASSWORD_LENGTH} characters)", "save": "Save the new password", "cancel": "Cancel", "done_disabled": "Disabled, and signed out everywhere:",
        "done_enabled": "Enabled:", "done_reset": "Password reset, and signed out everywhere:", "none": "no accounts",
        "act_created": "created", "act_disabled": "disabled", "act_enabled": "enabled", "act_password_reset": "password reset",
    },
}
Lang = Annotated[Literal["zh", "en"], QueryParameter(description="zh (default) or en")]
CHINA = ZoneInfo("Asia/Shanghai")
UsernamePath = Annotated[str, PathParameter(description="the account's user name", max_length=100)]


class UserOut(msgspec.Struct, kw_only=True):
    """An account as its managers see it."""

    username: UsernamePath
    role: str
    agency_id: str | None
    agency_name: str | None
    officer_id: str | None
    credit_code: str | None
    created_ms: int
    disabled_ms: int | None
    active_sessions: int
    last_action: str | None
    last_by: str | None
    last_at_ms: int | None


class ChangeOut(msgspec.Struct, kw_only=True):
    """One change of an account: what, by whom, when."""

    action: str
    by: str
    at_ms: int


class UserDetail(UserOut, kw_only=True):
    """An account with every change recorded."""

    changes: list[ChangeOut]


class PasswordIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new password chosen by the account's manager (tell it to the user; they sign in with it)."""

    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def _out(a: Account) -> UserOut:
    return UserOut(
        username=a.username, role=a.role, agency_id=a.agency_id, agency_name=a.agency_name, officer_id=a.officer_id, credit_code=a.credit_code,
        created_ms=a.created_ms, disabled_ms=a.disabled_ms, active_sessions=a.active_sessions, last_action=a.last_action, last_by=a.last_by, last_at_ms=a.last_at_ms,
    )


def _now() -> int:
    return int(time.time() * 1000)


def _managed(state: State, principal: Principal, username: UsernamePath) -> Account:
    """The account, if the principal manages it (404 if there is none, 403 if not theirs)."""
    with dbmod.reading(state.settings.db) as tx:
        account = get_account(tx, username, _now())
    check_may_manage(principal, account)
    return account


class UserController(Controller):
    """Console and API accounts (supervisors: all; agency administrators: their agency's officers and administrators)."""

    path = "/api/v1/users"
    tags = ["users"]
    guards = [managers]

    @get("/", sync_to_thread=True)
    def list_users(self, state: State, principal: CurrentPrincipal) -> list[UserOut]:
        """The accounts this manager manages."""
        with dbmod.reading(state.settings.db) as tx:
            return [_out(a) for a in list_accounts(tx, principal, _now())]

    @get("/{username:str}", sync_to_thread=True)
    def show(self, state: State, principal: CurrentPrincipal, username: UsernamePath) -> UserDetail:
        """One account with every change recorded (who, what, when)."""
        account = _managed(state, principal, username)
        with dbmod.reading(state.settings.db) as tx:
            changes = [ChangeOut(action=c.action, by=c.by, at_ms=c.at_ms) for c in account_changes(tx, username)]
        return UserDetail(**msgspec.structs.asdict(_out(account)), changes=changes)

    @post("/{username:str}/disable", sync_to_thread=True, status_code=200)
    def disable(self, state: State, principal: CurrentPrincipal, username: UsernamePath) -> UserOut:
        """Disable the account: its sessions end at once and it cannot sign in (repeating it changes nothing)."""
        now = _now()
        with dbmod.writing(state.settings.db) as tx:  # checked and changed in one transaction
            check_may_manage(principal, get_account(tx, username, now))
            disable_account(tx, username, principal.username, now)
            return _out(get_account(tx, username, now))

    @post("/{username:str}/enable", sync_to_thread=True, status_code=200)
    def enable(self, state: State, principal: CurrentPrincipal, username: UsernamePath) -> UserOut:
        """Enable a disabled account (repeating it changes nothing)."""
        now = _now()
        with dbmod.writing(state.settings.db) as tx:
            check_may_manage(principal, get_account(tx, username, now))
            enable_account(tx, username, principal.username, now)
            return _out(get_account(tx, username, now))

    @post("/{username:str}/reset-password", sync_to_thread=True, status_code=200, responses=answers(Invalid))
    def reset(self, state: State, principal: CurrentPrincipal, username: UsernamePath, data: JSONBody[PasswordIn]) -> UserOut:
        """Set a new password: the account's sessions end, its failed sign-ins are forgiven."""
        _managed(state, principal, username)
        check_new_password(data.password)
        hashed = hash_password(data.password)  # scrypt before the write transaction, not inside it
        now = _now()
        with dbmod.writing(state.settings.db) as tx:
            check_may_manage(principal, get_account(tx, username, now))
            reset_password(tx, username, hashed, principal.username, now)
            return _out(get_account(tx, username, now))


def _when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, CHINA).strftime("%Y-%m-%d %H:%M") if ms else "–"


def _row(a: Account, viewer: Principal, lang: str) -> dict[str, Any]:
    """What the page shows of an account: labels, names and China times, never a raw role id."""
    t = PAGE_TEXT[lang]
    return {
        "username": a.username,
        "role": labels.label("role", a.role, lang),
        "agency": a.agency_name or ("–" if a.agency_id is None else labels.label("agency", None, lang)),
        "person": a.officer_name or a.enterprise_name or a.officer_id or a.credit_code or "–",
        "disabled": a.disabled_ms is not None,
        "disabled_at": _when(a.disabled_ms),
        "sessions": a.active_sessions,
        "last_change": f"{labels.label('account_action', a.last_action, lang)} · {a.last_by} · {_when(a.last_at_ms)}" if a.last_action else "–",
        "is_self": a.username == viewer.username,
    }


@get("/users", sync_to_thread=True, include_in_schema=False)
def users_page(request: Request, state: State, lang: Lang = "zh") -> Template | Redirect:
    """The account page of supervisors and agency administrators."""
    from server.console.pages import HOME, TEXT, _page

    p = principal_of(request)
    if p is None:
        return Redirect(f"/login?lang={lang}")
    if p.role not in MANAGERS:
        return Redirect(f"{HOME[p.role]}?lang={lang}")
    with dbmod.reading(state.settings.db) as tx:
        rows = [_row(a, p, lang) for a in list_accounts(tx, p, _now())]
    t = {**TEXT[lang], **PAGE_TEXT[lang]}
    scope = t["scope_all"] if p.role == "supervisor" else t["scope_agency"]
    return _page("users.html", lang, p, t=t, users=rows, scope=scope, min_password=MIN_PASSWORD_LENGTH)
