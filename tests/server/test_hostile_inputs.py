"""Ordinary requests with hostile content: each gets a documented 4xx that says what was wrong, never a 500.

Deeply nested JSON bodies (msgspec's decoder recursed out of stack: RecursionError), dates and instants far
outside any real one (OverflowError in the working-day count and in SQLite's integers)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from server import db as dbmod
from server.jobs.disclosure import check_deadlines
from server.errors import Invalid
from server.rules.workdays import FIRST_DAY, LAST_DAY, MAX_WORKING_DAYS, add_working_days, working_days_between
from server.storage.engine import Tx
from tests.server.conftest import Api

#: ``{"a":`` x50,000 (250 KB) and ``[`` x100,000 (200 KB): under the 1 MiB body limit, deeper than the decoder goes.
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
NESTED = "请求内容嵌套过深 / the body is nested too deeply"


@pytest.mark.parametrize("body", [DEEP_OBJECT, DEEP_ARRAY], ids=["object", "array"])
@pytest.mark.parametrize(
    ("who", "path"),
    [
        (None, "/api/v1/auth/login"),
        (None, "/api/v1/enterprise-view"),
        ("OFF-SAMR-1", "/api/v1/scans"),
        ("sup", "/api/v1/exception-bases"),
        ("admin-SAMR", "/api/v1/draws"),
    ],
)
def test_a_deeply_nested_body_is_a_400_in_chinese_first(api: Api, who: str | None, path: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    r = api.as_(who).post(path, content=body, headers=headers) if who else api.client.post(path, content=body, headers=headers)
    assert r.status_code == 400, r.text[:300]
    assert r.json() == {"status_code": 400, "detail": NESTED, "extra": None}


def test_moderately_nested_bodies_still_get_their_ordinary_answer(api: Api) -> None:
    """Only bodies deeper than the decoder goes are refused as too deep: a 100-deep one is just a wrong body."""
    r = api.client.post("/api/v1/auth/login", content=b'{"a":' * 100 + b"1" + b"}" * 100, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"] != NESTED


@pytest.mark.parametrize("day", ["9999-12-31", "9999-12-01", "0001-01-01", "1999-12-31", "2100-01-01"])
@pytest.mark.parametrize("who", ["sup", "admin-SAMR"])
def test_a_decision_date_outside_2000_to_2099_is_a_400(api: Api, who: str, day: str) -> None:
    r = api.as_(who).post("/api/v1/decisions", json={"decision_id": f"D-{day}", "agency_id": "SAMR", "kind": "penalty", "decided_on": day})
    assert r.status_code == 400, r.text
    assert r.json()["extra"][0]["message"].startswith("decided_on 须在 2000-01-01 至 2099-12-31 之间 / decided_on must be between")


def test_the_edges_of_the_date_range_are_accepted(api: Api) -> None:
    for day in ("2000-01-01", "2099-12-31"):
        r = api.post("/api/v1/decisions", json={"decision_id": f"D-{day}", "agency_id": "SAMR", "kind": "penalty", "decided_on": day})
        assert r.status_code == 201, r.text


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_disclosure_date_outside_the_range_is_a_400(api: Api, day: str) -> None:
    assert api.post("/api/v1/decisions", json={"decision_id": "D-1", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-02-10"}).status_code == 201
    r = api.post("/api/v1/decisions/D-1/disclosure", json={"disclosed_on": day})
    assert r.status_code == 400 and r.json()["extra"][0]["message"].startswith("disclosed_on 须在 2000-01-01"), r.text


@pytest.mark.parametrize("day", [dt.date(9999, 12, 31), dt.date(1, 1, 1), FIRST_DAY - dt.timedelta(days=1), LAST_DAY + dt.timedelta(days=1)])
def test_working_days_refuse_dates_outside_the_range_instead_of_overflowing(day: dt.date) -> None:
    with pytest.raises(Invalid, match="must be between 2000-01-01 and 2099-12-31"):
        add_working_days(day, 20)
    if day != LAST_DAY + dt.timedelta(days=1):  # a deadline may lie after the last day (below)
        with pytest.raises(Invalid):
            working_days_between(FIRST_DAY, day)


def test_a_decision_on_the_last_day_has_its_deadline_watched_without_error(api: Api, seeded_db: Path) -> None:
    """Its deadline falls in 2100: the daily deadline check still counts the working days up to it."""
    r = api.post("/api/v1/decisions", json={"decision_id": "D-last", "agency_id": "SAMR", "kind": "other", "decided_on": "2099-12-31"})
    assert r.status_code == 201 and r.json()["deadline"] > "2100-01-01", r.text
    con = dbmod.connect(seeded_db)
    try:
        assert check_deadlines(Tx(con), int(dt.datetime(2099, 12, 31, 4, tzinfo=dt.timezone.utc).timestamp() * 1000)) == {"warned": 0, "missed": 0}
        day_before = dt.date.fromisoformat(r.json()["deadline"]) - dt.timedelta(days=1)
        assert check_deadlines(Tx(con), int(dt.datetime.combine(day_before, dt.time(4), dt.timezone.utc).timestamp() * 1000)) == {"warned": 1, "missed": 0}
    finally:
        con.close()


def test_working_days_are_counted_up_to_the_edges() -> None:
    assert add_working_days(LAST_DAY, 20)[0] > LAST_DAY  # the deadline may fall in the next century
    assert working_days_between(FIRST_DAY, FIRST_DAY) == 0
    with pytest.raises(Invalid):
        add_working_days(FIRST_DAY, MAX_WORKING_DAYS + 1)
    with pytest.raises(Invalid):
        add_working_days(FIRST_DAY, -1)
