"""The users domain's rows on both backends: users, sessions, failed sign-ins, accounts and their changes."""

from __future__ import annotations

from typing import Any

import pytest

from server.storage import users as u
from server.storage.engine import Storage, Tx, sql

_AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (:id, :name, '', '110108', '[]')")
_FAILURE_KEYS = sql("SELECT kind, key FROM sign_in_failures ORDER BY kind, key")
_SESSION_COUNT = sql("SELECT count(*) FROM sessions")


def add(tx: Tx, username: str, role: str = "officer", agency_id: str | None = "SAMR", **kw: Any) -> bool:
    return u.insert_user(
        tx, username=username, role=role, agency_id=agency_id, officer_id=kw.get("officer_id"), credit_code=kw.get("credit_code"),
        password_hash=kw.get("password_hash", f"hash-{username}"), created_ms=kw.get("created_ms", 1000),
    )


@pytest.fixture
def people(store: Storage) -> Storage:
    """Two agencies and five accounts of every role."""
    with store.writing() as tx:
        tx.many(_AGENCY, [{"id": "SAMR", "name": "市场监管局"}, {"id": "FIRE", "name": "消防救援支队"}])
        add(tx, "sup", "supervisor", None)
        add(tx, "admin-SAMR", "agency_admin")
        add(tx, "OFF-1", officer_id="OFF-1")
        add(tx, "OFF-2", "officer", "FIRE", officer_id="OFF-2")
        add(tx, "ent", "enterprise", None, credit_code="91110108MA0000001X")
    return store


def test_a_user_is_stored_once_and_read_back_until_disabled(people: Storage) -> None:
    with people.writing() as tx:
        assert not add(tx, "OFF-1", password_hash="another")  # taken: nothing changes
        assert u.user_exists(tx, "OFF-1") and not u.user_exists(tx, "off-1")
        assert u.active_user(tx, "OFF-1") == (("OFF-1", "officer", "SAMR", "OFF-1", None), "hash-OFF-1")
        assert u.active_user(tx, "nobody") is None
        u.set_password_hash(tx, "OFF-1", "new-hash")
        assert u.disable_user(tx, "OFF-1", 5000) and not u.disable_user(tx, "OFF-1", 6000)
        assert not u.disable_user(tx, "nobody", 5000)
        assert u.active_user(tx, "OFF-1") is None
    with people.writing() as tx:
        assert u.enable_user(tx, "OFF-1") and not u.enable_user(tx, "OFF-1")
        assert u.active_user(tx, "OFF-1") == (("OFF-1", "officer", "SAMR", "OFF-1", None), "new-hash")


def test_sessions_of_active_accounts_only_and_until_they_expire(people: Storage) -> None:
    with people.writing() as tx:
        assert u.insert_session(tx, token_hash="t1", username="OFF-1", created_ms=1000, expires_ms=2000)
        assert u.insert_session(tx, token_hash="t2", username="OFF-1", created_ms=1000, expires_ms=9000)
        assert u.insert_session(tx, token_hash="t3", username="OFF-2", created_ms=1000, expires_ms=9000)
        assert not u.insert_session(tx, token_hash="t4", username="nobody", created_ms=1000, expires_ms=9000)
        u.disable_user(tx, "OFF-2", 1500)
        assert not u.insert_session(tx, token_hash="t5", username="OFF-2", created_ms=1600, expires_ms=9000)
    with people.reading() as tx:
        assert u.session_principal(tx, "t1", 1999) == ("OFF-1", "officer", "SAMR", "OFF-1", None)
        assert u.session_principal(tx, "t1", 2000) is None  # expired at expires_ms
        assert u.session_principal(tx, "t3", 1600) is None  # the account is disabled
        assert u.session_principal(tx, "nope", 1600) is None
    with people.writing() as tx:
        u.delete_session(tx, "t2")
        assert u.session_principal(tx, "t2", 1600) is None
        u.delete_sessions_of(tx, "OFF-2")
        assert tx.scalar(_SESSION_COUNT) == 1


def test_failure_counts_are_put_read_taken_back_and_dropped(store: Storage) -> None:
    with store.writing() as tx:
        u.lock_failures(tx)
        assert u.failure(tx, "account", "sup") is None
        u.put_failure(tx, kind="account", key="sup", failures=1, window_start_ms=100, last_failure_ms=100, locked_until_ms=0)
        u.put_failure(tx, kind="account", key="sup", failures=5, window_start_ms=100, last_failure_ms=200, locked_until_ms=900)
        u.put_failure(tx, kind="address", key="10.0.0.1", failures=1, window_start_ms=50, last_failure_ms=50, locked_until_ms=0)
        assert u.failure(tx, "account", "sup") == (5, 100, 900)
        # the lock end goes back only while it is the one this failure set
        u.take_back_failure(tx, kind="account", key="sup", moved_from_ms=0, moved_to_ms=700)
        assert u.failure(tx, "account", "sup") == (4, 100, 900)
        u.take_back_failure(tx, kind="account", key="sup", moved_from_ms=0, moved_to_ms=900)
        assert u.failure(tx, "account", "sup") == (3, 100, 0)
        u.put_failure(tx, kind="account", key="x", failures=0, window_start_ms=100, last_failure_ms=200, locked_until_ms=0)
        u.take_back_failure(tx, kind="account", key="x", moved_from_ms=0, moved_to_ms=0)
        assert u.failure(tx, "account", "x") == (0, 100, 0)  # never below 0
        u.delete_failures_before(tx, 100)
        assert u.failure(tx, "address", "10.0.0.1") is None and u.failure(tx, "account", "sup") is not None
        u.delete_failure(tx, "account", "sup")
        assert u.failure(tx, "account", "sup") is None


@pytest.mark.parametrize("name", ["sup", "a%b_c", "Sup", "用户"])
def test_pair_counts_of_one_user_name_are_found_by_exact_name(store: Storage, name: str) -> None:
    """The pair key is "address\\nusername": the name after the first newline, compared exactly (no LIKE, no case)."""
    keys = [f"10.0.0.1\n{name}", f"10.0.0.2\n{name}", f"10.0.0.1\nx{name}", f"10.0.0.1\n{name}x", f"10.0.0.1\nx\n{name}", f"{name}"]
    others = ["sup", "a%b_c", "Sup", "用户", "sup\n"]
    with store.writing() as tx:
        for key in keys + [f"10.0.0.3\n{o}" for o in others if o != name]:
            u.put_failure(tx, kind="pair", key=key, failures=1, window_start_ms=1, last_failure_ms=1, locked_until_ms=0)
        u.put_failure(tx, kind="address", key=f"9\n{name}", failures=1, window_start_ms=1, last_failure_ms=1, locked_until_ms=0)
        u.delete_failures_ending_with(tx, "pair", "\n", name)
        left = tx.all(_FAILURE_KEYS)
    gone = {f"10.0.0.1\n{name}", f"10.0.0.2\n{name}"}
    assert {k for kind, k in left if kind == "pair"} == set(keys + [f"10.0.0.3\n{o}" for o in others if o != name]) - gone
    assert ("address", f"9\n{name}") in left  # another kind is not touched


def test_accounts_with_names_sessions_and_their_last_change(people: Storage) -> None:
    with people.writing() as tx:
        u.insert_session(tx, token_hash="live", username="OFF-1", created_ms=1000, expires_ms=9000)
        u.insert_session(tx, token_hash="old", username="OFF-1", created_ms=1000, expires_ms=2000)
        u.insert_change(tx, username="OFF-1", action="disabled", by="admin-SAMR", at_ms=3000)
        u.insert_change(tx, username="OFF-1", action="enabled", by="sup", at_ms=3000)  # same time: the later row wins
    with people.reading() as tx:
        every = u.all_accounts(tx, 5000)
        samr = u.agency_accounts(tx, "SAMR", ("officer", "agency_admin"), 5000)
        one = u.account(tx, "OFF-1", 5000)
        assert u.account(tx, "nobody", 5000) is None
        assert u.changes(tx, "OFF-1") == [("disabled", "admin-SAMR", 3000), ("enabled", "sup", 3000)]
        assert u.changes(tx, "sup") == []
    assert [(r[0], r[1], r[2]) for r in every] == [
        ("admin-SAMR", "agency_admin", "SAMR"), ("ent", "enterprise", None), ("OFF-2", "officer", "FIRE"), ("OFF-1", "officer", "SAMR"),
        ("sup", "supervisor", None),
    ]
    assert [r[0] for r in samr] == ["admin-SAMR", "OFF-1"]
    assert one == ("OFF-1", "officer", "SAMR", "市场监管局", "OFF-1", None, None, None, 1000, None, 1, "enabled", "sup", 3000)
    assert all(type(v) is int for v in one[8:9] + one[10:11] + one[13:])  # BIGINT and count(*) come back as int
    with people.reading() as tx:
        assert [r[0] for r in u.agency_accounts(tx, "FIRE", ("officer",), 5000)] == ["OFF-2"]


def test_no_agency_no_accounts(people: Storage) -> None:
    with people.reading() as tx:
        assert u.agency_accounts(tx, None, ("officer", "agency_admin"), 0) == []
        assert u.agency_accounts(tx, "SAMR", (), 0) == []
