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
from server.auth import add_user, hash_password
from server.settings import ServerSettings

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


def seed(con: sqlite3.Connection) -> None:
    """Fill the registers."""
    con.executemany("INSERT INTO fields(field_id, name, name_en) VALUES (?, ?, ?)", [("food", "食品安全", "food safety"), ("fire", "消防安全", "fire safety")])
    con.executemany(
        "INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (?, ?, ?, '110108', ?)",
        [("SAMR", "市场监管局", "Market regulation", '["food"]'), ("FIRE", "消防救援支队", "Fire rescue", '["fire", "food"]')],
    )
    con.executemany(
        "INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (?, ?, '', '110108', ?, ?)",
        [(PLAIN, "海淀某餐饮公司", "medium", "B"), (GOOD, "守信示范企业", "low", "A"), (FRAGILE, "低风险小店", "low", "A")],
    )
    officers = [
        ("OFF-SAMR-1", "SAMR", "C-SAMR-1", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-SAMR-2", "SAMR", "C-SAMR-2", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-FIRE-1", "FIRE", "C-FIRE-1", ["fire", "food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-EXPIRED", "SAMR", "C-EXP", ["food"], NOW_MS - 730 * DAY_MS, NOW_MS - 2 * DAY_MS, None),
        ("OFF-FUTURE", "SAMR", "C-FUT", ["food"], NOW_MS + 2 * DAY_MS, NOW_MS + 365 * DAY_MS, None),
        ("OFF-REVOKED", "SAMR", "C-REV", ["food"], NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, NOW_MS - DAY_MS),
    ]
    con.executemany(
        "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(o, o, a, c, json.dumps(f), vf, vt, r) for o, a, c, f, vf, vt, r in officers],
    )
    con.execute(
        "INSERT INTO no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms) VALUES (?, 'A级纳税信用、连续三年无违法记录', ?, NULL, 'supervisor-1', ?)",
        (GOOD, NOW_MS - 30 * DAY_MS, NOW_MS - 30 * DAY_MS),
    )
    con.execute("INSERT INTO complaints(ticket_no, credit_code, field, summary, received_ms) VALUES ('12345-2026-001', ?, 'food', '群众反映食品变质', ?)", (GOOD, NOW_MS - DAY_MS))
    con.execute("INSERT INTO complaints(ticket_no, credit_code, field, summary, received_ms, closed_ms) VALUES ('12345-2026-002', ?, 'food', '已办结', ?, ?)", (GOOD, NOW_MS - 9 * DAY_MS, NOW_MS - DAY_MS))
    con.execute(
        "INSERT INTO plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms) VALUES ('PLAN-2026-Q4', 'SAMR', 'food', 'random_draw', '第四季度双随机', ?, ?, ?)",
        (NOW_MS - 10 * DAY_MS, NOW_MS + 60 * DAY_MS, NOW_MS - 10 * DAY_MS),
    )
    con.execute("INSERT INTO plan_targets(plan_id, credit_code) VALUES ('PLAN-2026-Q4', ?)", (GOOD,))
    seed_users(con, [(o, a) for o, a, *_ in officers] + [("NOBODY", "SAMR")])


def seed_users(con: sqlite3.Connection, officers: list[tuple[str, str]]) -> None:
    """Sign-in users: each officer (user name = officer id), a supervisor, agency administrators, an enterprise."""
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
def api(seeded_db: Path) -> Iterator[Api]:
    """The HTTP API over the seeded registers (no MQTT), signed in as the supervisor."""
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False))) as c:
        yield Api(c)
