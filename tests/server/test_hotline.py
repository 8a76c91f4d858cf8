"""The 12345 hotline flags over HTTP on both backends: who sees which flags, and a finding opened from a flag once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from server.imports import import_csv
from server.storage.engine import sql, storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import FRAGILE, GOOD, PLAIN, Api

FLAGS = "/api/v1/supervision/hotline-flags"
CST = dt.timezone(dt.timedelta(hours=8))
_INSPECTION = sql(
    "INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms)"
    " VALUES (:id, :code, :agency, 'food', 'ended', :opened, :opened + 3600000)"
)


def cst_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)


def tickets(db: str, tmp_path: Path) -> None:
    """H1 about PLAIN (food: SAMR and FIRE both, so no agency), inspected by SAMR before; H2 about FRAGILE (fire: FIRE),
    never inspected; H3 about GOOD, inspected in time."""
    with storage_for(db).writing() as tx:
        tx.run(_INSPECTION, id="I-P1", code=PLAIN, agency="SAMR", opened=cst_ms(2025, 3, 1, 9))
        tx.run(_INSPECTION, id="I-G1", code=GOOD, agency="FIRE", opened=cst_ms(2025, 3, 11, 9))
    f = tmp_path / "hotline.csv"
    f.write_text(
        "ticket_id,time,credit_code,category,text\n"
        f"H1,2025-03-10T08:00:00,{PLAIN},food,又来投诉\nH2,2025-03-10,{FRAGILE},fire,消防隐患\nH3,2025-03-10,{GOOD},food,已检查\n",
        encoding="utf-8",
    )
    assert import_csv(db, "hotline", f, progress=False).ok


def test_flags_by_role(api: Api, seeded_url: str, tmp_path: Path) -> None:
    tickets(seeded_url, tmp_path)
    r = api.get(FLAGS)
    assert r.status_code == 200, r.text
    got = [(f["ticket_id"], f["kind"], f["agency_id"], [i["inspection_id"] for i in f["inspections"]]) for f in r.json()]
    assert got == [("H2", "no_inspection", "FIRE", []), ("H1", "complained_again", "SAMR", ["I-P1"]), ("H1", "no_inspection", None, [])]
    first = r.json()[1]
    assert (first["enterprise_name"], first["agency_name"], first["kind_zh"], first["text"]) == ("海淀某餐饮公司", "市场监管局", "检查后再次被投诉", "又来投诉")
    assert [f["ticket_id"] for f in api.get(FLAGS, params={"kind": "no_inspection"}).json()] == ["H2", "H1"]
    assert [f["ticket_id"] for f in api.get(FLAGS, params={"window_days": 5}).json()] == ["H2", "H1"]  # I-P1 is 9 days before
    assert api.get(FLAGS, params={"within_days": 0}).status_code == 400
    assert [(f["ticket_id"], f["kind"]) for f in api.as_("admin-SAMR").get(FLAGS).json()] == [("H1", "complained_again")]
    assert [(f["ticket_id"], f["kind"]) for f in api.as_("admin-FIRE").get(FLAGS).json()] == [("H2", "no_inspection")]
    assert api.as_("OFF-SAMR-1").get(FLAGS).status_code == 403


def test_a_finding_from_a_flag_once(api: Api, seeded_url: str, tmp_path: Path) -> None:
    tickets(seeded_url, tmp_path)
    assert api.as_("admin-FIRE").post(f"{FLAGS}/H2/finding", json={}).status_code == 403
    assert api.as_("OFF-SAMR-1").post(f"{FLAGS}/H2/finding", json={}).status_code == 403
    r = api.post(f"{FLAGS}/H2/finding", json={})
    assert r.status_code == 201, r.text
    f = r.json()
    assert (f["source"], f["source_ref"], f["agency_id"], f["credit_code"], f["refs"]) == ("hotline", "H2", "FIRE", FRAGILE, [])
    assert "H2" in f["reason"] and "投诉后未在期限内检查" in f["reason"]
    again = api.post(f"{FLAGS}/H2/finding", json={})
    assert again.status_code == 409 and f["finding_id"] in again.text
    assert [x["finding_id"] for x in api.get(FLAGS, params={"kind": "no_inspection"}).json() if x["ticket_id"] == "H2"] == [f["finding_id"]]
    # With a window of 5 days H1 is flagged only for no inspection, and its category names no one agency: the
    # supervisor must name it. With the default window the agency that inspected it is the flag's.
    r = api.post(f"{FLAGS}/H1/finding", json={"window_days": 5})
    assert r.status_code == 400 and "agency_id" in r.text
    r = api.post(f"{FLAGS}/H1/finding", json={})
    assert r.status_code == 201, r.text
    assert (r.json()["agency_id"], r.json()["refs"]) == ("SAMR", ["I-P1"])
    assert "检查后再次被投诉" in r.json()["reason"] and "投诉后未在期限内检查" in r.json()["reason"]
    assert api.post(f"{FLAGS}/H3/finding", json={}).status_code == 404  # not flagged
    assert api.post(f"{FLAGS}/NOPE/finding", json={}).status_code == 404
    assert api.post(f"{FLAGS}/H1/finding", json={"agency_id": "NOPE"}).status_code == 409  # H1 opened one already
    # The agency's administrator sees the findings on the supervision API.
    assert [x["source_ref"] for x in api.as_("admin-FIRE").get("/api/v1/supervision/findings").json()] == ["H2"]
