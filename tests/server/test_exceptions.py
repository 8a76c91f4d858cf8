"""Exceptions to the no-disturb list, the repeat window and the yearly cap must check out against a register;
unregistered urgent ones go ahead only pending a supervisor's review. Attacked as an officer with a made-up
reference, an agency admin overreaching, and a replayed scan id."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from protocol.messages import ExceptionBasis
from server.app import create_app
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.rules.exception_bases import (
    BasisIn,
    Check,
    add_basis,
    check_exception,
    decide_review,
    list_reviews,
    pending_reviews_of,
    queue_review,
    review_counts,
    withdraw_basis,
)
from server.imports import import_csv
from server.settings import ServerSettings
from server.storage.engine import Storage, Tx, sql, storage_for
from tests.server.conftest import DAY_MS, FRAGILE, GOOD, NOW_MS, PLAIN, Api, code
from tests.server.test_scans_api import end, qr, scan
from tests.support.overlap import overlapping_writes

ASSIGNMENT = "京市监交〔2026〕12号"
FOLLOW_UP_DAYS = 30

_ENTERPRISE = sql("INSERT INTO enterprises(credit_code, name, region) VALUES (:code, '外区企业', :region)")
_PLAN = sql(
    """INSERT INTO plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms)
       VALUES (:id, :agency, :field, :kind, :id, :since, :until, :since)"""
)
_PLAN_TARGET = sql("INSERT INTO plan_targets(plan_id, credit_code) VALUES (:plan, :code)")
# What scanning records when a basis opens an inspection (the rule under test reads it back).
_OPENED = sql(
    """INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, exception_kind, exception_ref)
       VALUES (:id, :code, '110108', :agency, :field, 'open', :at, :kind, :ref)"""
)
_PART = sql(
    """INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result)
       VALUES (:id, :officer, :agency, :field, :at, :ended, :result)"""
)
_INSPECTIONS_ON = sql("SELECT count(*) FROM inspections WHERE exception_ref = :ref")


def basis(kind: str = "superior_assignment", reference: str = ASSIGNMENT, credit_code: str = GOOD, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind, "reference": reference, "credit_code": credit_code, "issued_by": "北京市市场监督管理局",
        "valid_from_ms": NOW_MS - 3_600_000, "valid_to_ms": NOW_MS + 30 * DAY_MS, **extra,
    }  # fmt: skip


def register(api: Api, **kw: Any) -> dict[str, Any]:
    r = api.post("/api/v1/exception-bases", json=basis(**kw))
    assert r.status_code == 201, r.text
    return r.json()


def alerts(api: Api, kind: str | None = None) -> list[dict[str, Any]]:
    r = api.get("/api/v1/alerts", params={"kind": kind} if kind else {})
    assert r.status_code == 200, r.text
    return r.json()


def inspections_of(api: Api, credit_code: str) -> list[dict[str, Any]]:
    return api.get("/api/v1/inspections", params={"credit_code": credit_code}).json()


# ------------------------------------------------------------------------------------------ made-up references


@pytest.mark.parametrize("kind", ["superior_assignment", "complaint", "random_draw", "rectification_follow_up"])
def test_a_made_up_reference_does_not_open_a_no_disturb_enterprise(api: Api, kind: str) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": kind, "reference": "x"})
    assert (d["outcome"], d["code"], d["inspection_id"]) == ("refused", "exception_invalid", None)
    assert "未登记" in d["message_zh"] or "不存在" in d["message_zh"]
    assert inspections_of(api, GOOD) == []
    [alert] = alerts(api, "exception_invalid")
    assert alert["credit_code"] == GOOD and alert["agency_id"] == "SAMR" and "守信示范企业" in alert["message_zh"]


def test_made_up_references_do_not_pass_the_repeat_window_or_the_yearly_cap(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", FRAGILE)  # low/A: one a year
    end(api, first["inspection_id"], "OFF-SAMR-1")
    repeat = scan(api, "OFF-SAMR-2", FRAGILE, exception_basis={"kind": "superior_assignment", "reference": "made-up"})
    assert repeat["code"] == "exception_invalid"
    capped = scan(api, "OFF-FIRE-1", FRAGILE, field="fire", exception_basis={"kind": "superior_assignment", "reference": "made-up"})
    assert capped["code"] == "exception_invalid"
    assert len(inspections_of(api, FRAGILE)) == 1


def test_an_empty_reference_is_refused(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "  "})
    assert d["code"] == "exception_invalid" and "未填写" in d["message_zh"]


# ------------------------------------------------------------------------------------------ registered assignments


def test_a_registered_assignment_opens_the_inspection_and_tells_supervisors(api: Api) -> None:
    entry = register(api, agency_id="SAMR", field="food")
    assert entry["created_by"] == "sup" and entry["enterprise_name"] == "守信示范企业"
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "superior_assignment", "reference": ASSIGNMENT})
    assert (d["outcome"], d["code"], d["exception_used"], d["pending_review"]) == ("allowed", "allowed_exception", True, False)
    assert "上级交办" in d["message_zh"] and ASSIGNMENT in d["message_zh"]
    [alert] = alerts(api, "no_disturb_exception")
    assert alert["agency_id"] == "SAMR" and ASSIGNMENT in alert["message_zh"] and alert["ref"] == d["scan_id"]


@pytest.mark.parametrize(
    ("entry", "officer", "field", "words"),
    [
        (dict(credit_code=PLAIN), "OFF-SAMR-1", "food", "其他企业"),
        (dict(agency_id="FIRE"), "OFF-SAMR-1", "food", "其他执法机关"),
        (dict(field="fire"), "OFF-SAMR-1", "food", "其他执法领域"),
        (dict(valid_from_ms=NOW_MS + DAY_MS, valid_to_ms=NOW_MS + 9 * DAY_MS), "OFF-SAMR-1", "food", "不在有效期内"),
    ],
    ids=["other-enterprise", "other-agency", "other-field", "not-yet"],
)
def test_a_registered_assignment_must_fit(api: Api, entry: dict[str, Any], officer: str, field: str, words: str) -> None:
    register(api, **entry)
    d = scan(api, officer, GOOD, field, exception_basis={"kind": "superior_assignment", "reference": ASSIGNMENT})
    assert d["code"] == "exception_invalid" and words in d["message_zh"], d


def test_a_withdrawn_assignment_no_longer_counts(api: Api) -> None:
    register(api)
    r = api.post("/api/v1/exception-bases/withdraw", json={"kind": "superior_assignment", "reference": ASSIGNMENT, "credit_code": GOOD})
    assert r.status_code == 200 and r.json()["withdrawn_by"] == "sup"
    again = api.post("/api/v1/exception-bases/withdraw", json={"kind": "superior_assignment", "reference": ASSIGNMENT, "credit_code": GOOD})
    assert again.status_code == 409
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "superior_assignment", "reference": ASSIGNMENT})
    assert d["code"] == "exception_invalid" and "已撤销" in d["message_zh"]


def test_agency_admins_register_for_their_own_agency_only(api: Api) -> None:
    admin = api.as_("admin-FIRE")
    assert admin.post("/api/v1/exception-bases", json=basis(agency_id="SAMR")).status_code == 403
    mine = admin.post("/api/v1/exception-bases", json=basis())
    assert mine.status_code == 201 and mine.json()["agency_id"] == "FIRE"  # "any agency" is narrowed to their own
    # so a SAMR officer cannot cite what the fire brigade's admin registered
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "superior_assignment", "reference": ASSIGNMENT})
    assert d["code"] == "exception_invalid"
    # nor may SAMR's admin withdraw the fire brigade's entry
    r = api.as_("admin-SAMR").post("/api/v1/exception-bases/withdraw", json={"kind": "superior_assignment", "reference": ASSIGNMENT, "credit_code": GOOD})
    assert r.status_code == 403
    assert api.as_("OFF-SAMR-1").post("/api/v1/exception-bases", json=basis()).status_code == 403
    assert api.as_("ent-plain").get("/api/v1/exception-bases").status_code == 403
    # an officer sees what their agency may cite (to pick from), not other agencies' entries
    assert api.as_("OFF-FIRE-1").get("/api/v1/exception-bases").json()[0]["reference"] == ASSIGNMENT
    assert api.as_("OFF-SAMR-1").get("/api/v1/exception-bases").json() == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (dict(credit_code="91110108MA0000001X"), 400),  # wrong check character
        (dict(credit_code="91110108MA0000099Y"), 400),
        (dict(valid_to_ms=NOW_MS - 2 * DAY_MS), 400),
        (dict(valid_to_ms=NOW_MS + 400 * DAY_MS), 400),
        (dict(agency_id="NO-SUCH-AGENCY"), 404),
        (dict(field="no-such-field"), 404),
        (dict(kind="complaint"), 400),
        (dict(reference=""), 400),
        (dict(reference=" padded "), 400),
        (dict(reference="x" * 201), 400),
        (dict(unknown_key=1), 400),
        (dict(valid_from_ms=-1), 400),
    ],
)
def test_bad_register_entries_get_a_clear_4xx(api: Api, change: dict[str, Any], status: int) -> None:
    r = api.post("/api/v1/exception-bases", json=basis(**change))
    assert r.status_code == status, r.text
    assert api.get("/api/v1/exception-bases").json() == []


def test_an_entry_is_registered_once(api: Api) -> None:
    register(api)
    r = api.post("/api/v1/exception-bases", json=basis())
    assert r.status_code == 409 and "已为该企业登记" in r.text


def test_assignments_and_risk_notices_are_imported(api: Api, seeded_db: Path) -> None:
    csv = f"reference,credit_code,issued_by,valid_from,valid_to,agency_id,field\n{ASSIGNMENT},{GOOD},北京市市场监督管理局,2026-01-01,2026-12-31,SAMR,food\n"
    result = import_csv(seeded_db, "assignments", io.StringIO(csv), progress=False)
    assert result.ok and result.rows == 1
    again = import_csv(seeded_db, "assignments", io.StringIO(csv), progress=False)
    assert not again.ok and "already registered" in again.errors[0][1]
    too_long = f"reference,credit_code,issued_by,valid_from,valid_to\nR-1,{GOOD},应急管理局,2026-01-01,2027-06-30\n"
    bad = import_csv(seeded_db, "risk-notices", io.StringIO(too_long), progress=False)
    assert not bad.ok and "366 days" in bad.errors[0][1]
    [entry] = api.get("/api/v1/exception-bases").json()
    assert (entry["kind"], entry["agency_id"], entry["created_by"]) == ("superior_assignment", "SAMR", "import")


def test_the_cli_imports_risk_notices(seeded_db: Path, tmp_path: Path) -> None:
    f = tmp_path / "risks.csv"
    f.write_text(f"reference,credit_code,issued_by,valid_from,valid_to\n应急〔2026〕3号,{GOOD},区应急管理局,2026-11-01,2027-01-31\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "server.cli", "import", "risk-notices", str(f), "--db", str(seeded_db), "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imported 1 risk-notices rows" in out.stdout


# ------------------------------------------------------------------------------------------ pending review


def test_an_unregistered_urgent_exception_goes_ahead_only_pending_review(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "燃气泄漏-现场"})
    assert (d["outcome"], d["code"], d["pending_review"]) == ("allowed", "allowed_pending_review", True)
    assert "待监督人员复核" in d["message_zh"] and "pending a supervisor's review" in d["message_en"]
    [review] = api.get("/api/v1/exception-reviews").json()
    assert (review["status"], review["kind"], review["inspection_id"], review["agency_id"]) == ("pending", "major_risk", d["inspection_id"], "SAMR")
    assert "未登记" in review["problem"]
    assert {a["kind"] for a in alerts(api)} >= {"exception_pending_review", "no_disturb_exception"}
    # only a supervisor decides; an agency admin sees their agency's queue but cannot clear it
    assert api.as_("admin-SAMR").get("/api/v1/exception-reviews").json()[0]["scan_id"] == d["scan_id"]
    assert api.as_("admin-FIRE").get("/api/v1/exception-reviews").json() == []
    assert api.as_("admin-SAMR").post(f"/api/v1/exception-reviews/{d['scan_id']}/confirm", json={}).status_code == 403
    assert api.as_("OFF-SAMR-1").get("/api/v1/exception-reviews").status_code == 403
    assert api.post(f"/api/v1/exception-reviews/{d['scan_id']}/reject", json={"note": ""}).status_code == 400
    r = api.post(f"/api/v1/exception-reviews/{d['scan_id']}/reject", json={"note": "现场核实无燃气泄漏"})
    assert r.status_code == 200 and (r.json()["status"], r.json()["reviewed_by"]) == ("rejected", "sup")
    assert api.post(f"/api/v1/exception-reviews/{d['scan_id']}/confirm", json={}).status_code == 409  # a verdict stands
    assert api.post("/api/v1/exception-reviews/no-such-scan/confirm", json={}).status_code == 404
    [rejected] = alerts(api, "exception_rejected")
    assert rejected["agency_id"] == "SAMR" and "现场核实无燃气泄漏" in rejected["message_zh"]
    assert api.get("/api/v1/exception-reviews/summary").json() == {"days": 30, "pending": 0, "confirmed": 0, "rejected": 1}
    assert api.get("/api/v1/exception-reviews", params={"status": "pending"}).json() == []


def test_kinds_the_policy_does_not_name_are_refused_when_unregistered(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "superior_assignment", "reference": "口头交办"})
    assert d["code"] == "exception_invalid"
    assert api.get("/api/v1/exception-reviews").json() == []


@pytest.fixture
def strict_api(seeded_db: Path, tmp_path: Path) -> Iterator[Api]:
    """The API under a policy that lets no unregistered exception go ahead."""
    policy = tmp_path / "strict.toml"
    policy.write_text("[exceptions]\npending_review_kinds = []\n", encoding="utf-8")
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False, policy_path=policy))) as c:
        yield Api(c)


def test_a_strict_policy_refuses_unregistered_urgent_exceptions(strict_api: Api) -> None:
    d = scan(strict_api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "燃气泄漏-现场"})
    assert d["code"] == "exception_invalid"
    register(strict_api, kind="major_risk", reference="应急〔2026〕3号")
    ok = scan(strict_api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "应急〔2026〕3号"})
    assert ok["code"] == "allowed_exception"


# ------------------------------------------------------------------------------------------ scan ids


def test_a_replayed_scan_id_of_another_officer_reveals_nothing(api: Api) -> None:
    mine = scan(api, "OFF-SAMR-1", PLAIN, scan_id="scan-samr-0001")
    r = api.as_("OFF-FIRE-1").post("/api/v1/scans", json={"code_text": qr(api, PLAIN), "field": "fire", "scan_id": "scan-samr-0001"})
    assert r.status_code == 409 and "已被另一次扫码使用" in r.text
    assert mine["inspection_id"] not in r.text and "海淀某餐饮公司" not in r.text


def test_the_same_scan_sent_twice_gets_the_same_answer_and_opens_one_inspection(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", PLAIN, scan_id="double-click-01")
    second = scan(api, "OFF-SAMR-1", PLAIN, scan_id="double-click-01")
    assert first == second and len(inspections_of(api, PLAIN)) == 1
    other_code = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"code_text": qr(api, FRAGILE), "field": "food", "scan_id": "double-click-01"})
    assert other_code.status_code == 409


# ------------------------------------------------------------------------------------------ a reviewer's attacks


def test_an_expired_assignment_no_longer_counts(api: Api, seeded_db: Path) -> None:
    csv = f"reference,credit_code,issued_by,valid_from,valid_to,agency_id\n{ASSIGNMENT},{GOOD},市局,2020-01-01,2020-06-30,SAMR\n"
    assert import_csv(seeded_db, "assignments", io.StringIO(csv), progress=False).ok
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "superior_assignment", "reference": ASSIGNMENT})
    assert d["code"] == "exception_invalid" and "不在有效期内" in d["message_zh"]


def test_the_api_registers_no_backdated_entries_and_none_outside_the_agencys_region(api: Api, seeded_db: Path) -> None:
    r = api.as_("admin-SAMR").post("/api/v1/exception-bases", json=basis(valid_from_ms=NOW_MS - 300 * DAY_MS))
    assert r.status_code == 400 and "一天" in r.text
    storage_for(seeded_db).write(lambda tx: tx.run(_ENTERPRISE, code=code(7), region="310000"))
    r = api.as_("admin-SAMR").post("/api/v1/exception-bases", json=basis(credit_code=code(7)))
    assert r.status_code == 403 and "辖区" in r.text
    register(api.as_("admin-SAMR"))
    [alert] = alerts(api, "exception_registered")
    assert alert["agency_id"] == "SAMR" and "admin-SAMR" in alert["message_zh"] and ASSIGNMENT in alert["message_zh"]


def test_a_made_up_major_risk_cannot_be_laundered_into_a_rectification_follow_up(api: Api) -> None:
    fake = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "MADE-UP"})
    assert fake["code"] == "allowed_pending_review"
    end(api, fake["inspection_id"], "OFF-SAMR-1", "rectification_ordered")
    assert api.post(f"/api/v1/exception-reviews/{fake['scan_id']}/reject", json={"note": "无此风险"}).status_code == 200
    follow = {"kind": "rectification_follow_up", "reference": fake["inspection_id"]}
    for officer, field in (("OFF-SAMR-2", "food"), ("OFF-FIRE-1", "fire"), ("OFF-SAMR-1", "food")):
        d = scan(api, officer, GOOD, field, exception_basis=follow)
        assert d["code"] == "exception_invalid", (officer, d)


def test_a_rectification_order_is_followed_up_once_by_the_agency_that_gave_it_in_its_field(api: Api) -> None:
    first = scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    end(api, first["inspection_id"], "OFF-FIRE-1", "rectification_ordered")
    follow = {"kind": "rectification_follow_up", "reference": first["inspection_id"]}
    other_agency = scan(api, "OFF-SAMR-1", PLAIN, exception_basis=follow)
    assert other_agency["code"] == "exception_invalid" and "未由本机关" in other_agency["message_zh"]
    other_field = scan(api, "OFF-FIRE-1", PLAIN, field="food", exception_basis=follow)
    assert other_field["code"] == "exception_invalid"
    ok = scan(api, "OFF-FIRE-1", PLAIN, field="fire", exception_basis=follow)
    assert ok["code"] == "allowed_exception"
    end(api, ok["inspection_id"], "OFF-FIRE-1")
    again = scan(api, "OFF-FIRE-1", PLAIN, field="fire", exception_basis=follow)
    assert again["code"] == "exception_invalid" and "已用于" in again["message_zh"]


def test_an_inspection_on_a_basis_awaiting_review_is_no_door_for_others(api: Api) -> None:
    fake = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "FAKE-0"})
    assert fake["code"] == "allowed_pending_review"
    other = scan(api, "OFF-FIRE-1", GOOD, field="fire")
    assert (other["outcome"], other["code"]) == ("refused", "no_disturb")
    api.post(f"/api/v1/exception-reviews/{fake['scan_id']}/confirm", json={"note": "核实属实"})
    joined = scan(api, "OFF-FIRE-1", GOOD, field="fire", scan_id="after-confirm")
    assert joined["outcome"] == "join" and joined["inspection_id"] == fake["inspection_id"]


def test_an_officer_has_one_urgent_exception_awaiting_review_at_a_time(api: Api) -> None:
    assert scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "FAKE-0"})["code"] == "allowed_pending_review"
    d = scan(api, "OFF-SAMR-1", FRAGILE, exception_basis={"kind": "major_risk", "reference": "FAKE-1"})
    assert d["code"] == "exception_invalid" and "待复核" in d["message_zh"]


@pytest.mark.parametrize("look_alike", ["RISK-7 ", "risk-7", "RISK\u20117", "RISK\uff0d7", "RISK-\u200b7"])
def test_a_look_alike_of_a_registered_reference_is_that_reference(api: Api, look_alike: str) -> None:
    register(api.as_("admin-FIRE"), kind="major_risk", reference="RISK-7")
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": look_alike})
    assert d["code"] == "exception_invalid" and "其他执法机关" in d["message_zh"], d


def test_one_complaint_opens_one_inspection_per_agency(api: Api) -> None:
    ticket = {"kind": "complaint", "reference": "12345-2026-001"}
    first = scan(api, "OFF-SAMR-1", GOOD, exception_basis=ticket)
    assert first["code"] == "allowed_exception"
    end(api, first["inspection_id"], "OFF-SAMR-1")
    again = scan(api, "OFF-SAMR-2", GOOD, exception_basis=ticket)
    assert again["code"] == "exception_invalid" and "已用于" in again["message_zh"]


def _special_and_fire_plans(tx: Tx) -> None:
    """SAMR's special action naming GOOD (no random draw), and FIRE's food-safety draw naming GOOD."""
    tx.run(_PLAN, id="SPECIAL-1", agency="SAMR", field="food", kind="special", since=NOW_MS - DAY_MS, until=NOW_MS + DAY_MS)
    tx.run(_PLAN, id="FIRE-FOOD", agency="FIRE", field="food", kind="random_draw", since=NOW_MS - DAY_MS, until=NOW_MS + DAY_MS)
    tx.many(_PLAN_TARGET, [{"plan": "SPECIAL-1", "code": GOOD}, {"plan": "FIRE-FOOD", "code": GOOD}])


def test_a_special_plan_or_another_fields_plan_is_no_random_draw(api: Api, seeded_db: Path) -> None:
    storage_for(seeded_db).write(_special_and_fire_plans)
    special = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "random_draw", "reference": "SPECIAL-1"})
    assert special["code"] == "exception_invalid" and "不是双随机" in special["message_zh"]
    other_field = scan(api, "OFF-FIRE-1", GOOD, field="fire", exception_basis={"kind": "random_draw", "reference": "FIRE-FOOD"})
    assert other_field["code"] == "exception_invalid" and "其他执法领域" in other_field["message_zh"]
    assert scan(api, "OFF-FIRE-1", GOOD, field="food", exception_basis={"kind": "random_draw", "reference": "FIRE-FOOD"})["code"] == "allowed_exception"


# ------------------------------------------------------------------------------------------ the rules on both backends


def check(tx: Tx, kind: str, reference: str, credit_code: str = GOOD, agency: str = "SAMR", field: str = "food", now_ms: int = NOW_MS) -> Check:
    exc = ExceptionBasis(kind=kind, reference=reference)  # type: ignore[arg-type]
    return check_exception(tx, exc, credit_code, agency, field, now_ms, follow_up_days=FOLLOW_UP_DAYS)


def entry(**change: Any) -> BasisIn:
    values = basis(**change)
    return BasisIn(**{k: values[k] for k in values if k in BasisIn.__struct_fields__})


def opened(tx: Tx, inspection_id: str, kind: str, ref: str, agency: str = "SAMR", credit_code: str = GOOD, field: str = "food") -> None:
    """What scanning records when a checked basis opens an inspection."""
    tx.run(_OPENED, id=inspection_id, code=credit_code, agency=agency, field=field, at=NOW_MS, kind=kind, ref=ref)


@pytest.fixture
def store(seeded_url: str) -> Storage:
    return storage_for(seeded_url)


def test_complaints_and_draw_plans_are_checked_against_their_registers(store: Storage) -> None:
    store.write(_special_and_fire_plans)
    with store.writing() as tx:
        assert check(tx, "complaint", "12345-2026-001").verdict == "ok"
        assert check(tx, "complaint", "12345-2026-001", agency="FIRE", field="fire").problem.startswith("工单 12345-2026-001 涉及其他执法领域")
        assert check(tx, "complaint", "12345-2026-002").problem.startswith("工单 12345-2026-002 已办结")
        assert "其他企业" in check(tx, "complaint", "12345-2026-001", credit_code=PLAIN).problem
        assert check(tx, "complaint", "12345-2026-00l").verdict == "unregistered"
        assert check(tx, "random_draw", "PLAN-2026-Q4").verdict == "ok"
        assert check(tx, "random_draw", "plan-2026-q4").verdict == "unregistered"  # PostgreSQL compares as SQLite does
        assert "未抽中" in check(tx, "random_draw", "PLAN-2026-Q4", credit_code=PLAIN).problem
        assert "其他执法机关" in check(tx, "random_draw", "PLAN-2026-Q4", agency="FIRE").problem
        assert "不在有效期内" in check(tx, "random_draw", "PLAN-2026-Q4", now_ms=NOW_MS + 61 * DAY_MS).problem
        assert "不是双随机" in check(tx, "random_draw", "SPECIAL-1").problem
        assert "其他执法领域" in check(tx, "random_draw", "FIRE-FOOD", agency="FIRE", field="fire").problem
        assert check(tx, "random_draw", "FIRE-FOOD", agency="FIRE", field="").verdict == "ok"  # no field stated
        assert check(tx, "complaint", "  ").problem.startswith("未填写")


def test_a_basis_opens_one_inspection_per_agency(store: Storage) -> None:
    with store.writing() as tx:
        opened(tx, "I-1", "complaint", "12345-2026-001")
        assert "已用于" in check(tx, "complaint", "12345-2026-001").problem
        assert check(tx, "complaint", "12345-2026-001", agency="FIRE").verdict == "ok"  # another agency's own visit


def test_a_rectification_follow_up_needs_the_order_of_this_agency_in_time(store: Storage) -> None:
    with store.writing() as tx:
        opened(tx, "I-R", "complaint", "12345-2026-001", agency="FIRE", field="fire")
        tx.run(_PART, id="I-R", officer="OFF-FIRE-1", agency="FIRE", field="fire", at=NOW_MS, ended=NOW_MS + 1, result="rectification_ordered")
        follow = lambda **kw: check(tx, "rectification_follow_up", "I-R", **{"agency": "FIRE", "field": "fire", **kw})  # noqa: E731
        assert follow().verdict == "ok"
        assert follow(field="").verdict == "ok"
        assert "未由本机关" in check(tx, "rectification_follow_up", "I-R").problem  # SAMR ordered nothing
        assert "未由本机关" in follow(field="food").problem
        assert "未由本机关" in follow(credit_code=PLAIN).problem
        assert "复查期限" in follow(now_ms=NOW_MS + (FOLLOW_UP_DAYS + 1) * DAY_MS).problem
        assert check(tx, "rectification_follow_up", "I-none").verdict == "unregistered"
        queue_review(tx, "S-R", "I-R", ExceptionBasis(kind="major_risk", reference="made-up"), GOOD, "OFF-FIRE-1", "FIRE", "未登记", NOW_MS)
        decide_review(tx, "S-R", "rejected", "sup", "无此风险", NOW_MS + 1)
        assert "已被驳回" in follow().problem


@pytest.mark.parametrize(
    ("change", "agency", "field", "words"),
    [
        (dict(credit_code=PLAIN), "SAMR", "food", "其他企业"),
        (dict(agency_id="FIRE"), "SAMR", "food", "其他执法机关"),
        (dict(field="fire"), "SAMR", "food", "其他执法领域"),
        (dict(valid_from_ms=NOW_MS + DAY_MS, valid_to_ms=NOW_MS + 9 * DAY_MS), "SAMR", "food", "不在有效期内"),
        (dict(), "SAMR", "food", ""),
        (dict(agency_id="SAMR", field="food"), "SAMR", "", ""),
    ],
    ids=["other-enterprise", "other-agency", "other-field", "not-yet", "any-agency", "no-field-stated"],
)
def test_a_registered_basis_must_fit(store: Storage, change: dict[str, Any], agency: str, field: str, words: str) -> None:
    with store.writing() as tx:
        add_basis(tx, entry(**change), "sup", NOW_MS)
        result = check(tx, "superior_assignment", ASSIGNMENT, agency=agency, field=field)
    assert (result.verdict, words in result.problem) == ("invalid" if words else "ok", True), result


@pytest.mark.parametrize("look_alike", ["RISK-7 ", "risk-7", "Risk-7", "RISK\u20117", "RISK\uff0d7", "RISK-\u200b7", "\uff32\uff29\uff33\uff2b-7"])
def test_a_look_alike_of_a_registered_reference_is_that_reference(store: Storage, look_alike: str) -> None:
    """A look-alike must not turn a refusal into "unregistered" (and so into pending review), on either backend."""
    with store.writing() as tx:
        add_basis(tx, entry(kind="major_risk", reference="RISK-7", agency_id="FIRE"), "sup", NOW_MS)
        result = check(tx, "major_risk", look_alike)
        assert result.verdict == "invalid" and "其他执法机关" in result.problem, result
        assert check(tx, "major_risk", look_alike, agency="FIRE", field="fire").verdict == "ok"
        opened(tx, "I-7", "major_risk", "RISK-7", agency="FIRE")  # used under its registered spelling
        assert "已用于" in check(tx, "major_risk", look_alike, agency="FIRE", field="fire").problem
        assert check(tx, "major_risk", "RISK-8").verdict == "unregistered"


def test_a_look_alike_prefers_the_enterprises_own_entry(store: Storage) -> None:
    with store.writing() as tx:
        add_basis(tx, entry(kind="major_risk", reference="risk-9", credit_code=PLAIN), "sup", NOW_MS)
        add_basis(tx, entry(kind="major_risk", reference="RISK-9"), "sup", NOW_MS)
        assert check(tx, "major_risk", "Risk-9").verdict == "ok"
        assert "其他企业" in check(tx, "major_risk", "Risk-9", credit_code=FRAGILE).problem


def test_one_basis_cited_twice_at_once_by_one_agency_opens_one_inspection(store: Storage) -> None:
    """Two SAMR officers at the door, the same complaint ticket, two scans at once (PostgreSQL: two API processes):
    the second sees the first's inspection instead of both passing the check."""

    def cite(inspection_id: str) -> Any:
        def scan_on_basis(tx: Tx) -> str:
            result = check(tx, "complaint", "12345-2026-001")
            if result.verdict == "ok":
                opened(tx, inspection_id, "complaint", "12345-2026-001")
            return result.verdict

        return scan_on_basis

    assert overlapping_writes(store, cite("I-A"), cite("I-B")) == ["ok", "invalid"]
    assert store.read(lambda tx: tx.scalar(_INSPECTIONS_ON, ref="12345-2026-001")) == 1


def test_a_look_alike_cited_at_once_is_the_same_basis(store: Storage) -> None:
    store.write(lambda tx: add_basis(tx, entry(agency_id="SAMR"), "sup", NOW_MS))
    spellings = iter([ASSIGNMENT, ASSIGNMENT + " "])

    def scan_on_basis(tx: Tx) -> str:
        result = check(tx, "superior_assignment", next(spellings))
        if result.verdict == "ok":
            opened(tx, f"I-{result.verdict}-{id(tx)}", "superior_assignment", ASSIGNMENT)
        return result.verdict

    assert overlapping_writes(store, scan_on_basis, scan_on_basis) == ["ok", "invalid"]


def test_register_rules(store: Storage) -> None:
    with store.writing() as tx:
        add_basis(tx, entry(), "sup", NOW_MS)
        with pytest.raises(Conflict):
            add_basis(tx, entry(agency_id="SAMR"), "sup", NOW_MS)
        for change, error in [
            (dict(credit_code="91110108MA0000001X"), Invalid),
            (dict(valid_to_ms=NOW_MS - 3_600_000), Invalid),
            (dict(valid_from_ms=NOW_MS - 2 * DAY_MS), Invalid),
            (dict(valid_to_ms=NOW_MS + 400 * DAY_MS), Invalid),
            (dict(credit_code=code(7)), NotFound),
            (dict(agency_id="samr"), NotFound),
            (dict(field="Food"), NotFound),
        ]:
            with pytest.raises(error):
                add_basis(tx, entry(reference="R-x", **change), "sup", NOW_MS)
        tx.run(_ENTERPRISE, code=code(7), region="310000")
        with pytest.raises(Forbidden):
            add_basis(tx, entry(reference="R-x", credit_code=code(7), agency_id="SAMR"), "sup", NOW_MS)
        assert add_basis(tx, entry(reference="R-x", credit_code=code(7)), "sup", NOW_MS).enterprise_name == "外区企业"  # any agency
        assert withdraw_basis(tx, "superior_assignment", ASSIGNMENT, GOOD, "sup", NOW_MS).withdrawn_by == "sup"
        with pytest.raises(Conflict):
            withdraw_basis(tx, "superior_assignment", ASSIGNMENT, GOOD, "sup", NOW_MS)
        with pytest.raises(NotFound):
            withdraw_basis(tx, "superior_assignment", "no-such", GOOD, "sup", NOW_MS)
        assert "已撤销" in check(tx, "superior_assignment", ASSIGNMENT).problem


def test_one_entry_registered_twice_at_once(store: Storage) -> None:
    outcomes = overlapping_writes(store, lambda tx: add_basis(tx, entry(), "sup", NOW_MS), lambda tx: add_basis(tx, entry(), "admin-SAMR", NOW_MS))
    assert outcomes[0].created_by == "sup" and isinstance(outcomes[1], Conflict), outcomes


def test_the_review_queue_rules(store: Storage) -> None:
    risk = ExceptionBasis(kind="major_risk", reference="燃气泄漏-现场")
    with store.writing() as tx:
        queue_review(tx, "S-1", "I-1", risk, GOOD, "OFF-SAMR-1", "SAMR", "未登记", NOW_MS)
        queue_review(tx, "S-1", "I-1", risk, GOOD, "OFF-SAMR-1", "SAMR", "未登记", NOW_MS)  # the same scan again
        queue_review(tx, "S-2", "I-2", risk, FRAGILE, "OFF-SAMR-1", "SAMR", "未登记", NOW_MS + 1)
        assert pending_reviews_of(tx, "OFF-SAMR-1") == 2
        assert decide_review(tx, "S-1", "confirmed", "sup", "属实", NOW_MS).status == "confirmed"
        with pytest.raises(Conflict):
            decide_review(tx, "S-1", "rejected", "sup", "改判", NOW_MS)
        with pytest.raises(NotFound):
            decide_review(tx, "S-9", "rejected", "sup", "x", NOW_MS)
        assert [r.scan_id for r in list_reviews(tx, agency_id="SAMR", status="pending", limit=10)] == ["S-2"]
        assert [r.scan_id for r in list_reviews(tx, agency_id=None, status=None, limit=10)] == ["S-2", "S-1"]
        assert list_reviews(tx, agency_id="FIRE", status=None, limit=10) == []
        assert review_counts(tx, agency_id=None, since_ms=NOW_MS, until_ms=NOW_MS + 2) == {"pending": 1, "confirmed": 1, "rejected": 0}


def test_two_verdicts_at_once_one_stands(store: Storage) -> None:
    risk = ExceptionBasis(kind="major_risk", reference="燃气泄漏-现场")
    store.write(lambda tx: queue_review(tx, "S-1", "I-1", risk, GOOD, "OFF-SAMR-1", "SAMR", "未登记", NOW_MS))
    outcomes = overlapping_writes(
        store, lambda tx: decide_review(tx, "S-1", "confirmed", "sup", "属实", NOW_MS), lambda tx: decide_review(tx, "S-1", "rejected", "sup2", "不实", NOW_MS)
    )
    assert outcomes[0].status == "confirmed" and isinstance(outcomes[1], Conflict), outcomes
