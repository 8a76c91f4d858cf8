"""Shutting accounts off, as an operator does it (`fe-server users ...` on a real database file) and as a
supervisor or agency administrator does it on the console's account page in a real browser. What another process
must see at once (the command line's changes, a disabled account's stream) runs on both backends; the pages run
on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server.storage.engine import sql
from tests.server.conftest import password, seed
from tests.support.browser import browser, new_context  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import ROOT, _env, http_json, read_all, write

pytestmark = pytest.mark.system
_CHANGES = sql("SELECT username, action, by_username FROM account_changes ORDER BY id")


def fe_server(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = _env()
    env.pop("FE_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "server.cli", *argv], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def listed(db_args: list[str]) -> dict[str, dict[str, object]]:
    out = fe_server("users", "list", *db_args)
    assert out.returncode == 0, out.stderr
    return {u["username"]: u for u in map(json.loads, out.stdout.splitlines())}


def test_users_list_disable_enable_and_reset_password_on_the_command_line(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    db = stack.server.db_args
    url = stack.server.url
    assert fe_server("users", "add", *db, "alice", "--role", "supervisor", stdin="alice-password-1\n").returncode == 0
    assert fe_server("users", "add", *db, "bob", "--role", "officer", "--agency", "SAMR", "--officer", "OFF-9", stdin="bob-password-1\n").returncode == 0
    users = listed(db)
    assert set(users) == {"alice", "bob"} and users["bob"]["role"] == "officer" and users["bob"]["disabled_ms"] is None
    code, body = http_json(url + "/api/v1/auth/login", {"username": "bob", "password": "bob-password-1"})
    assert code == 200
    token = body["token"]
    assert http_json(url + "/api/v1/auth/me", token=token)[0] == 200

    out = fe_server("users", "disable", *db, "bob")
    assert out.returncode == 0 and "disabled" in out.stdout
    assert http_json(url + "/api/v1/auth/me", token=token)[0] == 401  # the running server refuses the session at once
    assert http_json(url + "/api/v1/auth/login", {"username": "bob", "password": "bob-password-1"})[0] == 401
    assert listed(db)["bob"]["disabled_ms"] is not None
    assert fe_server("users", "enable", *db, "bob").returncode == 0
    assert http_json(url + "/api/v1/auth/login", {"username": "bob", "password": "bob-password-1"})[0] == 200

    short = fe_server("users", "reset-password", *db, "bob", stdin="short\n")
    assert short.returncode == 1 and "8" in short.stderr
    assert fe_server("users", "reset-password", *db, "bob", stdin="bob-password-2\n").returncode == 0
    assert http_json(url + "/api/v1/auth/login", {"username": "bob", "password": "bob-password-1"})[0] == 401
    assert http_json(url + "/api/v1/auth/login", {"username": "bob", "password": "bob-password-2"})[0] == 200

    missing = fe_server("users", "disable", *db, "nobody")
    assert missing.returncode == 1 and "nobody" in missing.stderr
    changes = read_all(stack.server.db, _CHANGES)
    assert [(u, a) for u, a, _ in changes] == [("alice", "created"), ("bob", "created"), ("bob", "disabled"), ("bob", "enabled"), ("bob", "password_reset")]
    assert all(by == "cli" or by.startswith("cli:") for *_, by in changes)  # the operator's OS user


SQLITE_ONLY = pytest.mark.parametrize("any_stack", ["sqlite"], indirect=True)


@pytest.fixture
def running(any_stack: Stack) -> Stack:
    """A running server with the registers seeded, on each backend (the browser tests pick SQLite)."""
    any_stack.server.start_and_wait()
    write(any_stack.server.db, seed)
    return any_stack


def sign_in(context, url: str, username: str, lang: str = "zh"):  # type: ignore[no-untyped-def]
    page = context.new_page()
    page.goto(f"{url}/login?lang={lang}")
    page.fill("#username", username)
    page.fill("#password", password(username))
    page.click("#submit")
    page.wait_for_url(lambda u: "/login" not in u)
    return page


@SQLITE_ONLY
def test_an_agency_admin_shuts_off_an_officer_on_the_account_page(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    admin_ctx, officer_ctx = new_context(browser), new_context(browser, "phone")
    problems: list[str] = []
    try:
        officer = sign_in(officer_ctx, url, "OFF-SAMR-1")
        officer.wait_for_url(f"{url}/officer?lang=zh")
        page = sign_in(admin_ctx, url, "admin-SAMR")
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.click("#users-link")  # from the dashboard's header
        page.wait_for_url(f"{url}/users?lang=zh")
        table = page.inner_text("#users")
        assert "OFF-SAMR-1" in table and "执法人员" in table and "机关管理员" in table and "市场监管局" in table
        assert "officer" not in table and "agency_admin" not in table  # role labels, not raw ids
        assert "admin-FIRE" not in table and "OFF-FIRE-1" not in table and "sup" not in table.split()  # other agencies, supervisors
        assert page.query_selector("tr[data-username='admin-SAMR'] button") is None  # not one's own account
        row = "tr[data-username='OFF-SAMR-1']"
        page.click(f"{row} button.disable")
        page.wait_for_selector(f"{row}[data-state='disabled']")
        assert "已停用" in page.inner_text(f"{row} .state") and "OFF-SAMR-1" in page.inner_text("#notice")
        assert "停用 · admin-SAMR" in page.inner_text(f"{row} .last-change")  # who did it, shown at once
        # the officer's phone is signed out: the next request is refused and the page goes to sign-in
        assert officer.evaluate("fetch('/api/v1/auth/me').then(r => r.status)") == 401
        officer.reload()
        officer.wait_for_url(f"{url}/login?lang=zh")
        # enable again and give a new password
        page.click(f"{row} button.enable")
        page.wait_for_selector(f"{row}[data-state='active']")
        page.click(f"{row} button.reset")
        page.fill("#new-password", "short")
        page.click("#reset-submit")  # the browser's own check: at least 8 characters
        assert page.is_visible("#reset-card")
        page.fill("#new-password", "fresh-password-9")
        page.click("#reset-submit")
        page.wait_for_selector("#reset-card", state="hidden")
        assert "已重置密码" in page.inner_text("#notice")
        assert http_json(url + "/api/v1/auth/login", {"username": "OFF-SAMR-1", "password": "fresh-password-9"})[0] == 200
        # the same page in English
        page.goto(f"{url}/users?lang=en")
        assert "Officer" in page.inner_text("#users") and "Accounts" in page.inner_text("main")
        assert problems == []  # no script error, no Content-Security-Policy violation
    finally:
        admin_ctx.close()
        officer_ctx.close()


@SQLITE_ONLY
def test_the_account_page_is_for_managers_only(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    ctx = new_context(browser)
    try:
        page = sign_in(ctx, url, "OFF-SAMR-2")
        assert page.query_selector("#users-link") is None
        page.goto(f"{url}/users")
        page.wait_for_url(f"{url}/officer?lang=zh")
        stranger = new_context(browser).new_page()
        stranger.goto(f"{url}/users")
        stranger.wait_for_url(f"{url}/login?lang=zh")
        stranger.context.close()
    finally:
        ctx.close()


def test_disabling_an_account_ends_its_open_dashboard_stream(running: Stack) -> None:
    """The live stream checks the session before every update (a real server, a real HTTP stream)."""
    import time
    import urllib.request

    stack = running
    req = urllib.request.Request(stack.server.url + "/api/v1/stream", headers={"Authorization": f"Bearer {stack.server.token('admin-SAMR')}"})
    with urllib.request.urlopen(req, timeout=30) as stream:
        assert stream.readline().startswith(b"event: snapshot") or b"snapshot" in stream.readline()
        stack.server.api("/api/v1/users/admin-SAMR/disable", {})
        started = time.monotonic()
        rest = stream.read()  # returns when the server ends the stream; a stream that goes on times out the test
    assert time.monotonic() - started < 10 and rest.count(b"event: snapshot") <= 1
