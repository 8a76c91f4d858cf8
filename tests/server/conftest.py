"""Registers seeded for scan-to-inspect tests: agencies, officers, enterprises, lists, tickets, plans, users."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.creditcode import check_character
from server import db as dbmod
from server.app import create_app
from server.console.auth import add_user, hash_password
from server.settings import ServerSettings
from server.storage.engine import Tx, sql, storage_for

DAY_MS = 86_400_000
NOW_MS = int(time.time() * 1000)


def code(n: int) -> str:
    """A valid credit code numbered n."""
    body = f"91110108MA{n:07d}"
    return body + check_character(body)


# Enterprises: (code, name, risk, credit)
PLAIN = code(1)  # medium/B: cap 4
GOOD = code(2)  # low/A, on the no-disturb list: cap 1
FRAGILE = code(3)  # low/A, not listed: cap 1
UNREGISTERED = code(99)


_FIELD = sql("INSERT INTO fields(field_id, name, name_en) VALUES (:id, :name, :en)")
_AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (:id, :name, :en, '110108', :fields)")
_ENTERPRISE = sql("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (:code, :name, '', '110108', :risk, :credit)")
_OFFICER = sql(
    "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms)"
    " VALUES (:id, :id, :agency, :credential, :fields, :valid_from, :valid_to, :revoked)"
)
_NO_DISTURB = sql(
    "INSERT INTO no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms)"
    " VALUES (:code, 'A级纳税信用、连续三年无违法记录', :since, NULL, 'supervisor-1', :since)"
)
_COMPLAINT = sql(
    "INSERT INTO complaints(ticket_no, credit_code, field, summary, received_ms, closed_ms) VALUES (:ticket, :code, 'food', :summary, :received, :closed)"
)
_PLAN = sql(
    "INSERT INTO plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms)"
    " VALUES ('PLAN-2026-Q4', 'SAMR', 'food', 'random_draw', '第四季度双随机', :since, :until, :since)"
)
_PLAN_TARGET = sql("INSERT INTO plan_targets(plan_id, credit_code) VALUES ('PLAN-2026-Q4', :code)")


def seed(con: Tx | sqlite3.Connection) -> None:
    """Fill the registers (on either backend: ``con`` is a write transaction, or a raw SQLite connection)."""
    tx = con if isinstance(con, Tx) else Tx(con)
    tx.many(_FIELD, [{"id": "food", "name": "食品安全", "en": "food safety"}, {"id": "fire", "name": "消防安全", "en": "fire safety"}])
    tx.many(
        _AGENCY,
        [{"id": "SAMR", "name": "市场监管局", "en": "Market regulation", "fields": '["food"]'}, {"id": "FIRE", "name": "消防救援支队", "en": "Fire rescue", "fields": '["fire", "food"]'}],
    )
    tx.many(
        _ENTERPRISE,
        [
            {"code": PLAIN, "name": "海淀某餐饮公司", "risk": "medium", "credit": "B"},
            {"code": GOOD, "name": "守信示范企业", "risk": "low", "credit": "A"},
            {"code": FRAGILE, "name": "低风险小店", "risk": "low", "credit": "A"},
        ],
    )
    officers = [
        ("OFF-SAMR-1", "SAMR", "C-SAMR-1", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-SAMR-2", "SAMR", "C-SAMR-2", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-FIRE-1", "FIRE", "C-FIRE-1", ["fire", "food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-EXPIRED", "SAMR", "C-EXP", ["food"], NOW_MS - 730 * DAY_MS, NOW_MS - 2 * DAY_MS, None),
        ("OFF-FUTURE", "SAMR", "C-FUT", ["food"], NOW_MS + 2 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-REVOKED", "SAMR", "C-REV", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, NOW_MS - DAY_MS),
    ]
    tx.many(
        _OFFICER,
        [{"id": o, "agency": a, "credential": c, "fields": json.dumps(f), "valid_from": vf, "valid_to": vt, "revoked": r} for o, a, c, f, vf, vt, r in officers],
    )
    tx.run(_NO_DISTURB, code=GOOD, since=NOW_MS - 30 * DAY_MS)
    tx.run(_COMPLAINT, ticket="12345-2026-001", code=GOOD, summary="群众反映食品变质", received=NOW_MS - DAY_MS, closed=None)
    tx.run(_COMPLAINT, ticket="12345-2026-002", code=GOOD, summary="已办结", received=NOW_MS - 9 * DAY_MS, closed=NOW_MS - DAY_MS)
    tx.run(_PLAN, since=NOW_MS - 10 * DAY_MS, until=NOW_MS + 60 * DAY_MS)
    tx.run(_PLAN_TARGET, code=GOOD)
    seed_users(tx, [(o, a) for o, a, *_ in officers] + [("NOBODY", "SAMR")])


def seed_users(con: Tx | sqlite3.Connection, officers: list[tuple[str, str]]) -> None:
    """Sign-in users: each officer (user name = officer id), a supervisor, agency administrators, an enterprise."""
    con = con if isinstance(con, Tx) else Tx(con)
    for officer_id, agency in officers:
        add_user(con, officer_id, password(officer_id), "officer", agency_id=agency, officer_id=officer_id, password_hash=password_hash(officer_id))
    add_user(con, "sup", password("sup"), "supervisor", password_hash=password_hash("sup"))
    add_user(con, "admin-SAMR", password("admin-SAMR"), "agency_admin", agency_id="SAMR", password_hash=password_hash("admin-SAMR"))
    add_user(con, "admin-FIRE", password("admin-FIRE"), "agency_admin", agency_id="FIRE", password_hash=password_hash("admin-FIRE"))
    add_user(con, "ent-plain", password("ent-plain"), "enterprise", credit_code=PLAIN, password_hash=password_hash("ent-plain"))


def password(username: str) -> str:
    """Every test user's password."""
    return f"secret-{username}"


@functools.cache
def password_hash(username: str) -> str:
    """The scrypt hash of a test user's password, computed once per test run (scrypt is slow on purpose)."""
    return hash_password(password(username))


class Api:
    """A test client acting as one signed-in user (the supervisor unless ``as_`` says otherwise)."""

    def __init__(self, client: TestClient, username: str = "sup", tokens: dict[str, str] | None = None) -> None:  # type: ignore[type-arg]
        self.client = client
        self.username = username
        self._tokens = tokens if tokens is not None else {}

    def as_(self, username: str) -> Api:
        """The same client, signed in as another user."""
        return Api(self.client, username, self._tokens)

    def _headers(self, kw: dict[str, Any]) -> dict[str, Any]:
        if self.username not in self._tokens:
            r = self.client.post("/api/v1/auth/login", json={"username": self.username, "password": password(self.username)})
            assert r.status_code == 200, r.text
            self.client.cookies.clear()
            self._tokens[self.username] = r.json()["token"]
        return {**kw.pop("headers", {}), "Authorization": f"Bearer {self._tokens[self.username]}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self._headers(kw), **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self._headers(kw), **kw)


@pytest.fixture
def seeded_db(tmp_path: Path) -> Path:
    """A migrated server database with the registers seeded."""
    path = tmp_path / "server.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    try:
        seed(con)
    finally:
        con.close()
    return path


@pytest.fixture
def seeded_url(db_url: str) -> str:
    """A migrated server database with the registers seeded, on each backend in turn (path or URL)."""
    with storage_for(db_url).writing() as tx:
        seed(tx)
    return db_url


@pytest.fixture
def api(seeded_db: Path) -> Iterator[Api]:
    """The HTTP API over the seeded registers (no MQTT), signed in as the supervisor."""
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False))) as c:
        yield Api(c)
