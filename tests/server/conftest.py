"""Registers seeded for scan-to-inspect tests: agencies, officers, enterprises, lists, tickets, plans."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol.creditcode import check_character
from server import db as dbmod
from server.app import create_app
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
def api(seeded_db: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The HTTP API over the seeded registers (no MQTT)."""
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False))) as c:
        yield c
