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
from protocol.enterprise_code import CodeError
from protocol.signing import SigningKey
from server.console.auth import add_user
from server.rules.codes import (
    ACTIVE_KEY_ID,
    RESPONSIBLE_AFTER_INSPECTION_DAYS,
    Revoker,
    check_code,
    ensure_code_key,
    issue_code,
    responsible,
    revoke_codes,
    revoked_list,
    today_cst,
    verify_keys,
)
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.storage.engine import Storage, sql, storage_for
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, UNREGISTERED, Api, password, password_hash
from tests.support.overlap import overlapping_writes

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


_REVOCATIONS = sql(
    """SELECT issued, revoked_reason, revoked_by, revoked_role, revoked_agency_id FROM issued_codes
       WHERE credit_code = :code AND revoked_ms IS NOT NULL ORDER BY issued"""
)
_AGENCY = sql("INSERT INTO agencies(agency_id, name, region, fields) VALUES (:id, :id, :region, '[\"food\"]')")
_INSPECTION = sql(
    """INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms)
       VALUES (:id, :code, '110108', :agency, 'food', 'ended', :at, :ended)"""
)
_PART = sql(
    """INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result)
       VALUES (:id, 'X', :agency, 'food', :at, :ended, 'no_violation')"""
)
_ALERTS = sql("SELECT kind, credit_code, ref FROM alerts ORDER BY id")


def revocation(db: str | Path, credit_code: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in storage_for(db).read(lambda tx: tx.all(_REVOCATIONS, code=credit_code))]


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
    with storage_for(seeded_db).reading() as tx:
        parsed = enterprise_code.verify(new, verify_keys(tx))
        assert parsed.issued == today + dt.timedelta(days=1)  # a date no revoked code carries: devices accept it offline
        assert f"{PLAIN}:{parsed.issued:%Y%m%d}" not in revoked_list(tx)
        assert f"{PLAIN}:{today:%Y%m%d}" in revoked_list(tx)


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


def _agency_with_admin(db: str | Path, agency: str, region: str) -> None:
    with storage_for(db).writing() as tx:
        tx.run(_AGENCY, id=agency, region=region)
        add_user(tx, f"admin-{agency}", password(f"admin-{agency}"), "agency_admin", agency_id=agency, password_hash=password_hash(f"admin-{agency}"))


def _inspected(db: str | Path, agency: str, credit_code: str, at_ms: int) -> None:
    with storage_for(db).writing() as tx:
        iid = f"I-{agency}-{at_ms}"
        tx.run(_INSPECTION, id=iid, code=credit_code, agency=agency, at=at_ms, ended=at_ms + 3_600_000)
        tx.run(_PART, id=iid, agency=agency, at=at_ms, ended=at_ms + 3_600_000)


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


def test_the_rule_and_the_reissue_in_the_code_module(seeded_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "server"  # settings.key_base: the SQLite file, or <key_dir>/server with PostgreSQL
    with storage_for(seeded_url).writing() as tx:
        assert responsible(tx, "SAMR", GOOD, NOW_MS) and not responsible(tx, "FIRE", GOOD, NOW_MS)
        assert not responsible(tx, "SAMR", GOOD, NOW_MS + 61 * DAY_MS)  # the plan is no longer in force
        assert not responsible(tx, "NOPE", GOOD, NOW_MS)
        with pytest.raises(Forbidden):
            revoke_codes(tx, GOOD, "x", Revoker("admin-FIRE", "agency_admin", "FIRE"), NOW_MS)
        with pytest.raises(Forbidden):
            revoke_codes(tx, GOOD, "x", Revoker("someone", "officer", "SAMR"), NOW_MS)
        with pytest.raises(Invalid):
            revoke_codes(tx, "not a code", "x")
        with pytest.raises(NotFound):
            issue_code(tx, keys, UNREGISTERED)
        with pytest.raises(Conflict):
            revoke_codes(tx, GOOD, "x")  # nothing issued yet
        day = dt.date(2026, 11, 24)
        first, _ = issue_code(tx, keys, PLAIN, today=day)
        assert issue_code(tx, keys, PLAIN, today=day)[0] == first  # the code in force is reused
        assert revoke_codes(tx, PLAIN, "x") == 1  # the command line (operator) may revoke
        assert ":20261125:" in issue_code(tx, keys, PLAIN, today=day)[0]
        assert revoke_codes(tx, PLAIN, "y") == 1
        third, _ = issue_code(tx, keys, PLAIN, today=day)
        assert ":20261126:" in third
        assert issue_code(tx, keys, PLAIN, today=day + dt.timedelta(days=2))[0] == third  # its date has come: still the one in force
        assert ":20261130:" in issue_code(tx, keys, PLAIN, today=day + dt.timedelta(days=6))[0]  # a later day: that day's code
        assert revoked_list(tx) == [f"{PLAIN}:20261124", f"{PLAIN}:20261125"]
    assert revocation(seeded_url, PLAIN) == [("2026-11-24", "x", "fe-server", "operator", None), ("2026-11-25", "y", "fe-server", "operator", None)]


def test_responsibility_on_the_database(seeded_url: str) -> None:
    _agency_with_admin(seeded_url, "ECO", "110105")
    _agency_with_admin(seeded_url, "CITY", "")
    _inspected(seeded_url, "ECO", PLAIN, NOW_MS - DAY_MS)
    _inspected(seeded_url, "CITY", PLAIN, NOW_MS - DAY_MS)
    _inspected(seeded_url, "FIRE", PLAIN, NOW_MS - (RESPONSIBLE_AFTER_INSPECTION_DAYS + 1) * DAY_MS)
    with storage_for(seeded_url).reading() as tx:
        assert [a for a in ("ECO", "CITY", "FIRE", "SAMR") if responsible(tx, a, PLAIN, NOW_MS)] == ["CITY"]


# ------------------------------------------------------------------------------------------ attacks, on both backends


def test_forged_altered_and_revoked_codes_are_refused(seeded_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "server"
    store = storage_for(seeded_url)
    with store.writing() as tx:
        text, _ = issue_code(tx, keys, PLAIN)
    parsed = store.read(lambda tx: check_code(tx, text))
    assert parsed.credit_code == PLAIN
    forger = SigningKey.generate()  # a key of the same id that the server never registered
    forged = enterprise_code.issue(GOOD, forger, ACTIVE_KEY_ID, today_cst())
    unknown = enterprise_code.issue(GOOD, forger, "K9", today_cst())
    altered = text.replace(PLAIN, GOOD)
    for bad, reason in ((forged, "altered"), (unknown, "unknown_key"), (altered, "altered")):
        with pytest.raises(CodeError) as e, store.reading() as tx:
            check_code(tx, bad)
        assert e.value.reason == reason, bad
    with store.writing() as tx:
        revoke_codes(tx, PLAIN, "门贴遗失")
    with pytest.raises(CodeError) as e, store.reading() as tx:
        check_code(tx, text)
    assert e.value.reason == "revoked" and "门贴遗失" in str(e.value)


def test_a_retired_key_no_longer_verifies(seeded_url: str, tmp_path: Path) -> None:
    store = storage_for(seeded_url)
    with store.writing() as tx:
        text, _ = issue_code(tx, tmp_path / "server", PLAIN)
        tx.run(sql("UPDATE code_keys SET retired_ms = :now"), now=NOW_MS)
    with pytest.raises(CodeError) as e, store.reading() as tx:
        check_code(tx, text)
    assert e.value.reason == "unknown_key" and verify_keys(tx) == {}


def test_two_issuers_at_once_get_one_code(seeded_url: str, tmp_path: Path) -> None:
    """Two administrators print an enterprise's code at the same moment (PostgreSQL: two API processes)."""
    keys = tmp_path / "server"
    store = storage_for(seeded_url)
    store.write(lambda tx: ensure_code_key(tx, keys))
    first, second = overlapping_writes(store, lambda tx: issue_code(tx, keys, PLAIN), lambda tx: issue_code(tx, keys, PLAIN))
    assert not isinstance(second, Exception), second
    assert first == second
    assert store.read(lambda tx: tx.scalar(sql("SELECT count(*) FROM issued_codes"))) == 1


def test_two_revocations_at_once_revoke_once(seeded_url: str, tmp_path: Path) -> None:
    store = storage_for(seeded_url)
    store.write(lambda tx: issue_code(tx, tmp_path / "server", PLAIN))
    outcomes = overlapping_writes(store, lambda tx: revoke_codes(tx, PLAIN, "第一次"), lambda tx: revoke_codes(tx, PLAIN, "第二次"))
    assert outcomes[0] == 1 and isinstance(outcomes[1], Conflict), outcomes
    assert [r[1] for r in revocation(seeded_url, PLAIN)] == ["第一次"]
    assert [a[0] for a in store.read(lambda tx: tx.all(_ALERTS))] == ["code_revoked"]


def test_a_code_issued_while_another_revokes_is_a_new_one(seeded_url: str, tmp_path: Path) -> None:
    """A revocation and an issue at once: the issuer must not hand out the code being revoked."""
    keys = tmp_path / "server"
    store: Storage = storage_for(seeded_url)
    old, _ = store.write(lambda tx: issue_code(tx, keys, PLAIN))
    revoked, (new, _) = overlapping_writes(store, lambda tx: revoke_codes(tx, PLAIN, "被涂改"), lambda tx: issue_code(tx, keys, PLAIN))
    assert revoked == 1 and new != old
    assert store.read(lambda tx: check_code(tx, new)).credit_code == PLAIN
