"""Account management through the API, as each role and as a hostile or careless manager would use it (on both
backends)."""

from __future__ import annotations

import threading

import pytest

from server import db as dbmod
from server.console.accounts import account_changes, disable_account
from server.storage.engine import sql
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import Api, password

USERS = "/api/v1/users"
_DISABLED = sql("SELECT disabled_ms FROM users WHERE username = :username")
_CHANGES = sql("SELECT count(*) FROM account_changes")
_SESSIONS_OF = sql("SELECT count(*) FROM sessions WHERE username = :username")


def names(answer) -> set[str]:  # type: ignore[no-untyped-def]
    assert answer.status_code == 200, answer.text
    return {u["username"] for u in answer.json()}


def test_a_supervisor_lists_every_account_and_an_agency_admin_their_agencys_staff(api: Api) -> None:
    everyone = names(api.get(USERS))
    assert {"sup", "admin-SAMR", "admin-FIRE", "OFF-SAMR-1", "OFF-FIRE-1", "ent-plain"} <= everyone
    samr = names(api.as_("admin-SAMR").get(USERS))
    assert "admin-SAMR" in samr and "OFF-SAMR-1" in samr
    assert not samr & {"sup", "admin-FIRE", "OFF-FIRE-1", "ent-plain"}
    row = next(u for u in api.as_("admin-SAMR").get(USERS).json() if u["username"] == "OFF-SAMR-1")
    assert row["agency_name"] == "市场监管局" and row["role"] == "officer" and "password_hash" not in row


@pytest.mark.parametrize("who", ["OFF-SAMR-1", "ent-plain"])
def test_officers_and_enterprises_manage_no_account(api: Api, who: str) -> None:
    assert api.as_(who).get(USERS).status_code == 403
    r = api.as_(who).post(f"{USERS}/OFF-SAMR-2/disable")
    assert r.status_code == 403 and "无权" in r.json()["detail"]
    assert api.as_(who).get("/users").status_code in (200, 302)  # the page sends them home (followed or not)
    assert "账号管理" not in api.as_(who).get("/users").text


def test_strangers_are_asked_to_sign_in(api: Api) -> None:
    assert api.client.get(USERS).status_code == 401
    assert api.client.post(f"{USERS}/OFF-SAMR-1/disable").status_code == 401


@pytest.mark.parametrize(
    ("actor", "target", "why"),
    [
        ("admin-FIRE", "OFF-SAMR-2", "其他执法机关"),
        ("admin-SAMR", "sup", "本机关"),
        ("admin-SAMR", "ent-plain", "本机关"),
        ("admin-SAMR", "admin-FIRE", "其他执法机关"),
        ("admin-SAMR", "admin-SAMR", "自己"),
        ("sup", "sup", "自己"),
    ],
)
def test_what_a_manager_may_not_do(api: Api, seeded_url: str, actor: str, target: str, why: str) -> None:
    for action in ("disable", "enable"):
        r = api.as_(actor).post(f"{USERS}/{target}/{action}")
        if action == "enable" and actor == target:
            continue  # enabling yourself changes nothing: you are enabled, or could not have signed in
        assert r.status_code == 403 and why in r.json()["detail"], (action, r.text)
    if actor != target:
        assert api.as_(actor).post(f"{USERS}/{target}/reset-password", json={"password": "a-new-password"}).status_code == 403
        assert api.as_(actor).get(f"{USERS}/{target}").status_code == 403
    with dbmod.reading(seeded_url) as tx:
        assert tx.one(_DISABLED, username=target) == (None,)
        assert tx.scalar(_CHANGES) == 0


def test_a_disabled_account_is_signed_out_at_once_and_cannot_sign_in(api: Api, seeded_url: str) -> None:
    officer = api.as_("OFF-SAMR-1")
    assert officer.get("/api/v1/auth/me").status_code == 200  # signed in, with a session token
    r = api.as_("admin-SAMR").post(f"{USERS}/OFF-SAMR-1/disable")
    assert r.status_code == 200 and r.json()["disabled_ms"] and r.json()["active_sessions"] == 0
    assert officer.get("/api/v1/auth/me").status_code == 401  # the same token, the very next request
    with dbmod.reading(seeded_url) as tx:
        assert tx.scalar(_SESSIONS_OF, username="OFF-SAMR-1") == 0
    again = api.client.post("/api/v1/auth/login", json={"username": "OFF-SAMR-1", "password": password("OFF-SAMR-1")})
    assert again.status_code == 401 and "用户名或密码错误" in again.json()["detail"]  # like a wrong password
    # enabled again, the officer signs in
    assert api.post(f"{USERS}/OFF-SAMR-1/enable").json()["disabled_ms"] is None
    assert api.client.post("/api/v1/auth/login", json={"username": "OFF-SAMR-1", "password": password("OFF-SAMR-1")}).status_code == 200


def test_disabling_twice_changes_and_records_once(api: Api) -> None:
    first, second = api.post(f"{USERS}/OFF-SAMR-2/disable"), api.post(f"{USERS}/OFF-SAMR-2/disable")
    assert first.status_code == second.status_code == 200 and first.json()["disabled_ms"] == second.json()["disabled_ms"]
    assert [c["action"] for c in api.get(f"{USERS}/OFF-SAMR-2").json()["changes"]] == ["disabled"]


def test_a_password_reset_ends_the_sessions_and_forgives_failures(api: Api) -> None:
    officer = api.as_("OFF-FIRE-1")
    assert officer.get("/api/v1/auth/me").status_code == 200
    for _ in range(6):  # locked out by mistyping
        api.client.post("/api/v1/auth/login", json={"username": "OFF-FIRE-1", "password": "mistyped"})
    assert api.client.post("/api/v1/auth/login", json={"username": "OFF-FIRE-1", "password": password("OFF-FIRE-1")}).status_code == 429
    r = api.as_("admin-FIRE").post(f"{USERS}/OFF-FIRE-1/reset-password", json={"password": "brand-new-pass"})
    assert r.status_code == 200, r.text
    assert officer.get("/api/v1/auth/me").status_code == 401
    assert api.client.post("/api/v1/auth/login", json={"username": "OFF-FIRE-1", "password": password("OFF-FIRE-1")}).status_code == 401
    assert api.client.post("/api/v1/auth/login", json={"username": "OFF-FIRE-1", "password": "brand-new-pass"}).status_code == 200


def test_every_change_records_who_and_when(api: Api) -> None:
    api.as_("admin-SAMR").post(f"{USERS}/OFF-SAMR-2/disable")
    api.post(f"{USERS}/OFF-SAMR-2/enable")
    api.as_("admin-SAMR").post(f"{USERS}/OFF-SAMR-2/reset-password", json={"password": "another-password"})
    changes = api.get(f"{USERS}/OFF-SAMR-2").json()["changes"]
    assert [(c["action"], c["by"]) for c in changes] == [("disabled", "admin-SAMR"), ("enabled", "sup"), ("password_reset", "admin-SAMR")]
    assert all(c["at_ms"] > 0 for c in changes) and changes == sorted(changes, key=lambda c: c["at_ms"])
    listed = next(u for u in api.get(USERS).json() if u["username"] == "OFF-SAMR-2")
    assert (listed["last_action"], listed["last_by"]) == ("password_reset", "admin-SAMR")


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"password": "short"}, "至少 8 个字符"), ({"password": ""}, "password"), ({"pwd": "long-enough-1"}, "pwd"), ({"password": "x" * 201}, "password")],
)
def test_a_bad_new_password_is_refused_with_the_reason(api: Api, body: dict[str, str], needle: str) -> None:
    r = api.post(f"{USERS}/OFF-SAMR-1/reset-password", json=body)
    assert r.status_code == 400 and needle in r.text, r.text


@pytest.mark.parametrize("name", ["no-such-user", "x" * 300, "%2e%2e", "OFF-SAMR-1'--", "用户"])
def test_a_made_up_account_is_not_found(api: Api, name: str) -> None:
    for r in (api.post(f"{USERS}/{name}/disable"), api.get(f"{USERS}/{name}"), api.post(f"{USERS}/{name}/reset-password", json={"password": "long-enough-1"})):
        assert r.status_code in (400, 404), r.text


def test_two_managers_disabling_one_account_at_once_change_and_record_it_once(seeded_url: str) -> None:
    """Two transactions at once (on PostgreSQL truly side by side): one disables and records, the other finds it done."""
    start = threading.Barrier(2)
    changed: list[bool] = []

    def manager(name: str) -> None:
        start.wait()
        with dbmod.writing(seeded_url) as tx:
            changed.append(disable_account(tx, "OFF-SAMR-2", name, 1_800_000_000_000))

    threads = [threading.Thread(target=manager, args=(name,)) for name in ("sup", "admin-SAMR")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(changed) == [False, True]
    with dbmod.reading(seeded_url) as tx:
        assert [c.action for c in account_changes(tx, "OFF-SAMR-2")] == ["disabled"]
