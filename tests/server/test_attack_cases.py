"""Cases (issue 15) attacked by a hostile and a careless user, on both backends: another agency on every route, a
reviewer reviewing a case they worked on, a reviewer who lost the qualification or the credential, fines at and
around the threshold and absurd ones, replayed and skipped steps, made-up transfers, another enterprise, personal
data on the public page written to slip past the mask, and hostile bodies. Each test fails on the bug it guards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.console.auth import add_user
from server.storage.engine import sql, storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import CASES, CLEAN, investigating, make_reviewer, open_case, post, seed_case_people, seed_inspection
from tests.server.conftest import GOOD, NOW_MS, PLAIN, Api, password, password_hash

_REVOKE_CREDENTIAL = sql("UPDATE officers SET revoked_ms = :now_ms WHERE officer_id = :officer_id")


@pytest.fixture
def people(seeded_url: str) -> str:
    seed_case_people(seeded_url)
    with storage_for(seeded_url).writing() as tx:
        add_user(tx, "ent-good", password("ent-good"), "enterprise", credit_code=GOOD, password_hash=password_hash("ent-good"))
    return seeded_url


def _reviewed(api: Api, case_id: str) -> str:
    c = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟罚款 20 万元", "fine_yuan": 200_000}, 201)
    return f"{CASES}/{case_id}/reviews/{c['reviews'][-1]['review_id']}"


def test_another_agency_reaches_no_case_route(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)
    case_id = investigating(api)
    review = _reviewed(api, case_id)
    tries = [
        ("get", f"{CASES}/{case_id}", None),
        ("post", f"{CASES}/{case_id}/transitions", {"to": "investigating"}),
        ("post", f"{CASES}/{case_id}/documents", {"title": "笔录", "sha256": "cd" * 32}),
        ("post", f"{CASES}/{case_id}/reviews", {"proposal": "x"}),
        ("post", f"{review}/outcome", {"checklist": CLEAN, "outcome": "passed"}),
        ("post", f"{review}/resolution", {"outcome": "passed", "note": "x"}),
        ("post", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}),
        ("post", f"{CASES}/{case_id}/publish", None),
        ("post", f"{CASES}/{case_id}/transfers", {"kind": "transfer", "to_agency": "FIRE", "reason": "x"}),
        ("post", f"{CASES}/{case_id}/transfers/{case_id}-T1/answer", {"accepted": True, "reason": "x", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"]}),
        ("get", f"/api/v1/evidence/bundles/case/{case_id}", None),
    ]
    for user in ("OFF-FIRE-1", "admin-FIRE", "ent-good"):
        for method, url, body in tries:
            client = api.as_(user)
            r = client.get(url) if method == "get" else client.post(url, json=body if body is not None else {})
            assert r.status_code in (403, 404), (user, url, r.status_code, r.text)
    assert case_id not in api.as_("OFF-FIRE-1").get(CASES).text and case_id not in api.as_("ent-good").get(CASES).text
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "review"  # nothing moved


def test_a_reviewer_does_not_review_a_case_they_opened_or_submitted(api: Api, people: str) -> None:  # noqa: F811
    """OFF-SAMR-3 is a reviewer and an officer of SAMR: it may open a case naming two colleagues, submit it and then
    pass its own proposal. The checklist's first rule is that the reviewer is not the one who handled the case."""
    make_reviewer(api)
    body = {"kind": "penalty", "title": "销售过期食品", "field": "food", "credit_code": PLAIN, "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}
    r = api.as_("OFF-SAMR-3").post(CASES, json=body)  # opening a case it is not named on: refused outright
    assert r.status_code == 400 and r.json()["detail"].startswith("立案人须为本案承办人员之一"), r.text
    c = post(api, "OFF-SAMR-3", CASES, {**body, "officer_ids": ["OFF-SAMR-3", "OFF-SAMR-1"]}, 201)
    post(api, "OFF-SAMR-3", f"{CASES}/{c['case_id']}/transitions", {"to": "investigating"})
    c = post(api, "OFF-SAMR-3", f"{CASES}/{c['case_id']}/reviews", {"proposal": "拟罚款 20 万元", "fine_yuan": 200_000}, 201)
    outcome = f"{CASES}/{c['case_id']}/reviews/{c['reviews'][-1]['review_id']}/outcome"
    r = api.as_("OFF-SAMR-3").post(outcome, json={"checklist": CLEAN, "outcome": "passed"})
    assert r.status_code == 409, r.text
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/decision", json={"summary": "罚款 20 万元", "fine_yuan": 200_000})
    assert r.status_code == 409  # still refused: no review passed


def test_a_reviewer_who_lost_the_qualification_or_the_credential_cannot_decide_the_review(api: Api, people: str) -> None:  # noqa: F811
    make_reviewer(api)
    case_id = investigating(api)
    review = _reviewed(api, case_id)
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers/OFF-SAMR-3/revoke").status_code == 204
    assert api.as_("OFF-SAMR-3").post(f"{review}/outcome", json={"checklist": CLEAN, "outcome": "passed"}).status_code == 404
    make_reviewer(api)  # granted again, then the credential is revoked (the officer is struck off)
    with storage_for(people).writing() as tx:
        tx.run(_REVOKE_CREDENTIAL, now_ms=NOW_MS - 1000, officer_id="OFF-SAMR-3")
    r = api.as_("OFF-SAMR-3").post(f"{review}/outcome", json={"checklist": CLEAN, "outcome": "passed"})
    assert r.status_code in (404, 409), r.text
    assert api.get(f"{CASES}/{case_id}").json()["reviews"][-1]["status"] == "pending"


@pytest.mark.parametrize(("fine", "major"), [(100_000, False), (100_001, True), (0, False)])
def test_the_threshold_is_strictly_above(api: Api, people: str, fine: int, major: bool) -> None:  # noqa: F811
    case_id = investigating(api)
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "罚款", "fine_yuan": fine, "measures": [] if fine else ["warning"]})
    assert r.status_code == (409 if major else 201), r.text


@pytest.mark.parametrize(
    "body",
    [
        {"summary": "x", "fine_yuan": -1},
        {"summary": "x", "fine_yuan": 1e308},
        {"summary": "x", "fine_yuan": 100000.5},
        {"summary": "x", "fine_yuan": 10**13},
        {"summary": "x", "fine_yuan": 2**64},
        {"summary": "x", "measures": ["death_penalty"]},
        {"summary": "x", "measures": ["warning"] * 10_000},
        {"summary": "x", "measures": "fine"},
        {"summary": "", "fine_yuan": 1},
        {"summary": "x", "hearing": "yes"},
        {"summary": "x", "fine_yuan": 1, "approved": True},
    ],
)
def test_absurd_decisions_are_400(api: Api, people: str, body: dict[str, object]) -> None:  # noqa: F811
    case_id = investigating(api)
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json=body)
    assert r.status_code == 400, r.text
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "investigating"


def test_nan_and_infinity_are_not_fines(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    # A fine written as a string of digits is read as that number (the API's decoding is lax): the gate still holds.
    r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "x", "fine_yuan": "200000"})
    assert r.status_code == 409 and "100,000" in r.text, r.text
    for raw in (b'{"summary": "x", "fine_yuan": NaN}', b'{"summary": "x", "fine_yuan": Infinity}', b'{"summary": "x", "fine_yuan": 1e999}'):
        r = api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text


def test_steps_skipped_replayed_and_after_archive(api: Api, people: str) -> None:  # noqa: F811
    c = open_case(api)
    url = f"{CASES}/{c['case_id']}/transitions"
    for to in ("served", "executed", "closed", "archived"):
        assert api.as_("OFF-SAMR-1").post(url, json={"to": to}).status_code == 409, to
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/decision", json={"summary": "警告", "measures": ["warning"]}).status_code == 409  # no investigation yet
    post(api, "OFF-SAMR-1", url, {"to": "investigating"})
    assert api.as_("OFF-SAMR-2").post(url, json={"to": "investigating"}).status_code == 409  # the second click
    post(api, "OFF-SAMR-1", f"{CASES}/{c['case_id']}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/decision", json={"summary": "警告", "measures": ["warning"]}).status_code == 409
    for to in ("served", "executed", "closed", "archived"):
        post(api, "OFF-SAMR-1", url, {"to": to})
    for to in ("investigating", "served", "executed", "closed", "archived"):
        assert api.as_("OFF-SAMR-1").post(url, json={"to": to}).status_code == 409, to
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/documents", json={"title": "补充", "sha256": "ef" * 32}).status_code == 409
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/transfers", json={"kind": "transfer", "to_agency": "FIRE", "reason": "x"}).status_code == 409
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{c['case_id']}/reviews", json={"proposal": "x"}).status_code == 409
    kinds = [s["kind"] for s in api.get(f"{CASES}/{c['case_id']}").json()["steps"]]
    assert kinds.count("case.archived") == 1 and kinds.count("case.investigating") == 1


def test_transfers_to_nowhere_or_to_itself(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    url = f"{CASES}/{case_id}/transfers"
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "transfer", "to_agency": "NO-SUCH-AGENCY", "reason": "x"}).status_code == 404
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "transfer", "to_agency": "SAMR", "reason": "x"}).status_code == 400
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "transfer", "reason": "x"}).status_code == 404
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "transfer", "to_agency": "../FIRE", "reason": "x"}).status_code == 400
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "referral", "reason": "x"}).status_code == 400
    post(api, "OFF-SAMR-1", url, {"kind": "transfer", "to_agency": "FIRE", "reason": "属消防领域"}, 201)
    assert api.as_("OFF-SAMR-1").post(url, json={"kind": "transfer", "to_agency": "FIRE", "reason": "x"}).status_code == 409  # sent twice
    answer = f"{CASES}/{case_id}/transfers/{case_id}-T1/answer"
    # The sender cannot answer its own transfer; the receiver cannot accept with another agency's or too few officers.
    assert api.as_("OFF-SAMR-1").post(answer, json={"accepted": True, "reason": "x", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code == 404
    assert api.as_("OFF-FIRE-1").post(answer, json={"accepted": True, "reason": "x", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}).status_code == 400
    assert api.as_("OFF-FIRE-1").post(answer, json={"accepted": True, "reason": "x", "officer_ids": ["OFF-FIRE-1"]}).status_code == 400
    assert api.as_("OFF-FIRE-1").post(answer, json={"accepted": True, "reason": "x", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-1"]}).status_code == 400
    post(api, "OFF-FIRE-1", answer, {"accepted": False, "reason": "不属本机关"})
    assert api.as_("OFF-FIRE-1").post(answer, json={"accepted": True, "reason": "x", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"]}).status_code in (404, 409)
    assert api.get(f"{CASES}/{case_id}").json()["agency_id"] == "SAMR"


def test_one_inspection_opens_one_case(api: Api, people: str) -> None:  # noqa: F811
    seed_inspection(people, "INS-ATK-1")
    open_case(api, inspection_id="INS-ATK-1")
    r = api.as_("OFF-SAMR-2").post(CASES, json={"kind": "penalty", "title": "再立一次", "inspection_id": "INS-ATK-1", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]})
    assert r.status_code == 409, r.text
    r = api.as_("OFF-FIRE-1").post(CASES, json={"kind": "penalty", "title": "别人的检查", "inspection_id": "INS-ATK-1", "officer_ids": ["OFF-FIRE-1", "OFF-FIRE-2"]})
    assert r.status_code == 404, r.text
    seed_inspection(people, "INS-ATK-2", ended=False)
    r = api.as_("OFF-SAMR-1").post(CASES, json={"kind": "penalty", "title": "未结束", "inspection_id": "INS-ATK-2", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]})
    assert r.status_code == 409, r.text


def test_an_enterprises_case_bundle_holds_no_internal_review_and_no_id_numbers(api: Api, people: str) -> None:  # noqa: F811
    """The cases API shows the enterprise its case without the review, the steps and the parties' ID numbers; its
    evidence bundle of the case must not hand them over either."""
    from tests.server.test_bundle import members

    make_reviewer(api)
    case_id = investigating(api, parties=[{"kind": "individual", "name": "张三", "id_no": "110101199003071234"}])
    review = _reviewed(api, case_id)
    post(api, "OFF-SAMR-3", f"{review}/outcome", {"checklist": CLEAN, "outcome": "passed", "opinion": "内部审核意见：证据链薄弱"})
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transfers", {"kind": "referral", "to_body": "海淀区公安分局", "reason": "涉嫌犯罪"}, 201)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "罚款 20 万元", "fine_yuan": 200_000}, 201)
    r = api.as_("ent-plain").get(f"/api/v1/evidence/bundles/case/{case_id}")
    assert r.status_code == 200, r.text
    files = members(r.content)
    records = json.loads(files["records.json"])["items"]
    kinds = {x["record"]["kind"] for x in records if "record" in x}
    assert "case.decided" in kinds
    assert not kinds & {"case.review_submitted", "case.review_passed", "case.referral_sent", "case.opened"}, kinds
    text = b"".join(files.values()).decode("utf-8", "replace")
    import base64

    bodies = "".join(base64.b64decode(x["record"]["body"]).decode() for x in records if "record" in x)
    for secret in ("证据链薄弱", "涉嫌犯罪", "110101199003071234"):
        assert secret not in text and secret not in bodies, secret
    full = members(api.get(f"/api/v1/evidence/bundles/case/{case_id}").content)  # the supervisor's: everything
    assert "case.review_passed" in {x["record"]["kind"] for x in json.loads(full["records.json"])["items"] if "record" in x}


@pytest.mark.parametrize(
    "written",
    [
        "110101 19900307 1234",
        "110101-19900307-1234",
        "１１０１０１１９９００３０７１２３４",
        "110101199003071234",
        "11010119900307123X",
        "身份证110101199003071234号",
    ],
)
def test_the_public_page_masks_id_numbers_however_written(api: Api, people: str, written: str) -> None:  # noqa: F811
    case_id = investigating(api, title=f"张三（{written}）销售过期食品", parties=[{"kind": "individual", "name": "张三", "id_no": "110101199003071234"}])
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": f"对张三（身份证 {written}）警告", "measures": ["warning"]}, 201)
    post(api, "admin-SAMR", f"{CASES}/{case_id}/publish")
    for lang in ("zh", "en"):
        shown = api.client.get(f"{CASES}/disclosed", params={"lang": lang}).text
        assert written not in shown and "张三" not in shown, shown
        page = api.client.get("/public/disclosure", params={"lang": lang}).text
        assert written not in page and "张三" not in page
    digits = "".join(ch for ch in written if ch.isdigit() or ch in "Xx")
    normalised = digits.translate({ord("０") + i: ord("0") + i for i in range(10)})
    assert normalised[6:14] not in "".join(ch for ch in shown if ch.isdigit()).translate({ord("０") + i: ord("0") + i for i in range(10)})


def test_undisclosed_decisions_stay_off_the_public_page(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api, title="未公示的案件")
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告，尚未公示", "measures": ["warning"]}, 201)
    for q in (None, PLAIN, "%", "_", "海淀", "' OR 1=1 --"):
        params = {} if q is None else {"q": q}
        assert api.client.get(f"{CASES}/disclosed", params=params).json() == [], q
        assert "尚未公示" not in api.client.get("/public/disclosure", params=params).text


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"kind": "penalty", "title": "a\\u0000b", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}',
        b'{"kind": "penalty", "title": "x", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"], "parties": [' + b'{"kind": "individual", "name": "a"},' * 10_000 + b'{"kind": "individual", "name": "a"}]}',
        b'{"kind": "penalty", "title": "' + b"x" * 3_000_000 + b'", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}',
        b'{"kind": "penalty", "title": "x", "field": "food", "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"], "parties": [{"kind": "individual", "name": "x", "id_no": "11010119900307123\\u0000"}]}',
        b"\xff\xfe not json",
    ],
)
def test_hostile_bodies_get_a_4xx(api: Api, people: str, raw: bytes) -> None:  # noqa: F811
    r = api.as_("OFF-SAMR-1").post(CASES, content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert api.get(CASES).json() == []


def test_emoji_and_far_away_characters_are_kept(api: Api, people: str) -> None:  # noqa: F811
    c = open_case(api, title="销售过期食品🍱𠀀")
    assert api.get(f"{CASES}/{c['case_id']}").json()["title"] == "销售过期食品🍱𠀀"


def _officer(name: str, agency: str = "SAMR") -> Any:
    from server.console.auth import Principal

    return Principal(username=name, role="officer", agency_id=agency, officer_id=name)


def test_races_make_one_case_one_decision_one_outcome(api: Api, people: str) -> None:  # noqa: F811
    """Two clicks at once (two officers, two API processes): one case per inspection, one decision, one outcome."""
    from server.cases import decide, review, workflow
    from server.cases.forms import CaseIn, DecisionIn, ItemFinding, OutcomeIn
    from server.cases.policy import CasesPolicy
    from server.errors import Conflict
    from tests.support.overlap import overlapping_writes

    store = storage_for(people)
    seed_inspection(people, "INS-RACE")
    body = CaseIn(kind="penalty", title="并发立案", inspection_id="INS-RACE", officer_ids=["OFF-SAMR-1", "OFF-SAMR-2"])
    outcomes = overlapping_writes(
        store, lambda tx: workflow.open_case(tx, body, _officer("OFF-SAMR-1"), NOW_MS, CasesPolicy()), lambda tx: workflow.open_case(tx, body, _officer("OFF-SAMR-2"), NOW_MS + 1, CasesPolicy())
    )  # fmt: skip
    assert isinstance(outcomes[1], Conflict) and not isinstance(outcomes[0], Exception), outcomes
    assert len(api.get(CASES).json()) == 1
    make_reviewer(api)
    case_id = investigating(api)
    url = _reviewed(api, case_id)
    review_id = url.rsplit("/", 1)[1]
    clean = OutcomeIn(checklist={k: ItemFinding(ok=True) for k in CLEAN}, outcome="passed")  # type: ignore[misc]
    reviewer = _officer("OFF-SAMR-3")
    outcomes = overlapping_writes(store, lambda tx: review.outcome(tx, case_id, review_id, clean, reviewer, NOW_MS), lambda tx: review.outcome(tx, case_id, review_id, clean, reviewer, NOW_MS + 1))
    assert isinstance(outcomes[1], Conflict) and not isinstance(outcomes[0], Exception), outcomes
    d = DecisionIn(summary="罚款 20 万元", fine_yuan=200_000)
    outcomes = overlapping_writes(
        store, lambda tx: decide.decide(tx, case_id, d, _officer("OFF-SAMR-1"), NOW_MS, CasesPolicy()), lambda tx: decide.decide(tx, case_id, d, _officer("OFF-SAMR-2"), NOW_MS + 1, CasesPolicy())
    )  # fmt: skip
    assert isinstance(outcomes[1], Conflict) and not isinstance(outcomes[0], Exception), outcomes
    kinds = [s["kind"] for s in api.get(f"{CASES}/{case_id}").json()["steps"]]
    assert kinds.count("case.decided") == 1 and kinds.count("case.review_passed") == 1


def test_a_cases_alerts_stay_with_its_agency(api: Api, people: str) -> None:  # noqa: F811
    """The alert of a refused major decision names the case's title: another agency neither sees, acknowledges nor
    assigns it; an officer (who sees no alerts) is not an assignee; a replayed acknowledgement is 409."""
    case_id = investigating(api, title="张三销售过期食品")
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/{case_id}/decision", json={"summary": "罚款", "fine_yuan": 200_000}).status_code == 409
    alerts = [a for a in api.get("/api/v1/alerts", params={"kind": "major_without_review"}).json() if a["ref"] == case_id]
    assert len(alerts) == 1
    url = f"/api/v1/alerts/{alerts[0]['id']}"
    assert "张三" not in api.as_("admin-FIRE").get("/api/v1/alerts").text
    assert api.as_("admin-FIRE").get(url).status_code == 403
    assert api.as_("admin-FIRE").post(f"{url}/acknowledge").status_code == 403
    assert api.as_("admin-FIRE").post(f"{url}/assign", json={"assignee": "admin-FIRE"}).status_code == 403
    for who in ("OFF-SAMR-1", "ent-plain"):
        assert api.as_(who).get(url).status_code == 403, who
    for assignee in ("admin-FIRE", "OFF-SAMR-1", "ent-plain", "nobody", "sup\u0000"):
        assert api.as_("admin-SAMR").post(f"{url}/assign", json={"assignee": assignee}).status_code == 400, assignee
    assert api.as_("admin-SAMR").post(f"{url}/acknowledge").status_code == 200
    assert api.as_("admin-SAMR").post(f"{url}/acknowledge").status_code == 409
    assert api.get("/api/v1/alerts/4611686018427387905").status_code == 400


def test_an_id_number_given_as_an_enterprises_number_is_masked_in_public(api: Api, people: str) -> None:  # noqa: F811
    """A careless officer names a sole trader as an enterprise party with the owner's ID number: enterprises are
    public, ID numbers are not. A real credit code stays as it is."""
    parties = [{"kind": "enterprise", "name": "张三小吃店（个体）", "id_no": "110101199003071234"}, {"kind": "enterprise", "name": "某公司", "id_no": GOOD}]
    case_id = investigating(api, parties=parties)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/publish")
    shown = api.client.get(f"{CASES}/disclosed").json()[0]["parties"]
    assert "110101199003071234" not in str(shown) and GOOD in str(shown), shown
    assert "19900307" not in api.client.get("/public/disclosure").text


def test_roles_out_of_their_lane(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    assert api.as_("ent-good").get(CASES, params={"credit_code": PLAIN}).json() == []  # the filter is not a way in
    assert [c["case_id"] for c in api.as_("ent-plain").get(CASES, params={"credit_code": GOOD}).json()] == [case_id]
    for url in (f"{CASES}/reviews", f"{CASES}/reviewers"):
        assert api.as_("ent-plain").get(url).status_code == 403, url
    reviewer = {"officer_id": "OFF-SAMR-3", "qualification_no": "法审-1"}
    assert api.as_("OFF-SAMR-1").post(f"{CASES}/reviewers", json=reviewer).status_code == 403
    assert api.as_("admin-FIRE").post(f"{CASES}/reviewers", json=reviewer).status_code == 404
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers", json={"officer_id": "OFF-REVOKED", "qualification_no": "x"}).status_code == 400
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers", json=reviewer).status_code == 201
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers", json=reviewer).status_code == 409
    assert api.as_("admin-FIRE").post(f"{CASES}/reviewers/OFF-SAMR-3/revoke").status_code == 404
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers/OFF-SAMR-3/revoke").status_code == 204
    assert api.as_("admin-SAMR").post(f"{CASES}/reviewers/OFF-SAMR-3/revoke").status_code in (404, 409)  # no longer a reviewer
    score = {"scores": {"filing": 10, "evidence": 25, "procedure": 25, "law_applied": 20, "documents": 10, "archiving": 10}}
    assert api.as_("admin-SAMR").post(f"{CASES}/samples/S/files/D/score", json=score).status_code == 403
    assert api.post(f"{CASES}/samples/S/files/D/score", json=score).status_code == 404
    assert api.post(f"{CASES}/samples/S/files/D/score", json={"scores": {**score["scores"], "filing": 100}}).status_code == 400
    assert api.as_("OFF-SAMR-1").get(f"{CASES}/" + "C" * 5000).status_code in (400, 404)
    many = {"kind": "penalty", "title": "x", "field": "food", "officer_ids": [f"OFF-{i}" for i in range(10_000)]}
    assert api.as_("OFF-SAMR-1").post(CASES, json=many).status_code == 400


def test_a_case_on_its_way_to_another_agency_is_frozen(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/transfers", {"kind": "transfer", "to_agency": "FIRE", "reason": "属消防"}, 201)
    for user in ("OFF-SAMR-1", "OFF-FIRE-1"):
        client = api.as_(user)
        assert client.post(f"{CASES}/{case_id}/decision", json={"summary": "警告", "measures": ["warning"]}).status_code in (404, 409), user
        assert client.post(f"{CASES}/{case_id}/transitions", json={"to": "investigating"}).status_code in (404, 409), user
        assert client.post(f"{CASES}/{case_id}/documents", json={"title": "x", "sha256": "ab" * 32}).status_code in (404, 409), user
        assert client.post(f"{CASES}/{case_id}/reviews", json={"proposal": "x"}).status_code in (404, 409), user
        assert client.post(f"{CASES}/{case_id}/transfers", json={"kind": "referral", "to_body": "公安", "reason": "x"}).status_code in (404, 409), user
    assert api.as_("admin-FIRE").post(f"{CASES}/{case_id}/publish").status_code in (404, 409)
    c = api.get(f"{CASES}/{case_id}").json()
    assert c["state"] == "transferring" and c["decision"] is None and [t["kind"] for t in c["transfers"]] == ["transfer"]


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "%", "\\", "'", "😀" * 30, "１１０１０１"])
def test_the_public_search_takes_any_words(api: Api, people: str, q: str) -> None:  # noqa: F811
    for url in (f"{CASES}/disclosed", "/public/disclosure"):
        for params in ({"q": q}, {"agency": q}, {"q": q, "lang": "en"}):
            r = api.client.get(url, params=params)
            assert r.status_code in (200, 400), (url, params, r.status_code)


def test_a_pass_after_a_fail_does_not_leave_the_finding_open_behind_it(api: Api, people: str) -> None:  # noqa: F811
    """A failing score opens a finding; a pass given afterwards (or a second fail) would leave that finding open beside
    a file recorded as passed. While the finding is open the file is not scored again: 409 naming the finding."""
    import datetime as dt

    from protocol.cst import cst_date
    from server.jobs.disclosure import sample_case_files

    case_id = investigating(api)
    decision_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)["decision"]["decision_id"]
    later = int(dt.datetime.combine(cst_date(NOW_MS).replace(day=1) + dt.timedelta(days=40), dt.time(9)).timestamp() * 1000)
    (sample,) = storage_for(people).write(lambda tx: sample_case_files(tx, later))
    url = f"{CASES}/samples/{sample}/files/{decision_id}/score"
    failing = {"filing": 10, "evidence": 10, "procedure": 20, "law_applied": 15, "documents": 10, "archiving": 10}
    finding_id = post(api, "sup", url, {"scores": failing})["finding_id"]
    for scores in ({"filing": 10, "evidence": 25, "procedure": 25, "law_applied": 20, "documents": 10, "archiving": 10}, failing):
        r = api.post(url, json={"scores": scores})
        assert r.status_code == 409 and finding_id in r.json()["detail"] and r.json()["detail"].startswith("该案卷"), r.text
    assert api.get(f"/api/v1/supervision/findings/{finding_id}").json()["status"] == "open"
    with storage_for(people).reading() as tx:
        (result,) = tx.one(sql("SELECT result FROM sample_items WHERE sample_id = :s AND decision_id = :d"), s=sample, d=decision_id)
    assert result == "fail"


def _passed(api: Api, case_id: str, proposal: dict[str, object]) -> str:  # noqa: F811
    """Submit ``proposal`` for review and have OFF-SAMR-3 pass it; the review's id."""
    review_id = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", proposal, 201)["reviews"][-1]["review_id"]
    post(api, "OFF-SAMR-3", f"{CASES}/{case_id}/reviews/{review_id}/outcome", {"checklist": CLEAN, "outcome": "passed"})
    return review_id


def test_a_review_passed_on_a_warning_does_not_let_a_huge_fine_through(api: Api, people: str) -> None:  # noqa: F811
    """The review records the decision proposed (fine, measures, hearing, kind); the decision is at most that: a
    bigger fine, another measure or another hearing is 409 naming what differs, and a different proposal needs a new
    review."""
    make_reviewer(api)
    case_id = investigating(api)
    review_id = _passed(api, case_id, {"proposal": "拟警告", "measures": ["warning"]})
    seen = api.get(f"{CASES}/{case_id}").json()["reviews"][-1]
    assert (seen["kind"], seen["fine_yuan"], seen["measures"], seen["hearing"]) == ("penalty", 0, ["warning"], False)
    decision = f"{CASES}/{case_id}/decision"
    r = api.as_("OFF-SAMR-1").post(decision, json={"summary": "罚款 200 万元", "fine_yuan": 2_000_000})
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert detail.startswith("决定与法制审核通过的拟作出决定") and review_id in detail and "2,000,000" in detail and "罚款" in detail
    with storage_for(people).reading() as tx:
        assert ("major_without_review", case_id) in tx.all(sql("SELECT kind, ref FROM alerts WHERE kind = 'major_without_review'"))
    for body, word in (
        ({"summary": "警告并吊销", "measures": ["warning", "licence_revocation"]}, "吊销许可证件"),
        ({"summary": "警告（经听证）", "measures": ["warning"], "hearing": True}, "听证"),
        ({"summary": "警告并罚款 1 元", "measures": ["warning"], "fine_yuan": 1}, "罚款"),
    ):
        r = api.as_("OFF-SAMR-1").post(decision, json=body)
        assert r.status_code == 409 and word in r.json()["detail"], (body, r.text)
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "review"
    # A different proposal: a new review of it, then the decision within it (a smaller fine is within it).
    second = _passed(api, case_id, {"proposal": "拟罚款 200 万元", "fine_yuan": 2_000_000, "measures": ["warning"]})
    assert second.endswith("-R2")
    c = post(api, "OFF-SAMR-1", decision, {"summary": "警告并罚款 150 万元", "fine_yuan": 1_500_000, "measures": ["warning"]}, 201)
    assert c["decision"]["review_id"] == second and c["state"] == "decided"


def test_only_the_cases_named_officers_work_it(api: Api, people: str) -> None:  # noqa: F811
    """OFF-SAMR-3 is an officer of the same agency but not named on the case: every step of the case is 403 for it,
    and nothing moves; the named officers and the agency's administrator (publishing) still act."""
    case_id = open_case(api)["case_id"]
    base = f"{CASES}/{case_id}"
    tries = [
        (f"{base}/transitions", {"to": "investigating"}),
        (f"{base}/documents", {"title": "笔录", "sha256": "cd" * 32}),
        (f"{base}/reviews", {"proposal": "x"}),
        (f"{base}/decision", {"summary": "警告", "measures": ["warning"]}),
        (f"{base}/transfers", {"kind": "transfer", "to_agency": "FIRE", "reason": "x"}),
        (f"{base}/transfers", {"kind": "referral", "to_body": "公安分局", "reason": "x"}),
    ]
    for url, body in tries:
        r = api.as_("OFF-SAMR-3").post(url, json=body)
        assert r.status_code == 403 and r.json()["detail"].startswith("您不是本案的承办人员"), (url, r.text)
    c = api.get(base).json()
    assert c["state"] == "filed" and not [e for e in c["evidence"] if e["kind"] == "document"] and c["transfers"] == [] and c["reviews"] == []
    post(api, "OFF-SAMR-2", f"{base}/transitions", {"to": "investigating"})  # the second named officer may
    c = post(api, "OFF-SAMR-1", f"{base}/transfers", {"kind": "referral", "to_body": "公安分局", "reason": "涉嫌犯罪"}, 201)
    answer = f"{base}/transfers/{c['transfers'][-1]['transfer_id']}/answer"
    assert api.as_("OFF-SAMR-3").post(answer, json={"accepted": True, "reason": "已立案"}).status_code == 403
    assert api.as_("OFF-SAMR-3").post(f"{base}/decision", json={"summary": "警告", "measures": ["warning"]}).status_code == 403
    post(api, "OFF-SAMR-2", f"{base}/decision", {"summary": "警告", "measures": ["warning"]}, 201)
    assert api.as_("OFF-SAMR-3").post(f"{base}/publish").status_code == 403
    assert post(api, "admin-SAMR", f"{base}/publish")["decision"]["published"]  # the agency head publishes


def test_the_case_page_offers_its_forms_to_the_named_officers_only(api: Api, people: str) -> None:  # noqa: F811
    """The page follows the API: a colleague not named on the case reads it but gets no form for a step (each would be
    403); a named officer gets them, and, after a passed review, the form to submit a different proposal."""
    make_reviewer(api)
    case_id = investigating(api)
    for user, shown in (("OFF-SAMR-3", False), ("OFF-SAMR-2", True)):
        html = api.as_(user).get("/cases", params={"case": case_id}).text
        assert case_id in html or "销售过期食品" in html
        assert ('id="form-decide"' in html and 'id="form-review"' in html) is shown, user
    _passed(api, case_id, {"proposal": "拟警告", "measures": ["warning"]})
    html = api.as_("OFF-SAMR-1").get("/cases", params={"case": case_id}).text
    assert 'id="form-review"' in html and 'id="form-decide"' in html


def test_a_named_officer_whose_credential_is_revoked_takes_no_more_steps(api: Api, people: str) -> None:  # noqa: F811
    case_id = investigating(api)
    with storage_for(people).writing() as tx:
        tx.run(_REVOKE_CREDENTIAL, now_ms=NOW_MS - 1000, officer_id="OFF-SAMR-2")
    for url, body in (
        (f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}),
        (f"{CASES}/{case_id}/documents", {"title": "笔录", "sha256": "cd" * 32}),
        (f"{CASES}/{case_id}/reviews", {"proposal": "x"}),
    ):
        r = api.as_("OFF-SAMR-2").post(url, json=body)
        assert r.status_code == 403 and r.json()["detail"].startswith("您的执法证已注销"), (url, r.text)
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "investigating"
    post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}, 201)


def test_a_decision_within_the_review_however_written_and_each_difference_named(api: Api, people: str) -> None:  # noqa: F811
    """The reviewed proposal holds however the decision is written: measures in another order (or repeated) are the
    same measures; a measure in capitals is no measure (400); a decision beyond it in several ways is one 409 naming
    each difference, in both languages; nothing moves until a decision within it."""
    make_reviewer(api)
    case_id = investigating(api)
    review_id = _passed(api, case_id, {"proposal": "拟没收并责令停业、罚款 20 万元（经听证）", "fine_yuan": 200_000, "measures": ["confiscation", "business_suspension"], "hearing": True})
    decision = f"{CASES}/{case_id}/decision"
    for measures in (["Confiscation"], ["BUSINESS_SUSPENSION"], ["confiscation "], [" fine"]):
        r = api.as_("OFF-SAMR-1").post(decision, json={"summary": "x", "fine_yuan": 200_000, "measures": measures, "hearing": True})
        assert r.status_code == 400, (measures, r.text)
    r = api.as_("OFF-SAMR-1").post(decision, json={"summary": "x", "fine_yuan": 300_000, "measures": ["licence_revocation", "confiscation"], "hearing": False})
    assert r.status_code == 409, r.text
    zh, _, en = r.json()["detail"].partition(" / ")
    assert review_id in zh and review_id in en
    assert "300,000" in zh and "200,000" in zh and "吊销许可证件" in zh and "听证" in zh, zh
    assert "fine 300,000" in en and "licence_revocation" in en and "hearing" in en, en
    assert "罚款 200,001 元" in api.as_("OFF-SAMR-1").post(decision, json={"summary": "x", "fine_yuan": 200_001, "measures": ["confiscation"], "hearing": True}).json()["detail"]
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "review"
    body = {"summary": "责令停业、没收并罚款 20 万元", "fine_yuan": 200_000, "measures": ["fine", "business_suspension", "confiscation", "business_suspension"], "hearing": True}
    c = post(api, "OFF-SAMR-2", decision, body, 201)
    assert c["decision"]["review_id"] == review_id and sorted(c["decision"]["measures"]) == ["business_suspension", "confiscation", "fine"]


def test_a_new_proposal_after_a_pass_holds_the_decision_until_it_is_reviewed(api: Api, people: str) -> None:  # noqa: F811
    """A proposal changed after its review passed is a new review: while it waits, no decision (not even one within the
    passed review); once it is returned, the passed review no longer vouches for a major decision."""
    make_reviewer(api)
    case_id = investigating(api)
    _passed(api, case_id, {"proposal": "拟罚款 20 万元", "fine_yuan": 200_000})
    second = post(api, "OFF-SAMR-1", f"{CASES}/{case_id}/reviews", {"proposal": "拟罚款 15 万元", "fine_yuan": 150_000}, 201)["reviews"][-1]["review_id"]
    decision = f"{CASES}/{case_id}/decision"
    for fine in (200_000, 150_000, 0):
        r = api.as_("OFF-SAMR-1").post(decision, json={"summary": "罚款", "fine_yuan": fine})
        assert r.status_code == 409 and r.json()["detail"].startswith("法制审核尚无结论"), (fine, r.text)
    faulty = {**CLEAN, "law_discretion": {"ok": False, "note": "裁量过轻"}}
    post(api, "OFF-SAMR-3", f"{CASES}/{case_id}/reviews/{second}/outcome", {"checklist": faulty, "outcome": "returned", "opinion": "裁量基准适用不当"})
    r = api.as_("OFF-SAMR-1").post(decision, json={"summary": "罚款 20 万元", "fine_yuan": 200_000})
    assert r.status_code == 409 and r.json()["detail"].startswith("重大执法决定须经法制审核通过"), r.text
    assert api.get(f"{CASES}/{case_id}").json()["state"] == "investigating"


@pytest.mark.parametrize("decision_first", [True, False])
def test_a_decision_racing_a_new_proposal(api: Api, people: str, decision_first: bool) -> None:  # noqa: F811
    """A decision within the passed review and a new proposal sent at the same moment: whichever comes second is 409
    (a decision is not made while a new proposal waits, and no proposal follows a decision). The two run with the
    tests' NOW_MS, earlier than the API's clock that passed the first review (an API process whose clock is behind):
    the latest review is the last submitted, whatever the clocks say (it was taken by time, and the decision
    went through on the first review while the new proposal waited)."""
    from server.cases import decide, review
    from server.cases.forms import DecisionIn, ReviewIn
    from server.cases.policy import CasesPolicy
    from server.errors import Conflict
    from tests.support.overlap import overlapping_writes

    make_reviewer(api)
    case_id = investigating(api)
    _passed(api, case_id, {"proposal": "拟罚款 20 万元", "fine_yuan": 200_000})
    dec = lambda tx: decide.decide(tx, case_id, DecisionIn(summary="罚款 20 万元", fine_yuan=200_000), _officer("OFF-SAMR-1"), NOW_MS, CasesPolicy())  # noqa: E731
    new = lambda tx: review.submit(tx, case_id, ReviewIn(proposal="拟罚款 30 万元", fine_yuan=300_000), _officer("OFF-SAMR-2"), NOW_MS, CasesPolicy())  # noqa: E731
    outcomes = overlapping_writes(storage_for(people), *((dec, new) if decision_first else (new, dec)))
    assert not isinstance(outcomes[0], Exception) and isinstance(outcomes[1], Conflict), outcomes
    c = api.get(f"{CASES}/{case_id}").json()
    assert (c["state"], len(c["reviews"]), c["decision"] is not None) == (("decided", 1, True) if decision_first else ("review", 2, False))


_CREDENTIAL_DATES = sql("UPDATE officers SET valid_from_ms = :valid_from, valid_to_ms = :valid_to WHERE officer_id = :officer_id")


@pytest.mark.parametrize("dates", ["lapsed", "not_yet"])
def test_a_named_officer_outside_the_credentials_dates_takes_no_step(api: Api, people: str, dates: str) -> None:  # noqa: F811
    """Not revoked, but out of its dates (lapsed, or not valid yet): 403 on every step, as for a revoked credential."""
    case_id = investigating(api)
    valid_from, valid_to = (NOW_MS - 400 * 86_400_000, NOW_MS - 1000) if dates == "lapsed" else (NOW_MS + 86_400_000, NOW_MS + 400 * 86_400_000)
    with storage_for(people).writing() as tx:
        tx.run(_CREDENTIAL_DATES, valid_from=valid_from, valid_to=valid_to, officer_id="OFF-SAMR-2")
    for url, body in (
        (f"{CASES}/{case_id}/decision", {"summary": "警告", "measures": ["warning"]}),
        (f"{CASES}/{case_id}/documents", {"title": "笔录", "sha256": "cd" * 32}),
        (f"{CASES}/{case_id}/reviews", {"proposal": "x"}),
        (f"{CASES}/{case_id}/transfers", {"kind": "referral", "to_body": "公安分局", "reason": "x"}),
    ):
        r = api.as_("OFF-SAMR-2").post(url, json=body)
        assert r.status_code == 403 and "不在有效期内" in r.json()["detail"], (url, r.text)
    c = api.get(f"{CASES}/{case_id}").json()
    assert c["state"] == "investigating" and c["transfers"] == [] and c["reviews"] == []


def test_an_officer_named_on_another_case_or_a_manager_moves_no_case(api: Api, people: str) -> None:  # noqa: F811
    """Being named on one case is no key to another of the agency's; the agency's administrator and a supervisor see
    the case but take no officer's step (403); another agency's officer named on its own case: 404."""
    case_id = investigating(api)
    other = open_case(api, officer_ids=["OFF-SAMR-1", "OFF-SAMR-3"])["case_id"]
    post(api, "OFF-SAMR-3", f"{CASES}/{other}/transitions", {"to": "investigating"})  # named there: it may
    base = f"{CASES}/{case_id}"
    tries = [
        (f"{base}/transitions", {"to": "investigating"}),
        (f"{base}/documents", {"title": "笔录", "sha256": "cd" * 32}),
        (f"{base}/reviews", {"proposal": "x"}),
        (f"{base}/decision", {"summary": "警告", "measures": ["warning"]}),
        (f"{base}/transfers", {"kind": "referral", "to_body": "公安分局", "reason": "x"}),
    ]
    for user, want in (("OFF-SAMR-3", 403), ("admin-SAMR", 403), ("sup", 403), ("OFF-FIRE-1", 404)):
        for url, body in tries:
            r = api.as_(user).post(url, json=body)
            assert r.status_code == want, (user, url, r.status_code, r.text)
    c = api.get(base).json()
    assert c["state"] == "investigating" and c["reviews"] == [] and c["transfers"] == [] and c["decision"] is None
