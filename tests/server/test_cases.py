"""Cases over HTTP on both backends (issue 15): the major-penalty path through legal review, decision, disclosure and
the monthly sample; every transition and every refusal; each role's reach; every step in the evidence log."""

from __future__ import annotations

import datetime as dt

import pytest

from server.evidence.verify import verify
from server.jobs.disclosure import cst_date, sample_case_files
from server.rules.workdays import add_working_days
from server.storage.engine import sql, storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import CASES, CLEAN, investigating, make_reviewer, open_case, post, seed_case_people, seed_inspection
from tests.server.conftest import NOW_MS, PLAIN, Api

_ALERTS = sql("SELECT kind, agency_id, ref FROM alerts WHERE kind IN ('major_without_review', 'review_disagreement', 'case_transfer') ORDER BY id")
_DECISION = sql("SELECT kind, case_no, credit_code, deadline, status, disclosed_on FROM decisions WHERE decision_id = :id")


@pytest.fixture
def people(seeded_url: str) -> str:
    seed_case_people(seeded_url)
    return seeded_url


def test_the_major_penalty_path(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)
    case_id = investigating(api, parties=[{"kind": "individual", "name": "张三", "id_no": "110101199003071234"}])
    big = {"summary": "对张三（身份证号 110101199003071234）罚款 20 万元", "fine_yuan": 200_000}
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json=big)
    assert r.status_code == 409 and "罚款金额超过 100,000 元" in r.text and "legal review" in r.text
    with storage_for(people).reading() as tx:
        assert tx.all(_ALERTS) == [("major_without_review", "SAMR", case_id)]
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟罚款 20 万元", "fine_yuan": 200_000}, 201)
    review = c["reviews"][-1]
    assert c["state"] == "review" and review["status"] == "pending"
    assert review["deadline"] == add_working_days(cst_date(NOW_MS), 7)[0].isoformat() or review["deadline"] > cst_date(NOW_MS).isoformat()
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json=big).status_code == 409  # the review has no outcome yet
    outcome = f"{CASES}/{case_id}/reviews/{review['review_id']}/outcome"
    assert api.as_("OFF-SAMR-2").post(outcome, json={"checklist": CLEAN, "outcome": "passed"}).status_code == 404  # not a reviewer
    partial = {k: v for k, v in CLEAN.items() if k != "within_powers"}
    r = api.as_("OFF-SAMR-3").post(outcome, json={"checklist": partial, "outcome": "passed"})
    assert r.status_code == 400 and "within_powers" in r.text
    faulty = {**CLEAN, "documents_complete": {"ok": False, "note": "缺送达回证"}}
    assert api.as_("OFF-SAMR-3").post(outcome, json={"checklist": faulty, "outcome": "passed"}).status_code == 400
    c = post(api, "OFF-SAMR-3", outcome, {"checklist": CLEAN, "outcome": "passed", "opinion": "同意"})
    assert c["reviews"][-1]["status"] == "passed" and c["state"] == "review"
    assert api.as_("OFF-SAMR-3").post(outcome, json={"checklist": CLEAN, "outcome": "passed"}).status_code == 409  # replayed
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", big, 201)
    d = c["decision"]
    assert c["state"] == "decided" and d["major_rules"] == ["fine_over"] and d["review_id"] == review["review_id"] and d["measures"] == ["fine"]
    assert d["disclosure_deadline"] == add_working_days(dt.date.fromisoformat(d["decided_on"]), 7)[0].isoformat()
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json=big).status_code == 409  # a second decision
    assert api.get(f"{CASES}/disclosed").json() == []  # not yet disclosed
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/publish")
    assert c["decision"]["disclosure_status"] == "disclosed_on_time" and c["decision"]["published"]
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/publish").status_code == 409
    public = api.client.get(f"{CASES}/disclosed", params={"q": PLAIN}).json()
    assert len(public) == 1 and public[0]["fine_yuan"] == 200_000 and public[0]["credit_code"] == PLAIN
    people_shown = {p["kind"]: p for p in public[0]["parties"]}
    assert people_shown["individual"] == {"kind": "individual", "name": "张*", "id_no": "110*************34"}
    assert "张三" not in str(public) and "110101199003071234" not in str(public)
    mine = api.as_("ent-plain").get(CASES).json()
    assert [x["case_id"] for x in mine] == [case_id]
    seen = api.as_("ent-plain").get(f"{CASES}/{case_id}").json()
    assert seen["decision"]["fine_yuan"] == 200_000 and seen["reviews"] == [] and seen["steps"] == [] and seen["transfers"] == []
    assert [p["id_no"] for p in seen["parties"] if p["kind"] == "individual"] == ["110*************34"]
    for step in ("served", "executed", "closed", "archived"):
        assert post(api, "OFF-SAMR-2", f"{CASES}/{case_id}/transitions", {"to": step})["state"] == step
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/transitions", json={"to": "archived"}).status_code == 409  # replayed
    with storage_for(people).reading() as tx:
        assert tx.one(_DECISION, id=d["decision_id"])[:3] == ("penalty", case_id, PLAIN)
    later = int(dt.datetime.combine(cst_date(NOW_MS).replace(day=1) + dt.timedelta(days=40), dt.time(9)).timestamp() * 1000)
    assert storage_for(people).write(lambda tx: sample_case_files(tx, later)) == [f"SAMPLE-SAMR-{cst_date(NOW_MS):%Y-%m}"]
    assert api.get(f"{CASES}/{case_id}").json()["decision"]["sampled_in"] == [f"SAMPLE-SAMR-{cst_date(NOW_MS):%Y-%m}"]
    kinds = [s["kind"] for s in api.get(f"{CASES}/{case_id}").json()["steps"]]
    assert kinds == [
        "case.opened", "case.investigating", "case.review_submitted", "case.review_passed", "case.decided", "case.published",
        "case.served", "case.executed", "case.closed", "case.archived",
    ]  # fmt: skip
    with storage_for(people).reading() as tx:
        report = verify(tx, "00" * 32)
    assert not report.problems


def test_a_minor_decision_needs_no_review_and_a_permit_closes_once_served(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api, kind="permit", title="食品经营许可")
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "准予许可", "measures": ["permit_granted"]}, 201)
    assert c["decision"]["major_rules"] == [] and c["decision"]["review_id"] is None
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transitions", {"to": "served"})
    assert post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transitions", {"to": "closed"})["state"] == "closed"
    penalty = investigating(api)
    post(api, "OFF-SAMR-1", f"{CASES}/{penalty}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    post(api, "OFF-SAMR-1", f"{CASES}/{penalty}/transitions", {"to": "served"})
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{penalty}/transitions", json={"to": "closed"})
    assert r.status_code == 409 and "执行" in r.text  # a penalty is executed first


@pytest.mark.parametrize("measures,hearing,rule", [(["licence_revocation"], False, "吊销许可证件"), (["business_suspension"], False, "责令停产停业"), ([], True, "听证")])
def test_every_rule_of_the_list_refuses_without_a_review(api: Api, people: str, measures: list[str], hearing: bool, rule: str) -> None:  # noqa: F811
    case_id = investigating(api)
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "处罚", "measures": measures, "hearing": hearing})
    assert r.status_code == 409 and rule in r.text


def test_a_returned_review_and_a_disagreement_for_the_head(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)
    case_id = investigating(api)
    review_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟吊销许可证", "measures": ["licence_revocation"]}, 201)["reviews"][-1]["review_id"]
    outcome = f"{CASES}/{case_id}/reviews/{review_id}/outcome"
    assert api.as_("OFF-SAMR-3").post(outcome, json={"checklist": CLEAN, "outcome": "returned", "opinion": "补充证据"}).status_code == 400  # names no fault
    faulty = {**CLEAN, "facts_evidence": {"ok": False, "note": "证据不足"}}
    assert api.as_("OFF-SAMR-3").post(outcome, json={"checklist": faulty, "outcome": "returned"}).status_code == 400  # no opinion
    c = post(api, "OFF-SAMR-3", outcome, {"checklist": faulty, "outcome": "returned", "opinion": "补充抽样检验报告"})
    assert c["state"] == "investigating" and c["reviews"][-1]["status"] == "returned"
    second = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "已补充检验报告，仍拟吊销", "measures": ["licence_revocation"]}, 201)["reviews"][-1]["review_id"]
    assert second.endswith("-R2")
    c = post(api, "OFF-SAMR-3", f"{CASES}/{case_id}/reviews/{second}/outcome", {"checklist": CLEAN, "outcome": "disagreement", "opinion": "宜责令停业整顿，不宜吊销"})
    assert c["reviews"][-1]["status"] == "escalated" and c["state"] == "review"
    with storage_for(people).reading() as tx:
        assert ("review_disagreement", "SAMR", case_id) in tx.all(_ALERTS)
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "吊销", "measures": ["licence_revocation"]}).status_code == 409
    resolution = f"{CASES}/{case_id}/reviews/{second}/resolution"
    assert api.as_("admin-FIRE").post(resolution, json={"outcome": "passed", "note": "x"}).status_code == 404  # another agency's head
    assert api.as_("OFF-SAMR-1").post(resolution, json={"outcome": "passed", "note": "x"}).status_code == 403
    c = post(api, "admin-SAMR", resolution, {"outcome": "passed", "note": "经集体讨论，同意承办意见"})
    assert c["reviews"][-1]["status"] == "passed" and c["reviews"][-1]["head_note"] == "经集体讨论，同意承办意见"
    assert api.as_("admin-SAMR").post(resolution, json={"outcome": "passed", "note": "again"}).status_code == 409
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "吊销食品经营许可证", "measures": ["licence_revocation"]}, 201)
    assert c["decision"]["major_rules"] == ["measure:licence_revocation"]


def test_transitions_out_of_order_are_refused(api: Api, people: str) -> None:  # noqa: F811
    case_id = open_case(api)["case_id"]
    one = api.as_("OFF-SAMR-1")
    assert one.post(f"{CASES}/{case_id}/decision", json={"summary": "警告"}).status_code == 409  # no decision before the investigation
    assert one.post(f"{CASES}/{case_id}/reviews", json={"proposal": "x"}).status_code == 409
    for step in ("served", "executed", "closed", "archived"):
        assert one.post(f"{CASES}/{case_id}/transitions", json={"to": step}).status_code == 409
    assert one.post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 200
    assert one.post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 409  # a double click
    assert one.post(f"{CASES}/{case_id}/transitions", json={"to": "decided"}).status_code == 400  # not a transition of this route
    assert one.post(f"{CASES}/{case_id}/publish").status_code == 409  # nothing decided


def test_officers_and_credentials_are_checked(api: Api, people: str) -> None:  # noqa: F811
    one = api.as_("OFF-SAMR-1")
    base = {"kind": "penalty", "title": "x", "field": "food", "credit_code": PLAIN}
    for officers, status, words in (
        (["OFF-SAMR-1"], 400, ""),  # one officer (the body's own limit)
        (["OFF-SAMR-1", "OFF-SAMR-1"], 400, "两名"),  # the same one twice
        (["OFF-SAMR-1", "OFF-EXPIRED"], 400, "有效期"),
        (["OFF-SAMR-1", "OFF-REVOKED"], 400, "注销"),
        (["OFF-SAMR-1", "OFF-FUTURE"], 400, "有效期"),
        (["OFF-SAMR-1", "OFF-FIRE-1"], 400, "不属于办案机关"),
        (["OFF-SAMR-1", "NOBODY-X"], 404, ""),
    ):
        r = one.post(CASES, json={**base, "officer_ids": officers})
        assert r.status_code == status and words in r.text, (officers, r.text)
    assert one.post(CASES, json={**base, "field": "fire", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code == 400  # not their field
    assert one.post(CASES, json={**base, "credit_code": "91110108MA0000099X", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code in (400, 404)
    assert one.post(CASES, json={**{k: v for k, v in base.items() if k != "field"}, "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code == 400


def test_opening_from_an_inspection(api: Api, people: str) -> None:  # noqa: F811
    seed_inspection(people, "INS-1")
    seed_inspection(people, "INS-NOTHING", result="no_violation")
    seed_inspection(people, "INS-OPEN", ended=False)
    c = open_case(api, inspection_id="INS-1", field=None, credit_code=None)
    assert (c["credit_code"], c["field"], c["inspections"]) == (PLAIN, "food", ["INS-1"])
    video = [e for e in c["evidence"] if e["kind"] == "video"]
    assert video and video[0]["sha256"] == "ab" * 32 and video[0]["inspection_id"] == "INS-1"
    one = api.as_("OFF-SAMR-1")
    body = {"kind": "penalty", "title": "x", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}
    assert one.post(CASES, json={**body, "inspection_id": "INS-1"}).status_code == 409  # once per inspection and agency
    assert one.post(CASES, json={**body, "inspection_id": "INS-NOTHING"}).status_code == 409
    assert one.post(CASES, json={**body, "inspection_id": "INS-OPEN"}).status_code == 409
    assert one.post(CASES, json={**body, "inspection_id": "INS-MADE-UP"}).status_code == 404
    assert one.post(CASES, json={**body, "inspection_id": "INS-1", "field": "fire"}).status_code in (400, 409)
    r = api.as_("OFF-FIRE-1").post(CASES, json={**body, "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"], "inspection_id": "INS-1"})
    assert r.status_code == 404  # FIRE took no part in it
    doc = post(api, "OFF-SAMR-1", f"{CASES}/{c['case_id']}/documents", {"title": "现场检查笔录", "sha256": "cd" * 32})
    added = [e for e in doc["evidence"] if e["kind"] == "document"]
    assert added[0]["title"] == "现场检查笔录" and added[0]["log_index"] is not None and added[0]["ref"].startswith("rec:")


def test_each_role_sees_what_it_may(api: Api, people: str) -> None:  # noqa: F811
    case_id = open_case(api)["case_id"]
    assert api.as_("OFF-FIRE-1").get(f"{CASES}/{case_id}").status_code == 404  # another agency: not found
    assert api.as_("admin-FIRE").get(f"{CASES}/{case_id}").status_code == 404
    assert api.as_("admin-SAMR").get(f"{CASES}/{case_id}").status_code == 200
    assert api.get(f"{CASES}/{case_id}").status_code == 200  # the supervisor
    assert api.as_("OFF-FIRE-1").get(CASES).json() == []
    assert api.get(f"{CASES}/CASE-2099-99999").status_code == 404
    assert api.as_("admin-SAMR").post(CASES, json={"kind": "penalty", "title": "x", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code == 403
    assert api.post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 403  # a supervisor reads
    assert api.as_("OFF-FIRE-1").post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 404
    assert api.as_("ent-plain").post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code == 403
    assert api.client.get(CASES).status_code == 401
    assert api.as_("ent-plain").get(f"{CASES}/{case_id}").status_code == 200  # about itself
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers", json={"officer_id": "OFF-FIRE-1", "qualification_no": "x"}).status_code == 404
    make_reviewer(api)
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers", json={"officer_id": "OFF-SAMR-3", "qualification_no": "x"}).status_code == 409
    assert [r["officer_id"] for r in api.as_("admin-SAMR").get(f"{CASES}/reviewers").json()] == ["OFF-SAMR-3"]
    assert api.as_("admin-FIRE").get(f"{CASES}/reviewers").json() == []
    assert api.as_("OFF-SAMR-1").get(f"{CASES}/reviewers").status_code == 403


def test_a_handling_officer_may_not_review_their_own_case(api: Api, people: str) -> None:  # noqa: F811
    post(api, "admin-SAMR", f"{CASES}/reviewers", {"officer_id": "OFF-SAMR-2", "qualification_no": "法审-2"}, 201)
    case_id = investigating(api)
    review_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "x"}, 201)["reviews"][-1]["review_id"]
    r = api.as_("OFF-SAMR-2").post(f"{CASES}/{case_id}/reviews/{review_id}/outcome", json={"checklist": CLEAN, "outcome": "passed"})
    assert r.status_code == 409 and "承办" in r.text
    assert api.as_("OFF-SAMR-2").post(f"{CASES}/{case_id}/reviews/{case_id}-R9/outcome", json={"checklist": CLEAN, "outcome": "passed"}).status_code == 404
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers/OFF-SAMR-2/revoke").status_code == 204
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers/OFF-SAMR-2/revoke").status_code == 404
