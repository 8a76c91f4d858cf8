"""Sessions: ended by sign-out, by expiry and by disabling the account, on both backends; replayed tokens are
refused, and a sign-in that races an administrator's disable on PostgreSQL makes no session."""

from __future__ import annotations

import threading
import time

import pytest

from server import db as dbmod
from server.console.accounts import disable_account
from server.console.auth import COOKIE, SESSION_TTL_MS, principal_for_token, sign_in_limited, sign_out
from server.settings import SignInLimits
from server.storage.engine import Backend, backend_of, sql
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import Api, password

LOGIN = "/api/v1/auth/login"
LIMITS = SignInLimits()
T0 = 1_800_000_000_000
_SESSIONS_OF = sql("SELECT count(*) FROM sessions WHERE username = :username")
_WAITING_LOCKS = sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")


@pytest.fixture
def db(seeded_url: str) -> str:
    return seeded_url


_EXPIRE_SESSIONS = sql("UPDATE sessions SET expires_ms = :expires_ms WHERE username = :username")


def test_a_session_token_is_refused_after_sign_out_and_after_it_expires(db: str) -> None:
    first = sign_in_limited(db, "OFF-SAMR-1", password("OFF-SAMR-1"), address="a", limits=LIMITS, now_ms=T0)
    second = sign_in_limited(db, "OFF-SAMR-1", password("OFF-SAMR-1"), address="b", limits=LIMITS, now_ms=T0)
    assert first and second
    (token, p), (other, _) = first, second
    with dbmod.reading(db) as tx:
        assert principal_for_token(tx, token, T0 + SESSION_TTL_MS - 1) == p
        assert principal_for_token(tx, token, T0 + SESSION_TTL_MS) is None  # expired
        assert principal_for_token(tx, token[:-1], T0 + 1) is None
    for _ in range(2):  # signing out twice changes nothing more
        with dbmod.writing(db) as tx:
            sign_out(tx, token)
    with dbmod.reading(db) as tx:
        assert principal_for_token(tx, token, T0 + 1) is None  # replayed after sign-out
        assert principal_for_token(tx, other, T0 + 1) == p  # the user's other session goes on


def test_a_token_replayed_after_logout_or_past_its_expiry_is_refused_over_http(api: Api, seeded_url: str) -> None:
    login = api.client.post(LOGIN, json={"username": "OFF-SAMR-2", "password": password("OFF-SAMR-2")})
    token = login.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/auth/me", headers=bearer).status_code == 200
    assert api.client.post("/api/v1/auth/logout", headers=bearer).status_code == 200
    api.client.cookies.clear()
    assert api.client.get("/api/v1/auth/me", headers=bearer).status_code == 401
    api.client.cookies.set(COOKIE, token)  # the same token as the browser's cookie
    assert api.client.get("/api/v1/auth/me").status_code == 401
    api.client.cookies.clear()
    assert api.client.post("/api/v1/auth/logout", headers=bearer).status_code == 401
    officer = api.as_("OFF-SAMR-1")
    assert officer.get("/api/v1/auth/me").status_code == 200
    with dbmod.writing(seeded_url) as tx:
        tx.run(_EXPIRE_SESSIONS, expires_ms=int(time.time() * 1000) - 1, username="OFF-SAMR-1")
    assert officer.get("/api/v1/auth/me").status_code == 401


def test_a_sign_in_racing_a_disable_makes_no_session(db: str) -> None:
    """PostgreSQL: the password is checked while an administrator's disable is under way; the sign-in's session
    waits for the account's lock, then finds the account disabled. (SQLite's writers never overlap.)"""
    if backend_of(db) is Backend.SQLITE:
        pytest.skip("SQLite serialises every write transaction: there is no overlap to attack")
    locked, release = threading.Event(), threading.Event()

    def administrator() -> None:
        with dbmod.writing(db) as tx:
            disable_account(tx, "OFF-SAMR-1", "admin-SAMR", T0)
            locked.set()
            release.wait(60)

    admin = threading.Thread(target=administrator)
    admin.start()
    assert locked.wait(30)
    outcome: list[object] = []

    def officer() -> None:
        outcome.append(sign_in_limited(db, "OFF-SAMR-1", password("OFF-SAMR-1"), address="10.0.0.5", limits=LIMITS, now_ms=T0))

    signing_in = threading.Thread(target=officer)
    signing_in.start()
    deadline = time.monotonic() + 30
    with dbmod.reading(db) as tx:
        while tx.scalar(_WAITING_LOCKS) == 0 and signing_in.is_alive():  # until it waits for the account's lock
            assert time.monotonic() < deadline
            time.sleep(0.01)
    release.set()
    admin.join()
    signing_in.join()
    assert outcome == [None]  # the password was right, but the account is disabled: no session
    with dbmod.reading(db) as tx:
        assert tx.scalar(_SESSIONS_OF, username="OFF-SAMR-1") == 0
