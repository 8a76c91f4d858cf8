"""The enterprise's page: whoever holds the door code sees that inspections happened (day, agencies, fields),
never their outcome; the enterprise's own signed-in account sees the outcomes too."""

from __future__ import annotations

import json
from typing import Any

from tests.server.conftest import FRAGILE, PLAIN, Api

OFFICER = "OFF-SAMR-1"
SUMMARY = "后厨发现过期原料三批"
#: What must never reach someone who only holds the code.
PRIVATE = ("case_opened", "立案", "result", SUMMARY, OFFICER, "inspection_id", "officer")


def inspect(api: Api, credit_code: str, result: str = "case_opened") -> tuple[str, str]:
    """An ended inspection of the enterprise; returns (its code's text, the inspection id)."""
    text = api.get(f"/api/v1/enterprises/{credit_code}/qr.txt").text
    d = api.as_(OFFICER).post("/api/v1/scans", json={"code_text": text, "field": "food"}).json()
    assert d["outcome"] == "allowed", d
    r = api.as_(OFFICER).post(f"/api/v1/inspections/{d['inspection_id']}/end", json={"result": result, "summary": SUMMARY})
    assert r.status_code == 200, r.text
    return text, d["inspection_id"]


def view(api: Api, text: str, as_: str | None = None, lang: str = "zh") -> tuple[dict[str, Any], str]:
    client = api.as_(as_) if as_ else api.client
    r = client.post(f"/api/v1/enterprise-view?lang={lang}", json={"code_text": text})
    assert r.status_code == 200, r.text
    return r.json(), r.text


def test_the_code_alone_shows_that_inspections_happened_but_no_outcome(api: Api) -> None:
    text, inspection_id = inspect(api, PLAIN)
    d, raw = view(api, text)
    assert d["name"] == "海淀某餐饮公司" and d["outcomes_shown"] is False
    (visit,) = d["inspections"]
    assert visit["agencies"] == ["市场监管局"] and visit["fields"] == ["食品安全"]
    assert len(visit["date"]) == 10 and visit["date"][4] == "-"
    assert "outcomes" not in visit
    for word in (*PRIVATE, inspection_id):
        assert word not in raw.replace("outcomes_shown", ""), word


def test_labels_follow_the_language(api: Api) -> None:
    text, _ = inspect(api, PLAIN)
    d, _ = view(api, text, lang="en")
    assert d["inspections"][0]["agencies"] == ["Market regulation"] and d["inspections"][0]["fields"] == ["food safety"]


def test_the_enterprises_own_account_sees_the_outcomes(api: Api) -> None:
    text, inspection_id = inspect(api, PLAIN)
    d, raw = view(api, text, as_="ent-plain")
    assert d["outcomes_shown"] is True
    (visit,) = d["inspections"]
    assert visit["outcomes"] == [{"agency": "市场监管局", "field": "食品安全", "result": "case_opened", "result_label": "立案"}]
    assert SUMMARY not in raw and OFFICER not in raw  # outcomes, not the case file
    assert visit["inspection_id"] == inspection_id and "rating" not in visit  # its own inspection's reference, to rate it


def test_another_enterprises_account_sees_only_the_public_view(api: Api) -> None:
    text, _ = inspect(api, FRAGILE)  # ent-plain is the account of PLAIN, not of FRAGILE
    d, raw = view(api, text, as_="ent-plain")
    assert d["credit_code"] == FRAGILE and d["outcomes_shown"] is False
    assert "outcomes" not in d["inspections"][0] and "立案" not in raw


def test_staff_holding_the_code_see_only_the_public_view(api: Api) -> None:
    # Officers and supervisors read outcomes through the inspections API, under its own access rules.
    text, _ = inspect(api, PLAIN)
    for user in ("OFF-FIRE-1", "sup"):
        d, _ = view(api, text, as_=user)
        assert d["outcomes_shown"] is False and "outcomes" not in d["inspections"][0], user


def test_an_inspection_under_way_shows_no_outcome_yet_to_the_owner(api: Api) -> None:
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    assert api.as_(OFFICER).post("/api/v1/scans", json={"code_text": text, "field": "food"}).json()["outcome"] == "allowed"
    d, _ = view(api, text, as_="ent-plain")
    assert d["inspections"][0]["outcomes"] == [{"agency": "市场监管局", "field": "食品安全", "result": None, "result_label": "检查中"}]


def test_a_forged_or_missing_code_is_refused_with_a_reason(api: Api) -> None:
    text, _ = inspect(api, PLAIN)
    forged = api.client.post("/api/v1/enterprise-view", json={"code_text": text[:-3] + "AAA"})
    assert forged.status_code == 400 and forged.json()["detail"].startswith("企业码无效")
    both = api.client.post("/api/v1/enterprise-view", json={"code_text": text, "photo_base64": "AAAA"})
    assert both.status_code == 400 and "code_text" in both.json()["detail"]
    assert json.loads(api.client.post("/api/v1/enterprise-view", json={}).text)["status_code"] == 400


def test_a_photo_without_a_code_is_a_documented_422(api: Api) -> None:
    r = api.client.post("/api/v1/enterprise-view", json={"photo_base64": "aGVsbG8="})  # "hello": not an image
    assert r.status_code == 422 and r.json()["detail"].startswith("照片无法识别企业码")
    documented = api.client.get("/schema/openapi.json").json()["paths"]["/api/v1/enterprise-view"]["post"]["responses"]
    assert {"200", "400", "413", "422"} <= set(documented)
