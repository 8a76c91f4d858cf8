"""The officer's exception after a refusal (issue 16 item 2), over the API on both backends: the exception kinds with
the officer's own registered items that fit the enterprise and field, a scan again on one of them, and "my
inspections today", the officer's own only, a page at a time."""

from __future__ import annotations

from typing import Any

from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import DAY_MS, GOOD, NOW_MS, PLAIN, Api
from tests.server.test_scans_api import end, scan


def choices(api: Api, officer: str, credit_code: str, field: str = "food", lang: str = "zh") -> dict[str, Any]:  # noqa: F811
    r = api.as_(officer).get("/api/v1/exception-bases/choices", params={"credit_code": credit_code, "field": field, "lang": lang})
    assert r.status_code == 200, r.text
    return {c["kind"]: c for c in r.json()}


def refs(c: dict[str, Any], kind: str) -> list[str]:
    return [i["reference"] for i in c[kind]["items"]]


def assignment(api: Api, reference: str, agency: str | None) -> None:  # noqa: F811
    body = {
        "kind": "superior_assignment", "reference": reference, "credit_code": GOOD, "issued_by": "区政府", "summary": "专项督办",
        "valid_from_ms": NOW_MS - 3_600_000, "valid_to_ms": NOW_MS + 30 * DAY_MS, "agency_id": agency,
    }  # fmt: skip
    r = api.post("/api/v1/exception-bases", json=body)
    assert r.status_code == 201, r.text


def test_a_refused_officer_is_offered_their_registered_items_and_scans_again(api: Api) -> None:  # noqa: F811
    refused = scan(api, "OFF-SAMR-1", GOOD)
    assert refused["code"] == "no_disturb" and refused["credit_code"] == GOOD
    assert scan(api, "OFF-FIRE-1", GOOD)["code"] == "no_disturb"
    assignment(api, "交办-SAMR-1", "SAMR")
    assignment(api, "交办-FIRE-1", "FIRE")
    c = choices(api, "OFF-SAMR-1", GOOD)
    assert list(c) == ["complaint", "random_draw", "rectification_follow_up", "superior_assignment", "major_risk"]
    assert [c[k]["label"] for k in c] == ["投诉举报", "双随机抽查", "整改复查", "上级交办", "重大风险"]
    assert refs(c, "complaint") == ["12345-2026-001"]  # the closed ticket 002 is not offered
    assert refs(c, "random_draw") == ["PLAN-2026-Q4"] and refs(c, "rectification_follow_up") == []
    assert refs(c, "superior_assignment") == ["交办-SAMR-1"]  # not another agency's
    assert c["major_risk"]["urgent"] and not c["complaint"]["urgent"]
    assert "区政府" in c["superior_assignment"]["items"][0]["text"]
    en = choices(api, "OFF-SAMR-1", GOOD, lang="en")
    assert en["complaint"]["label"] == "complaint or report"
    fire = choices(api, "OFF-FIRE-1", GOOD)
    assert refs(fire, "random_draw") == [] and refs(fire, "superior_assignment") == ["交办-FIRE-1"] and refs(fire, "complaint") == ["12345-2026-001"]
    again = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "12345-2026-001"})
    assert (again["outcome"], again["code"]) == ("allowed", "allowed_exception")
    end(api, again["inspection_id"], "OFF-SAMR-1")
    assert refs(choices(api, "OFF-SAMR-1", GOOD), "complaint") == []  # used by the agency: not offered again
    assert refs(choices(api, "OFF-FIRE-1", GOOD), "complaint") == ["12345-2026-001"]  # another agency may still cite it


def test_a_repeat_is_offered_the_rectification_the_agency_ordered(api: Api) -> None:  # noqa: F811
    first = scan(api, "OFF-SAMR-1", PLAIN)
    end(api, first["inspection_id"], "OFF-SAMR-1", "rectification_ordered")
    repeat = scan(api, "OFF-SAMR-1", PLAIN)
    assert repeat["outcome"] == "repeat"
    c = choices(api, "OFF-SAMR-1", PLAIN)
    assert refs(c, "rectification_follow_up") == [first["inspection_id"]] and "责令整改" in c["rectification_follow_up"]["items"][0]["text"]
    follow = scan(api, "OFF-SAMR-1", PLAIN, exception_basis={"kind": "rectification_follow_up", "reference": first["inspection_id"]})
    assert follow["outcome"] == "allowed" and follow["inspection_id"] != first["inspection_id"]
    assert scan(api, "OFF-FIRE-1", PLAIN, field="fire")["outcome"] == "join"
    assert refs(choices(api, "OFF-FIRE-1", PLAIN, field="fire"), "rectification_follow_up") == []  # another agency's order
    assert refs(choices(api, "OFF-FIRE-1", PLAIN, field="food"), "rectification_follow_up") == []


def test_choices_are_for_officers_and_need_an_enterprise_and_field(api: Api) -> None:  # noqa: F811
    for who in ("sup", "admin-SAMR", "ent-plain"):
        assert api.as_(who).get("/api/v1/exception-bases/choices", params={"credit_code": GOOD, "field": "food"}).status_code == 403
    assert api.as_("OFF-SAMR-1").get("/api/v1/exception-bases/choices", params={"credit_code": GOOD}).status_code == 400
    r = api.as_("OFF-SAMR-1").get("/api/v1/exception-bases/choices", params={"credit_code": "X" * 19, "field": "food"})
    assert r.status_code == 400
    # the registers are not there to be browsed: only an enterprise the officer just scanned, in a field they hold
    r = api.as_("OFF-SAMR-1").get("/api/v1/exception-bases/choices", params={"credit_code": GOOD, "field": "food"})
    assert r.status_code == 403 and "请先扫描" in r.json()["detail"]
    r = api.as_("OFF-SAMR-1").get("/api/v1/exception-bases/choices", params={"credit_code": "91110108MA9999999X", "field": "food"})
    assert r.status_code == 403
    scan(api, "OFF-SAMR-1", GOOD)
    assert choices(api, "OFF-SAMR-1", GOOD)["complaint"]["items"]
    r = api.as_("OFF-SAMR-1").get("/api/v1/exception-bases/choices", params={"credit_code": GOOD, "field": "fire"})
    assert r.status_code == 403 and "执法证" in r.json()["detail"]  # SAMR-1's credential covers food only
    assert api.as_("OFF-SAMR-2").get("/api/v1/exception-bases/choices", params={"credit_code": GOOD, "field": "food"}).status_code == 403  # another officer
    api.client.cookies.clear()
    assert api.client.get("/api/v1/exception-bases/choices", params={"credit_code": GOOD, "field": "food"}).status_code == 401


def test_my_inspections_today_are_my_own_a_page_at_a_time(api: Api) -> None:  # noqa: F811
    a = scan(api, "OFF-SAMR-1", PLAIN)
    joined = scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    assert joined["inspection_id"] == a["inspection_id"]
    b = scan(api, "OFF-FIRE-1", GOOD, field="fire")  # FIRE's own inspection
    assert b["outcome"] != "allowed" or b["inspection_id"]
    page1 = api.as_("OFF-SAMR-1").get("/api/v1/inspections/mine", params={"per_page": 1}).json()
    assert page1["total"] == 1 and [i["inspection_id"] for i in page1["items"]] == [a["inspection_id"]]
    fire = api.as_("OFF-FIRE-1").get("/api/v1/inspections/mine", params={"per_page": 1}).json()
    opened = [x for x in (a, b) if x.get("inspection_id")]
    assert fire["total"] == len({x["inspection_id"] for x in opened})
    second = api.as_("OFF-FIRE-1").get("/api/v1/inspections/mine", params={"per_page": 1, "page": 2}).json()
    assert fire["total"] < 2 or second["items"][0]["inspection_id"] != fire["items"][0]["inspection_id"]
    assert api.as_("OFF-SAMR-2").get("/api/v1/inspections/mine").json()["total"] == 0
    assert api.as_("OFF-SAMR-1").get("/api/v1/inspections/mine", params={"days_ago": 1}).json()["total"] == 0
    assert api.as_("sup").get("/api/v1/inspections/mine").status_code == 403
    assert api.as_("OFF-SAMR-1").get("/api/v1/inspections/mine", params={"per_page": 51}).status_code == 400
    assert api.as_("OFF-SAMR-1").get("/api/v1/inspections/mine", params={"page": 0}).status_code == 400
