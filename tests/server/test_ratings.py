"""Enterprises rate the inspections they received (issue 14 item 8), on both backends: once, only their own, only
ended ones; a low rating alerts the agency; each rating is a record in the evidence log; who reads which."""

from __future__ import annotations

from typing import Any

import pytest

from server.storage.engine import sql, storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import FRAGILE, PLAIN, Api
from tests.server.test_enterprise_view import OFFICER, inspect, view

RATINGS = "/api/v1/ratings"
_LOW = sql("SELECT agency_id, credit_code, ref FROM alerts WHERE kind = 'low_rating'")
_RECORDS = sql("SELECT kind, subject FROM records ORDER BY at_ms")


def rate(api: Api, inspection_id: str, score: int, comment: str = "", as_: str = "ent-plain") -> Any:
    return api.as_(as_).post(RATINGS, json={"inspection_id": inspection_id, "score": score, "comment": comment})


def test_an_enterprise_rates_its_ended_inspection_once(api: Api, seeded_url: str) -> None:
    text, inspection_id = inspect(api, PLAIN, result="no_violation")
    r = rate(api, inspection_id, 5, "执法人员文明规范")
    assert r.status_code == 201, r.text
    assert (r.json()["score"], r.json()["lead_agency_id"], r.json()["rated_by"]) == (5, "SAMR", "ent-plain")
    again = rate(api, inspection_id, 1, "改主意了")
    assert again.status_code == 409 and "一次" in again.text
    (visit,) = view(api, text, as_="ent-plain")[0]["inspections"]
    assert visit["rating"] == 5
    assert [x["score"] for x in api.as_("ent-plain").get(RATINGS).json()] == [5]
    with storage_for(seeded_url).reading() as tx:
        assert tx.all(_RECORDS) == [("inspection.rated", f"inspection:{inspection_id}")] and tx.all(_LOW) == []


def test_a_low_rating_alerts_the_agency_and_can_open_a_finding(api: Api, seeded_url: str) -> None:
    _, inspection_id = inspect(api, PLAIN, result="rectification_ordered")
    assert rate(api, inspection_id, 1, "态度粗暴").status_code == 201
    with storage_for(seeded_url).reading() as tx:
        assert tx.all(_LOW) == [("SAMR", PLAIN, inspection_id)]
    r = api.post("/api/v1/supervision/findings", json={"agency_id": "SAMR", "reason": "企业差评：态度粗暴", "source": "rating", "source_ref": inspection_id, "refs": [inspection_id]})
    assert r.status_code == 201 and r.json()["source"] == "rating", r.text


def test_no_one_rates_another_enterprises_inspection_or_one_under_way(api: Api) -> None:
    _, other = inspect(api, FRAGILE)
    assert rate(api, other, 3).status_code == 404  # ent-plain holds PLAIN's account: FRAGILE's is not found
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    under_way = api.as_(OFFICER).post("/api/v1/scans", json={"code_text": text, "field": "food"}).json()["inspection_id"]
    r = rate(api, under_way, 4)
    assert r.status_code == 409 and "尚未结束" in r.text
    assert rate(api, "made-up-inspection", 4).status_code == 404
    for user in ("sup", "admin-SAMR", OFFICER):
        assert rate(api, under_way, 5, as_=user).status_code == 403
    assert api.client.post(RATINGS, json={"inspection_id": under_way, "score": 5}).status_code == 401


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"score": 0}, "score"), ({"score": 6}, "score"), ({"score": 2.5}, "score"), ({"score": 3, "comment": "x" * 1001}, "comment"), ({"score": 3, "extra": 1}, "extra")],
)
def test_a_bad_rating_is_refused_saying_what_was_wrong(api: Api, body: dict[str, Any], needle: str) -> None:
    _, inspection_id = inspect(api, PLAIN)
    r = api.as_("ent-plain").post(RATINGS, json={"inspection_id": inspection_id, **body})
    assert r.status_code == 400 and needle in r.text, r.text
    assert api.as_("ent-plain").get(RATINGS).json() == []


def test_who_reads_which_ratings(api: Api) -> None:
    _, samr = inspect(api, PLAIN)
    rate(api, samr, 4)
    assert [x["inspection_id"] for x in api.get(RATINGS).json()] == [samr]
    assert [x["inspection_id"] for x in api.as_("admin-SAMR").get(RATINGS).json()] == [samr]
    assert api.as_("admin-FIRE").get(RATINGS).json() == []
    assert api.as_(OFFICER).get(RATINGS).status_code == 403
