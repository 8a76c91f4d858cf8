"""Enterprise codes: who may revoke one, what a revocation records and raises, and reissue at once.

Seeded registers (tests/server/conftest.py): SAMR and FIRE in region 110108 like every enterprise; SAMR's
plan PLAN-2026-Q4 in force names GOOD; nobody has inspected anything yet.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from protocol import enterprise_code
from server import db as dbmod
from server.auth import add_user
from server.codes import RESPONSIBLE_AFTER_INSPECTION_DAYS, Revoker, issue_code, responsible, revoke_codes, revoked_list, today_cst, verify_keys
from server.errors import Conflict, Forbidden, Invalid, NotFound
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, UNREGISTERED, Api, password, password_hash

REVOKE = "/api/v1/enterprises/{}/qr/revoke"


def qr(api: Api, credit_code: str) -> str:
    """The enterprise's code in force, issued by the supervisor."""
    r = api.get(f"/api/v1/enterprises/{credit_code}/qr.txt")
    assert r.status_code == 200, r.text
    return str(r.text)


def scan(api: Api, officer: str, text: str, field: str = "food") -> dict[str, Any]:
    r = api.as_(officer).post("/api/v1/scans", json={"code_text": text, "field": field})
    assert r.status_code == 200, r.text
    return dict(r.json())


def revoke(api: Api, user: str, credit_code: str, reason: str = "门贴遗失") -> Any:
    return api.as_(user).post(REVOKE.format(credit_code), json={"reason": reason})


def revocation(seeded_db: Path, credit_code: str) -> list[tuple[Any, ...]]:
    con = dbmod.connect(seeded_db)
    try:
        return con.execute(
            "SELECT issued, revoked_reason, revoked_by, revoked_role, revoked_agency_id FROM issued_codes WHERE credit_code = ? AND revoked_ms IS NOT NULL ORDER BY issued",
            (credit_code,),
        ).fetchall()
    finally:
        con.close()


def test_an_agency_with_no_dealings_with_the_enterprise_cannot_revoke_its_code(api: Api, seeded_db: Path) -> None:
    """The finding: admin-ecology revoked a code it had nothing to do with, and market regulation was refused."""
    text = qr(api, PLAIN)
    r = revoke(api, "admin-FIRE", PLAIN, "恶意作废")
    assert r.status_code == 403 and "负责" in r.json()["detail"], r.text
    assert revocation(seeded_db, PLAIN) == []
    assert scan(api, "OFF-SAMR-1", text)["outcome"] == "allowed"
    assert api.get("/api/v1/alerts", params={"kind": "code_revoked"}).json() == []


def test_an_agency_that_inspected_the_enterprise_revokes_and_a_new_code_works_at_once(api: Api, seeded_db: Path) -> None:
    old = qr(api, PLAIN)
    first = scan(api, "OFF-FIRE-1", old, field="fire")
    assert first["outcome"] == "allowed"  # FIRE now deals with PLAIN on record
    r = revoke(api, "admin-FIRE", PLAIN, "门贴被涂改")
    assert r.status_code == 200 and r.json() == {"revoked": 1}, r.text
    assert scan(api, "OFF-SAMR-1", old)["code"] == "code_revoked"
    new = qr(api, PLAIN)  # the same day: before the fix, "a new one can be issued tomorrow"
    assert new != old
    decided = scan(api, "OFF-SAMR-1", new)
    assert decided["outcome"] in ("allowed", "join") and decided["code"] != "code_revoked", decided
    today = today_cst()
    assert revocation(seeded_db, PLAIN) == [(today.isoformat(), "门贴被涂改", "admin-FIRE", "agency_admin", "FIRE")]
    con = dbmod.connect(seeded_db)
    try:
        parsed = enterprise_code.verify(new, verify_keys(con))
        assert parsed.issued == today + dt.timedelta(days=1)  # a date no revoked code carries: devices accept it offline
        assert f"{PLAIN}:{parsed.issued:%Y%m%d}" not in revoked_list(con)
        assert f"{PLAIN}:{today:%Y%m%d}" in revoked_list(con)
    finally:
        con.close()


def test_the_agency_of_a_plan_in_force_and_the_supervisor_may_revoke(api: Api, seeded_db: Path) -> None:
    qr(api, GOOD)
    assert revoke(api, "admin-SAMR", GOOD, "企业搬迁").status_code == 200  # SAMR's draw plan names GOOD
    qr(api, GOOD)
    assert revoke(api, "sup", GOOD, "核查后作废").status_code == 200
    qr(api, PLAIN)
    assert revoke(api, "sup", PLAIN, "监督机构作废").status_code == 200  # nobody deals with PLAIN: the supervisor still may
    rows = revocation(seeded_db, GOOD)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [("企业搬迁", "admin-SAMR", "agency_admin", "SAMR"), ("核查后作废", "sup", "supervisor", None)]
    assert [r[0] for r in rows] == [today_cst().isoformat(), (today_cst() + dt.timedelta(days=1)).isoformat()]


def test_every_revocation_raises_an_alert_with_who_and_why(api: Api) -> None:
    text = qr(api, PLAIN)
    scan(api, "OFF-FIRE-1", text, field="fire")
    assert revoke(api, "admin-FIRE", PLAIN, "门贴被涂改").status_code == 200
    qr(api, GOOD)
    assert revoke(api, "admin-SAMR", GOOD, "企业搬迁").status_code == 200
    alerts = api.get("/api/v1/alerts", params={"kind": "code_revoked"}).json()  # the supervisor sees both
    assert [(a["credit_code"], a["agency_id"], a["severity"]) for a in alerts] == [(GOOD, "SAMR", "warning"), (PLAIN, "FIRE", "warning")]
    fire = alerts[1]
    assert "admin-FIRE" in fire["message_zh"] and "门贴被涂改" in fire["message_zh"]
    assert "消防救援支队执法机关管理员 admin-FIRE" in fire["message_zh"]  # the agency by its name, not its id
    assert "admin-FIRE (agency administrator, Fire rescue)" in fire["message_en"] and "门贴被涂改" in fire["message_en"]
    assert fire["ref"] == f"{PLAIN}:{today_cst():%Y%m%d}"
    own = api.as_("admin-FIRE").get("/api/v1/alerts", params={"kind": "code_revoked"}).json()
    assert [a["credit_code"] for a in own] == [PLAIN]  # an agency sees its own revocations, not another's


@pytest.mark.parametrize(
    ("user", "path", "body", "status"),
    [
        ("sup", "12345", {"reason": "x"}, 400),  # before the fix: a 500 from the credit-code check
        ("sup", "91110108MA0000001X", {"reason": "x"}, 400),  # wrong check character
        ("sup", "../../x", {"reason": "x"}, 404),  # not a route at all
        ("sup", UNREGISTERED, {"reason": "x"}, 404),
        ("sup", PLAIN, {"reason": "   "}, 400),
        ("sup", PLAIN, {"reason": ""}, 400),
        ("sup", PLAIN, {}, 400),
        ("sup", PLAIN, {"reason": "x" * 501}, 400),
        ("OFF-SAMR-1", PLAIN, {"reason": "x"}, 403),
        ("ent-plain", PLAIN, {"reason": "x"}, 403),
    ],
)
def test_bad_revocations_get_a_clear_4xx(api: Api, user: str, path: str, body: dict[str, str], status: int) -> None:
    qr(api, PLAIN)
    r = api.as_(user).post(REVOKE.format(path), json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_without_a_session_and_twice_in_a_row(api: Api) -> None:
    qr(api, PLAIN)
    assert api.client.post(REVOKE.format(PLAIN), json={"reason": "x"}).status_code == 401
    assert revoke(api, "sup", PLAIN).status_code == 200
    again = revoke(api, "sup", PLAIN)  # a double click: nothing left in force
    assert again.status_code == 409 and "no code in force" in again.json()["detail"]


def _agency_with_admin(seeded_db: Path, agency: str, region: str) -> None:
    con = dbmod.connect(seeded_db)
    try:
        con.execute("INSERT INTO agencies(agency_id, name, region, fields) VALUES (?, ?, ?, '[\"food\"]')", (agency, agency, region))
        add_user(con, f"admin-{agency}", password(f"admin-{agency}"), "agency_admin", agency_id=agency, password_hash=password_hash(f"admin-{agency}"))
    finally:
        con.close()


def _inspected(seeded_db: Path, agency: str, credit_code: str, at_ms: int) -> None:
    con = dbmod.connect(seeded_db)
    try:
        iid = f"I-{agency}-{at_ms}"
        con.execute(
            "INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms) VALUES (?, ?, '110108', ?, 'food', 'ended', ?, ?)",
            (iid, credit_code, agency, at_ms, at_ms + 3_600_000),
        )
        con.execute(
            "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result) VALUES (?, 'X', ?, 'food', ?, ?, 'no_violation')",
            (iid, agency, at_ms, at_ms + 3_600_000),
        )
    finally:
        con.close()


def test_responsibility_needs_the_region_and_a_recent_dealing(api: Api, seeded_db: Path) -> None:
    _agency_with_admin(seeded_db, "ECO", "110105")  # another district
    _agency_with_admin(seeded_db, "CITY", "")  # a city-wide agency covers every district
    _inspected(seeded_db, "ECO", PLAIN, NOW_MS - DAY_MS)
    _inspected(seeded_db, "CITY", PLAIN, NOW_MS - DAY_MS)
    _inspected(seeded_db, "FIRE", PLAIN, NOW_MS - (RESPONSIBLE_AFTER_INSPECTION_DAYS + 1) * DAY_MS)  # too long ago
    qr(api, PLAIN)
    assert revoke(api, "admin-ECO", PLAIN).status_code == 403
    assert revoke(api, "admin-FIRE", PLAIN).status_code == 403
    assert revoke(api, "admin-CITY", PLAIN).status_code == 200


def test_the_rule_and_the_reissue_in_the_code_module(seeded_db: Path, tmp_path: Path) -> None:
    con = dbmod.connect(seeded_db)
    try:
        assert responsible(con, "SAMR", GOOD, NOW_MS) and not responsible(con, "FIRE", GOOD, NOW_MS)
        assert not responsible(con, "SAMR", GOOD, NOW_MS + 61 * DAY_MS)  # the plan is no longer in force
        assert not responsible(con, "NOPE", GOOD, NOW_MS)
        with pytest.raises(Forbidden):
            revoke_codes(con, GOOD, "x", Revoker("admin-FIRE", "agency_admin", "FIRE"), NOW_MS)
        with pytest.raises(Forbidden):
            revoke_codes(con, GOOD, "x", Revoker("someone", "officer", "SAMR"), NOW_MS)
        with pytest.raises(Invalid):
            revoke_codes(con, "not a code", "x")
        with pytest.raises(NotFound):
            issue_code(con, seeded_db, UNREGISTERED)
        with pytest.raises(Conflict):
            revoke_codes(con, GOOD, "x")  # nothing issued yet
        day = dt.date(2026, 11, 24)
        first, _ = issue_code(con, seeded_db, PLAIN, today=day)
        assert issue_code(con, seeded_db, PLAIN, today=day)[0] == first  # the code in force is reused
        assert revoke_codes(con, PLAIN, "x") == 1  # the command line (operator) may revoke
        assert ":20261125:" in issue_code(con, seeded_db, PLAIN, today=day)[0]
        assert revoke_codes(con, PLAIN, "y") == 1
        third, _ = issue_code(con, seeded_db, PLAIN, today=day)
        assert ":20261126:" in third
        assert issue_code(con, seeded_db, PLAIN, today=day + dt.timedelta(days=2))[0] == third  # its date has come: still the one in force
        assert ":20261130:" in issue_code(con, seeded_db, PLAIN, today=day + dt.timedelta(days=6))[0]  # a later day: that day's code
        assert revoked_list(con) == [f"{PLAIN}:20261124", f"{PLAIN}:20261125"]
        assert con.execute("SELECT revoked_by, revoked_role FROM issued_codes WHERE issued = '2026-11-24'").fetchone() == ("fe-server", "operator")
    finally:
        con.close()
