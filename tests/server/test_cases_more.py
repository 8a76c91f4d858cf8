"""Cases over HTTP on both backends (issue 15), continued: transfers and judicial referrals, the case-file score that
opens a finding, the scorecard's indicators, the pages (masked, in both languages, without raw ids), the policy
file's [cases] section, and hostile bodies."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from protocol.config import ConfigError
from server.app import create_app
from protocol.cst import cst_date
from server.jobs.disclosure import sample_case_files
from server.supervision import scorecard as card
from server.storage.engine import storage_for
from tests.server.api_backends import api, settings  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import CASES, CLEAN, investigating, make_reviewer, post, seed_case_people
from tests.server.conftest import NOW_MS, PLAIN, Api


@pytest.fixture
def people(seeded_url: str) -> str:
    seed_case_people(seeded_url)
    return seeded_url


def test_a_transfer_accepted_and_one_sent_back(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    one = api.as_("OFF-SAMR-1")
    assert one.post(f"{CASES}/{case_id}/transfers", json={"kind": "transfer", "to_agency": "SAMR", "reason": "x"}).status_code == 400
    assert one.post(f"{CASES}/{case_id}/transfers", json={"kind": "transfer", "to_agency": "NOWHERE", "reason": "x"}).status_code == 404
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transfers", {"kind": "transfer", "to_agency": "FIRE", "reason": "属消防安全事项"}, 201)
    t = c["transfers"][-1]
    assert c["state"] == "transferring" and t["to_body"] == "消防救援支队" and t["status"] == "sent"
    assert one.post(f"{CASES}/{case_id}/transfers", json={"kind": "transfer", "to_agency": "FIRE", "reason": "again"}).status_code == 409
    assert one.post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 409
    fire = api.as_("OFF-FIRE-1")
    assert [x["case_id"] for x in fire.get(CASES).json()] == [case_id]  # the receiving agency sees it
    answer = f"{CASES}/{case_id}/transfers/{t['transfer_id']}/answer"
    assert one.post(answer, json={"accepted": True, "reason": "x"}).status_code == 404  # the sender does not answer
    assert fire.post(answer, json={"accepted": True, "reason": "接收", "officer_ids": ["OFF-FIRE-1"]}).status_code == 400  # two officers
    c = post(api, "OFF-FIRE-1", answer, {"accepted": True, "reason": "接收", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"]})
    assert (c["agency_id"], c["state"], c["transfers"][-1]["status"]) == ("FIRE", "filed", "accepted")
    assert [o["officer_id"] for o in c["officers"]] == ["OFF-FIRE-1", "OFF-FIRE-2"]
    assert fire.post(answer, json={"accepted": True, "reason": "again", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"]}).status_code == 409
    assert one.get(f"{CASES}/{case_id}").status_code == 404  # no longer SAMR's
    back = investigating(api)
    t2 = post(api, "OFF-SAMR-1", f"{CASES}/{back}/transfers", {"kind": "transfer", "to_agency": "FIRE", "reason": "x"}, 201)["transfers"][-1]
    c = post(api, "OFF-FIRE-2", f"{CASES}/{back}/transfers/{t2['transfer_id']}/answer", {"accepted": False, "reason": "不属本机关管辖"})
    assert (c["agency_id"], c["state"], c["transfers"][-1]["answer"]) == ("SAMR", "investigating", "不属本机关管辖")
    assert [s["kind"] for s in api.get(f"{CASES}/{back}").json()["steps"]][-2:] == ["case.transfer_sent", "case.transfer_returned"]


def test_a_referral_blocks_closing_until_answered_and_counts_on_the_scorecard(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)
    case_id = investigating(api)
    review_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟罚款"}, 201)["reviews"][-1]["review_id"]
    crime = {**CLEAN, "crime_transfer": {"ok": False, "note": "涉案金额巨大，涉嫌生产销售伪劣产品罪"}}
    c = post(api, "OFF-SAMR-3", f"{CASES}/{case_id}/reviews/{review_id}/outcome", {"checklist": crime, "outcome": "returned", "opinion": "应移送公安机关"})
    assert c["reviews"][-1]["crime_suspected"] is True
    start, end = NOW_MS - 86_400_000, NOW_MS + 86_400_000

    def indicators(now_ms: int) -> dict[str, card.Indicator]:
        with storage_for(people).reading() as tx:
            rows = card.scorecard(tx, start, end, now_ms=now_ms)
        samr = next(r for r in rows if r.agency_id == "SAMR")
        return {i.key: i for i in samr.indicators or []}

    kept = indicators(NOW_MS)
    assert kept["cases_kept"].value == 1 and kept["cases_kept"].flagged
    assert kept["legal_reviewers"].value is not None and not kept["legal_reviewers"].flagged  # 1 of 4 valid officers
    one = api.as_("OFF-SAMR-1")
    assert one.post(f"{CASES}/{case_id}/transfers", json={"kind": "referral", "reason": "x"}).status_code == 400  # names the organ
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transfers", {"kind": "referral", "to_body": "海淀公安分局", "reason": "涉嫌犯罪"}, 201)
    ref = c["transfers"][-1]
    assert c["state"] == "investigating" and ref["kind"] == "referral" and ref["to_agency"] is None
    assert one.post(f"{CASES}/{case_id}/transfers", json={"kind": "referral", "to_body": "海淀公安分局", "reason": "again"}).status_code == 409
    late = indicators(NOW_MS + 31 * 86_400_000)
    assert late["cases_kept"].value == 0 and late["referrals_unanswered"].value == 1 and late["referrals_unanswered"].flagged
    assert not indicators(NOW_MS)["referrals_unanswered"].flagged  # not yet due
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transitions", {"to": "served"})
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transitions", {"to": "executed"})
    r = one.post(f"{CASES}/{case_id}/transitions", json={"to": "closed"})
    assert r.status_code == 409 and "答复" in r.text
    assert api.as_("OFF-FIRE-1").post(f"{CASES}/{case_id}/transfers/{ref['transfer_id']}/answer", json={"accepted": True, "reason": "x"}).status_code == 404
    c = post(api, "OFF-SAMR-2", f"{CASES}/{case_id}/transfers/{ref['transfer_id']}/answer", {"accepted": True, "reason": "公安机关已立案侦查"})
    assert c["transfers"][-1]["status"] == "accepted"
    assert post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transitions", {"to": "closed"})["state"] == "closed"
    assert not indicators(NOW_MS + 31 * 86_400_000)["referrals_unanswered"].flagged


def test_too_few_reviewers_are_flagged(api: Api, people: str) -> None:  # noqa: F811
    investigating(api)
    with storage_for(people).reading() as tx:
        samr = next(r for r in card.scorecard(tx, NOW_MS - 86_400_000, NOW_MS + 86_400_000, now_ms=NOW_MS) if r.agency_id == "SAMR")
    reviewers = next(i for i in samr.indicators or [] if i.key == "legal_reviewers")
    assert (reviewers.value, reviewers.score, reviewers.flagged) == (0.0, 0.0, True)


def test_a_failing_case_file_opens_a_finding(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    decision_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)["decision"]["decision_id"]
    later = int(dt.datetime.combine(cst_date(NOW_MS).replace(day=1) + dt.timedelta(days=40), dt.time(9)).timestamp() * 1000)
    (sample,) = storage_for(people).write(lambda tx: sample_case_files(tx, later))
    url = f"{CASES}/samples/{sample}/files/{decision_id}/score"
    scores = {"filing": 10, "evidence": 10, "procedure": 20, "law_applied": 15, "documents": 10, "archiving": 10}
    assert api.as_("admin-SAMR").post(url, json={"scores": scores}).status_code == 403
    assert api.post(url, json={"scores": {**scores, "filing": 11}}).status_code == 400  # above the item's points
    assert api.post(url, json={"scores": {"filing": 10}}).status_code == 400  # every item
    assert api.post(f"{CASES}/samples/{sample}/files/NOPE-D/score", json={"scores": scores}).status_code == 404
    r = post(api, "sup", url, {"scores": scores, "notes": "证据不充分"})
    assert (r["total"], r["result"]) == (75, "fail") and r["finding_id"]
    finding = api.get(f"/api/v1/supervision/findings/{r['finding_id']}").json()
    assert finding["source"] == "case_review" and finding["agency_id"] == "SAMR" and finding["source_ref"] == f"{sample}/{decision_id}"
    assert api.post(f"/api/v1/supervision/findings/{r['finding_id']}/close", json={"note": "已整改"}).status_code == 200
    ok = post(api, "sup", url, {"scores": dict.fromkeys(scores, 0) | {"filing": 10, "evidence": 25, "procedure": 25, "law_applied": 20, "documents": 10, "archiving": 5}})
    assert (ok["total"], ok["result"], ok["finding_id"]) == (95, "pass", None)  # scored again once the finding is closed


def test_the_pages_mask_personal_data_and_show_no_raw_ids(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api, parties=[{"kind": "individual", "name": "欧阳娜娜", "id_no": "11010119900307123X"}], title="欧阳娜娜无证经营")
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "对欧阳娜娜（11010119900307123X）警告", "measures": ["warning"]}, 201)
    assert "欧阳娜娜" not in api.client.get("/public/disclosure").text  # not disclosed yet: not there at all
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/publish")
    html = api.client.get("/public/disclosure").text  # no sign-in
    assert "欧***" in html and "欧阳娜娜" not in html and "11010119900307123X" not in html and "110*************3X" in html
    assert "海淀某餐饮公司" in html and PLAIN in html and "警告" in html
    assert "海淀某餐饮公司" in api.client.get("/public/disclosure", params={"q": "餐饮"}).text
    assert "海淀某餐饮公司" not in api.client.get("/public/disclosure", params={"q": "不存在的企业"}).text
    assert "海淀某餐饮公司" not in api.client.get("/public/disclosure", params={"agency": "FIRE"}).text
    english = api.client.get("/public/disclosure", params={"lang": "en"}).text
    assert "Enforcement decisions disclosed" in english and "warning" in english
    page = api.as_("OFF-SAMR-1").get("/cases", params={"case": case_id}).text
    shown = re.sub(r"<[^>]+>", " ", page.split("<main")[1].split("</main>")[0])  # the text a person reads
    assert "决定" in shown and "行政处罚" in shown and "食品安全" in shown
    for raw in ("penalty", "investigating", "decided", "food", "warning", "fine_over", "CASE-"):  # (officers here are named by their ids)
        assert raw not in shown, raw
    en = api.as_("OFF-SAMR-1").get("/cases", params={"case": case_id, "lang": "en"}).text
    assert "administrative penalty" in en and "decided" in en
    assert api.client.get("/cases", follow_redirects=False).status_code in (302, 303)
    assert api.as_("ent-plain").get("/cases").status_code == 200


def test_hostile_bodies(api: Api, people: str) -> None:  # noqa: F811
    one = api.as_("OFF-SAMR-1")
    base = {"kind": "penalty", "title": "x", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}
    assert one.post(CASES, json={**base, "title": "x" * 10_000}).status_code == 400
    assert one.post(CASES, json={**base, "surprise": 1}).status_code == 400
    assert one.post(CASES, json={**base, "kind": "execution"}).status_code == 400
    assert one.post(CASES, json={**base, "officer_ids": [f"O{i}" for i in range(1000)]}).status_code == 400
    assert one.post(CASES, content=b"{" * 100_000, headers={"Content-Type": "application/json"}).status_code in (400, 413)
    assert one.post(CASES, content=b"x" * (20 * 1024 * 1024), headers={"Content-Type": "application/json"}).status_code in (400, 413)
    case_id = investigating(api)
    squat = {"decision_id": f"{case_id}-D", "agency_id": "SAMR", "kind": "penalty", "decided_on": cst_date(NOW_MS).isoformat()}
    assert api.as_("admin-SAMR").post("/api/v1/decisions", json=squat).status_code == 201  # a decision id taken by hand first
    assert one.post(f"{CASES}/{case_id}/decision", json={"summary": "x", "fine_yuan": -1}).status_code == 400
    assert one.post(f"{CASES}/{case_id}/decision", json={"summary": "x", "fine_yuan": 10**20}).status_code == 400
    assert one.post(f"{CASES}/{case_id}/decision", json={"summary": "x", "measures": ["flogging"]}).status_code == 400
    assert one.post(f"{CASES}/{case_id}/documents", json={"title": "x", "sha256": "not-a-hash"}).status_code == 400
    assert one.post(f"{CASES}/{case_id}/decision", json={"summary": "警告", "measures": ["warning"]}).status_code == 201  # not blocked by it
    assert one.get(f"{CASES}/{'x' * 100}").status_code == 400
    assert api.client.get(f"{CASES}/disclosed", params={"q": "%' OR 1=1 --"}).json() == []


def test_a_wrong_key_in_the_cases_section_stops_the_start(tmp_path: Path, seeded_url: str) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text(Path("server/policy.toml").read_text(encoding="utf-8").replace("fine_over_yuan = 50000", "fine_over = 50000"), encoding="utf-8")
    s = msgspec.structs.replace(settings(seeded_url, tmp_path), policy_path=bad)
    with pytest.raises(ConfigError, match=r"policy\.toml: key 'cases\.major\.fine_over'"):
        create_app(s)
    good = tmp_path / "good.toml"
    good.write_text(Path("server/policy.toml").read_text(encoding="utf-8").replace("fine_over_yuan = 100000", "fine_over_yuan = 1000"), encoding="utf-8")
    s = msgspec.structs.replace(s, policy_path=good)
    with TestClient(create_app(s)) as c:
        seed_case_people(seeded_url)
        a = Api(c)
        case_id = investigating(a)
        r = a.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "罚款 2000 元", "fine_yuan": 2000})
        assert r.status_code == 409 and "1,000" in r.text  # the agency's list as the file says


def test_an_overdue_review_is_alerted_once(api: Api, people: str) -> None:  # noqa: F811
    from server.cases.review import check_deadlines

    case_id = investigating(api)
    review = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟罚款"}, 201)["reviews"][-1]
    on_deadline = int(dt.datetime.combine(dt.date.fromisoformat(review["deadline"]), dt.time(9), dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
    assert storage_for(people).write(lambda tx: check_deadlines(tx, on_deadline)) == {"overdue": 0}
    after = on_deadline + 86_400_000
    assert storage_for(people).write(lambda tx: check_deadlines(tx, after)) == {"overdue": 1}
    assert storage_for(people).write(lambda tx: check_deadlines(tx, after + 86_400_000)) == {"overdue": 0}  # once
    c = api.get(f"{CASES}/{case_id}").json()
    assert c["steps"][-1]["kind"] == "case.review_overdue"


def test_two_referrals_at_once_make_one(api: Api, people: str) -> None:  # noqa: F811
    from server.cases import transfers
    from server.cases.forms import TransferIn
    from server.console.auth import Principal
    from server.errors import Conflict
    from tests.support.overlap import overlapping_writes

    case_id = investigating(api)
    one = Principal(username="OFF-SAMR-1", role="officer", agency_id="SAMR", officer_id="OFF-SAMR-1")
    refer = TransferIn(kind="referral", to_body="海淀公安分局", reason="涉嫌犯罪")
    store = storage_for(people)
    outcomes = overlapping_writes(store, lambda tx: transfers.send(tx, case_id, refer, one, NOW_MS), lambda tx: transfers.send(tx, case_id, refer, one, NOW_MS + 1))
    assert isinstance(outcomes[1], Conflict) and not isinstance(outcomes[0], Exception)
    assert [t["status"] for t in api.get(f"{CASES}/{case_id}").json()["transfers"]] == ["sent"]


def test_the_page_offers_the_inspections_that_ended_with_a_case_to_open(api: Api, people: str) -> None:  # noqa: F811
    from tests.server.cases_support import seed_inspection

    seed_inspection(people, "INS-TO-OPEN")
    seed_inspection(people, "INS-CLEAN", result="no_violation")
    page = api.as_("OFF-SAMR-1").get("/cases", params={"inspection": "INS-TO-OPEN"}).text
    assert 'value="INS-TO-OPEN" selected' in page and "INS-CLEAN" not in page and "海淀某餐饮公司 · 食品安全" in page
    assert "INS-TO-OPEN" not in api.as_("OFF-FIRE-1").get("/cases").text  # another agency's
    post(api, "OFF-SAMR-1", CASES, {"kind": "penalty", "title": "x", "inspection_id": "INS-TO-OPEN", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}, 201)
    assert "INS-TO-OPEN" not in api.as_("OFF-SAMR-1").get("/cases").text  # opened: no longer offered


def test_an_agency_administrator_qualifies_reviewers_on_the_page(api: Api, people: str) -> None:  # noqa: F811
    admin = api.as_("admin-SAMR")
    page = admin.get("/cases").text
    assert "本机关 0 名法制审核人员" in page and "不足 5%" in page and 'value="OFF-SAMR-3">王审核' in page
    make_reviewer(api)
    page = admin.get("/cases").text
    assert "本机关 1 名法制审核人员" in page and "不足 5%" not in page and "王审核（法审-2026-001" in page
    assert "Legal reviewers" in admin.get("/cases", params={"lang": "en"}).text
    assert 'id="reviewers"' not in api.as_("OFF-SAMR-1").get("/cases").text
