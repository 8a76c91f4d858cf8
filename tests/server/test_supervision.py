"""Supervision over HTTP on both backends: a finding opened, an opinion letter issued, the agency's report, the
verdict, a missed deadline and a decision letter; each role's reach; every step in the evidence log."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from server.evidence.verify import verify
from protocol.cst import cst_date
from server.rules.workdays import add_working_days
from server.storage.engine import sql, storage_for
from server.supervision.workflow import check_deadlines
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import PLAIN, Api

SUP = "/api/v1/supervision"
_ALERT = sql("INSERT INTO alerts(created_ms, kind, severity, agency_id, credit_code, ref, message_zh, message_en) VALUES (1, 'repeat_inspection', 'info', :agency, :code, 'x', '重复检查', 'repeat') RETURNING id")
_RECORDS = sql("SELECT count(*) FROM records")
_ALERTS_OF = sql("SELECT kind FROM alerts WHERE agency_id = :agency AND kind LIKE 'letter_%' ORDER BY id")

LETTER = {"issuer": "某市司法局", "facts": "该局 11 月 3 日对同一企业重复检查。", "basis": "《北京市行政执法监督办法》第二十条", "requirements": "查明原因并整改。", "deadline_days": 10}


def finding(api: Api, **over: Any) -> dict[str, Any]:
    r = api.post(f"{SUP}/findings", json={"agency_id": "SAMR", "reason": "重复检查未说明理由", "credit_code": PLAIN, **over})
    assert r.status_code == 201, r.text
    return r.json()


def letter(api: Api, finding_id: str, **over: Any) -> dict[str, Any]:
    r = api.post(f"{SUP}/findings/{finding_id}/letters", json={**LETTER, **over})
    assert r.status_code == 201, r.text
    return r.json()


def test_the_whole_path_from_a_finding_to_an_accepted_report(api: Api, seeded_url: str) -> None:
    f = finding(api)
    assert f["finding_id"] == f"F-{cst_date(int(time.time() * 1000)).year}-0001" and f["status"] == "open"
    assert [s["kind"] for s in f["steps"]] == ["finding.opened"] and f["steps"][0]["actor"] == "sup" and f["steps"][0]["log_index"] is not None
    first = letter(api, f["finding_id"])
    year = cst_date(int(time.time() * 1000)).year
    assert (first["number"], first["title"], first["status"]) == (f"〔{year}〕第1号", "行政执法监督意见书", "issued")
    assert first["deadline"] == add_working_days(dt.date.fromisoformat(first["issued_on"]), 10)[0].isoformat()
    admin = api.as_("admin-SAMR")
    assert [x["letter_id"] for x in admin.get(f"{SUP}/letters").json()] == [first["letter_id"]]
    r = admin.post(f"{SUP}/letters/{first['letter_id']}/reply", json={"text": "已约谈执法人员，建立检查前查询制度。"})
    assert r.status_code == 200 and r.json()["status"] == "replied", r.text
    assert admin.post(f"{SUP}/letters/{first['letter_id']}/reply", json={"text": "again"}).status_code == 409  # a double click
    r = api.post(f"{SUP}/letters/{first['letter_id']}/return", json={"note": ""})
    assert r.status_code == 400 and "理由" in r.text
    assert api.post(f"{SUP}/letters/{first['letter_id']}/return", json={"note": "未说明制度内容"}).json()["status"] == "returned"
    admin.post(f"{SUP}/letters/{first['letter_id']}/reply", json={"text": "附制度全文。"})
    done = api.post(f"{SUP}/letters/{first['letter_id']}/accept", json={}).json()
    assert done["status"] == "accepted" and done["status_zh"] == "整改已认可"
    assert [s["kind"] for s in done["steps"]] == ["letter.issued", "letter.replied", "letter.returned", "letter.replied", "letter.accepted"]
    assert [s["actor"] for s in done["steps"]] == ["sup", "admin-SAMR", "sup", "admin-SAMR", "sup"]
    closed = api.post(f"{SUP}/findings/{f['finding_id']}/close", json={"note": "整改到位"}).json()
    assert closed["status"] == "closed" and [s["kind"] for s in closed["steps"]] == ["finding.opened", "finding.closed"]
    assert [x["status"] for x in closed["letters"]] == ["accepted"]
    with storage_for(seeded_url).reading() as tx:
        assert tx.scalar(_RECORDS) == 7 and [k for (k,) in tx.all(_ALERTS_OF, agency="SAMR")] == ["letter_issued", "letter_replied", "letter_returned", "letter_replied"]
        report = verify(tx, "00" * 32)
    assert report.records == 7 and not report.problems


def test_a_missed_deadline_is_marked_once_and_leads_to_a_decision_letter(api: Api, seeded_url: str) -> None:
    f = finding(api)
    first = letter(api, f["finding_id"], deadline_days=3)
    assert api.post(f"{SUP}/findings/{f['finding_id']}/letters", json={**LETTER, "kind": "decision"}).status_code == 409  # not yet overdue
    assert api.post(f"{SUP}/findings/{f['finding_id']}/letters", json=LETTER).status_code == 409  # one open opinion letter at a time
    day_after = dt.datetime.combine(dt.date.fromisoformat(first["deadline"]) + dt.timedelta(days=1), dt.time(9), dt.timezone(dt.timedelta(hours=8)))
    later = int(day_after.timestamp() * 1000)
    on_deadline = int((day_after - dt.timedelta(days=1)).timestamp() * 1000)
    assert storage_for(seeded_url).write(lambda tx: check_deadlines(tx, on_deadline)) == {"overdue": 0}  # the deadline day itself is in time
    assert storage_for(seeded_url).write(lambda tx: check_deadlines(tx, later)) == {"overdue": 1}
    assert storage_for(seeded_url).write(lambda tx: check_deadlines(tx, later)) == {"overdue": 0}  # once
    overdue = api.get(f"{SUP}/letters/{first['letter_id']}").json()
    assert overdue["status"] == "overdue" and overdue["steps"][-1]["kind"] == "letter.overdue" and overdue["steps"][-1]["actor"] == "system"
    decision = letter(api, f["finding_id"], kind="decision")
    assert (decision["title"], decision["number"]) == ("行政执法监督决定书", overdue["number"])  # numbered in its own series
    assert api.post(f"{SUP}/findings/{f['finding_id']}/letters", json={**LETTER, "kind": "decision"}).status_code == 409
    assert api.post(f"{SUP}/findings/{f['finding_id']}/close", json={}).status_code == 409  # the decision awaits a report
    late = api.as_("admin-SAMR").post(f"{SUP}/letters/{first['letter_id']}/reply", json={"text": "迟报"}).json()
    assert late["status"] == "replied" and late["steps"][-1]["content"]["late"] is True


def test_each_role_reaches_only_its_own(api: Api) -> None:
    f = finding(api)
    own = letter(api, f["finding_id"])
    other = finding(api, agency_id="FIRE")
    fire = api.as_("admin-FIRE")
    assert [x["finding_id"] for x in fire.get(f"{SUP}/findings").json()] == [other["finding_id"]]
    assert fire.get(f"{SUP}/letters").json() == []
    for r in (
        fire.get(f"{SUP}/findings/{f['finding_id']}"), fire.get(f"{SUP}/letters/{own['letter_id']}"),
        fire.post(f"{SUP}/letters/{own['letter_id']}/reply", json={"text": "冒充"}),
    ):
        assert r.status_code == 404, r.text  # another agency's: not found, its existence not leaked
    samr = api.as_("admin-SAMR")
    for r in (
        samr.post(f"{SUP}/findings", json={"agency_id": "SAMR", "reason": "自查"}),
        samr.post(f"{SUP}/findings/{f['finding_id']}/letters", json=LETTER),
        samr.post(f"{SUP}/letters/{own['letter_id']}/accept", json={}),
        samr.post(f"{SUP}/findings/{f['finding_id']}/close", json={}),
        api.post(f"{SUP}/letters/{own['letter_id']}/reply", json={"text": "监督人员代报"}),
    ):
        assert r.status_code == 403, r.text
    for user in ("OFF-SAMR-1", "ent-plain"):
        assert api.as_(user).get(f"{SUP}/findings").status_code == 403
        assert api.as_(user).get(f"{SUP}/letters/{own['letter_id']}").status_code == 403
    assert api.client.get(f"{SUP}/findings").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"agency_id": "NOPE", "reason": "r"}, 404, "NOPE"),
        ({"agency_id": "SAMR", "reason": "r", "credit_code": "91110000000000000X"}, 404, "91110000000000000X"),
        ({"agency_id": "SAMR", "reason": "r", "source": "alert"}, 400, "source_ref"),
        ({"agency_id": "SAMR", "reason": "r", "source": "alert", "source_ref": "999999"}, 404, "999999"),
        ({"agency_id": "SAMR", "reason": "r", "source": "alert", "source_ref": "1 OR 1=1"}, 400, "source_ref"),
        ({"agency_id": "SAMR", "reason": "r", "refs": ["made-up-inspection"]}, 400, "made-up-inspection"),
        ({"agency_id": "SAMR", "reason": "r", "refs": ["x"] * 51}, 400, "refs"),
        ({"agency_id": "SAMR", "reason": ""}, 400, "reason"),
        ({"agency_id": "SAMR", "reason": "x" * 4001}, 400, "reason"),
        ({"agency_id": "SAMR", "reason": "r", "source": "rumour"}, 400, "source"),
        ({"agency_id": "SAMR", "reason": "r", "status": "closed"}, 400, "status"),
    ],
)
def test_a_bad_finding_is_refused_saying_what_was_wrong(api: Api, body: dict[str, Any], status: int, needle: str) -> None:
    r = api.post(f"{SUP}/findings", json=body)
    assert r.status_code == status and needle in r.text, r.text
    assert api.get(f"{SUP}/findings").json() == []


def test_an_alert_opens_one_finding_and_only_for_its_own_agency(api: Api, seeded_url: str) -> None:
    alert_id = storage_for(seeded_url).write(lambda tx: tx.scalar(_ALERT, agency="SAMR", code=PLAIN))
    assert api.post(f"{SUP}/findings", json={"agency_id": "FIRE", "reason": "r", "source": "alert", "source_ref": str(alert_id)}).status_code == 400
    made = finding(api, source="alert", source_ref=str(alert_id))
    again = api.post(f"{SUP}/findings", json={"agency_id": "SAMR", "reason": "r", "source": "alert", "source_ref": str(alert_id)})
    assert again.status_code == 409 and made["finding_id"] in again.text


@pytest.mark.parametrize(
    ("over", "needle"),
    [({"deadline_days": 0}, "deadline_days"), ({"deadline_days": 61}, "deadline_days"), ({"issuer": ""}, "issuer"), ({"kind": "order"}, "kind"), ({"facts": None}, "facts")],
)
def test_a_bad_letter_is_refused_and_nothing_is_numbered(api: Api, over: dict[str, Any], needle: str) -> None:
    f = finding(api)
    r = api.post(f"{SUP}/findings/{f['finding_id']}/letters", json={**LETTER, **over})
    assert r.status_code == 400 and needle in r.text, r.text
    assert letter(api, f["finding_id"])["number"].endswith("第1号")


def test_letters_are_numbered_per_issuer_and_made_up_ids_are_not_found(api: Api) -> None:
    numbers = []
    for issuer in ("某市司法局", "某市司法局", "某区司法局"):
        f = finding(api)
        numbers.append((issuer, letter(api, f["finding_id"], issuer=issuer)["number"].split("〕")[1]))
    assert [n for _, n in numbers] == ["第1号", "第2号", "第1号"]
    for path in ("findings/F-2026-9999", "letters/L2026-000000000000", "findings/..%2f..", "letters/%00"):
        assert api.get(f"{SUP}/{path}").status_code in (400, 404)
    assert api.post(f"{SUP}/findings/F-2026-9999/letters", json=LETTER).status_code == 404
    assert api.post(f"{SUP}/letters/{'x' * 40}/accept", json={}).status_code in (400, 404)


def test_the_page_speaks_in_words_to_each_role(api: Api) -> None:
    f = finding(api)
    first = letter(api, f["finding_id"])
    page = api.get("/supervision").text
    assert "监督文书" in page and first["number"] in page and "行政执法监督意见书" in page and "已送达，待整改" in page
    assert "市场监管局" in page and "海淀某餐饮公司" in page and "监督人员发现" in page  # names and labels, not ids
    assert 'data-act="opinion"' not in page  # an opinion letter already awaits the agency
    en = api.get("/supervision?lang=en").text
    assert "Supervision opinion letter" in en and "issued, awaiting the report" in en and "found by a supervisor" in en
    samr = api.as_("admin-SAMR").get("/supervision").text
    assert first["number"] in samr and 'data-act="reply"' in samr and "新建监督事项" not in samr
    assert first["number"] not in api.as_("admin-FIRE").get("/supervision").text
    officer = api.as_("OFF-SAMR-1").get("/supervision", follow_redirects=False)
    assert officer.status_code in (302, 303) and officer.headers["location"].startswith("/officer")
    anonymous = api.client.get("/supervision", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and anonymous.headers["location"].startswith("/login")


def test_an_outside_supervisor_reads_what_is_assigned_and_only_remarks(api: Api, seeded_url: str) -> None:
    from server.console.auth import add_user
    from tests.server.conftest import password, password_hash

    storage_for(seeded_url).write(lambda tx: add_user(tx, "lawyer-1", password("lawyer-1"), "monitor", password_hash=password_hash("lawyer-1")))
    f = finding(api)
    own = letter(api, f["finding_id"])
    other = finding(api, agency_id="FIRE")
    lawyer = api.as_("lawyer-1")
    assert lawyer.get(f"{SUP}/findings").json() == [] and lawyer.get(f"{SUP}/findings/{f['finding_id']}").status_code == 404
    assert api.post(f"{SUP}/findings/{f['finding_id']}/monitors", json={"username": "admin-SAMR"}).status_code == 400  # not a monitor
    assert api.post(f"{SUP}/findings/{f['finding_id']}/monitors", json={"username": "nobody"}).status_code == 400
    assigned = api.post(f"{SUP}/findings/{f['finding_id']}/monitors", json={"username": "lawyer-1"})
    assert assigned.status_code == 200 and assigned.json()["monitors"] == ["lawyer-1"], assigned.text
    assert api.post(f"{SUP}/findings/{f['finding_id']}/monitors", json={"username": "lawyer-1"}).status_code == 409
    assert [x["finding_id"] for x in lawyer.get(f"{SUP}/findings").json()] == [f["finding_id"]]
    assert [x["letter_id"] for x in lawyer.get(f"{SUP}/letters").json()] == [own["letter_id"]]
    assert lawyer.get(f"{SUP}/letters/{own['letter_id']}").status_code == 200
    assert lawyer.get(f"{SUP}/letters/{own['letter_id']}/pdf").status_code == 200
    assert lawyer.get(f"{SUP}/findings/{other['finding_id']}").status_code == 404
    r = lawyer.post(f"{SUP}/findings/{f['finding_id']}/remarks", json={"text": "建议同时核查该局其他检查记录。"})
    assert r.status_code == 200 and r.json()["steps"][-1]["kind"] == "finding.remark" and r.json()["steps"][-1]["actor"] == "lawyer-1"
    assert lawyer.post(f"{SUP}/findings/{other['finding_id']}/remarks", json={"text": "越权"}).status_code == 404
    for r in (
        lawyer.post(f"{SUP}/findings", json={"agency_id": "SAMR", "reason": "r"}),
        lawyer.post(f"{SUP}/findings/{f['finding_id']}/letters", json=LETTER),
        lawyer.post(f"{SUP}/letters/{own['letter_id']}/reply", json={"text": "x"}),
        lawyer.post(f"{SUP}/letters/{own['letter_id']}/accept", json={}),
        lawyer.post(f"{SUP}/findings/{f['finding_id']}/close", json={}),
        lawyer.post(f"{SUP}/findings/{f['finding_id']}/monitors", json={"username": "lawyer-1"}),
        api.post(f"{SUP}/findings/{f['finding_id']}/remarks", json={"text": "监督人员不能以监督员身份留言"}),
        lawyer.get("/api/v1/alerts"),
    ):
        assert r.status_code == 403, r.text
    page = lawyer.get("/supervision").text
    assert "指派给您的监督事项" in page and 'data-act="remark"' in page and 'data-act="opinion"' not in page and "新建监督事项" not in page


def test_a_failed_case_file_review_opens_a_finding_and_refs_carry_their_log_index(api: Api, seeded_url: str) -> None:
    from server.evidence.records import append_record

    decision = api.post("/api/v1/decisions", json={"decision_id": "D-1", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-11-02"})
    assert decision.status_code == 201, decision.text
    with storage_for(seeded_url).writing() as tx:
        tx.run(sql("INSERT INTO samples(sample_id, agency_id, period, seed, drawn_ms, population) VALUES ('S-1', 'SAMR', '2026-11', 'seed', 1, 1)"))
        tx.run(sql("INSERT INTO sample_items(sample_id, decision_id, result) VALUES ('S-1', 'D-1', 'fail')"))
        rec, index = append_record(tx, kind="finding.evidence", subject="test:1", actor="sup", content={}, now_ms=1)
    body = {"agency_id": "SAMR", "reason": "案卷评查未通过", "source": "case_review"}
    for ref, needle in (("S-1", "sample id"), ("S-1/D-2", "sample id"), ("S-9/D-1", "sample id")):
        r = api.post(f"{SUP}/findings", json={**body, "source_ref": ref})
        assert r.status_code == 400 and needle in r.text, r.text
    assert api.post(f"{SUP}/findings", json={**body, "agency_id": "FIRE", "source_ref": "S-1/D-1"}).status_code == 400  # another agency's decision
    page = api.get("/supervision").text
    assert 'data-act="from-review"' in page and 'data-id="S-1/D-1"' in page  # one click from the page
    made = api.post(f"{SUP}/findings", json={**body, "source_ref": "S-1/D-1", "refs": [rec.record_id]}).json()
    assert made["source"] == "case_review" and made["refs_in_log"] == {rec.record_id: index}
    again = api.post(f"{SUP}/findings", json={**body, "source_ref": "S-1/D-1"})
    assert again.status_code == 409 and made["finding_id"] in again.text
    page = api.get("/supervision").text
    assert 'data-act="from-review"' not in page and made["finding_id"] in page


def test_the_page_lists_flagged_hotline_tickets_and_opens_a_finding_from_one(api: Api, seeded_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from server.imports.run import import_csv

    received = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) - dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M")
    f = tmp_path / "tickets.csv"
    f.write_text(f"ticket_id,time,credit_code,address,category,text\n12345-T-1,{received},{PLAIN},,fire,反映消防通道被占用\n", encoding="utf-8")
    assert import_csv(seeded_url, "hotline", f, progress=False).ok
    page = api.get("/supervision").text
    assert "12345-T-1" in page and "反映消防通道被占用" in page and 'data-act="from-flag"' in page and "海淀某餐饮公司" in page
    r = api.post(f"{SUP}/hotline-flags/12345-T-1/finding", json={})
    assert r.status_code == 201 and r.json()["source"] == "hotline", r.text
    page = api.get("/supervision").text
    assert 'data-act="from-flag"' not in page and r.json()["finding_id"] in page
    fire = api.as_("admin-FIRE").get("/supervision").text
    assert "12345-T-1" in fire and 'data-act="from-flag"' not in fire and "12345-T-1" not in api.as_("admin-SAMR").get("/supervision").text


PDF = b"%PDF-1.4\n% a rectification report\n"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 32


def _file(name: str, kind: str, data: bytes) -> dict[str, str]:
    import base64

    return {"filename": name, "content_type": kind, "data_base64": base64.b64encode(data).decode()}


def test_a_report_carries_its_files_whose_hashes_are_in_the_evidence_log(api: Api) -> None:
    import hashlib

    f = finding(api)
    first = letter(api, f["finding_id"])
    admin = api.as_("admin-SAMR")
    body = {"text": "整改报告及现场照片见附件。", "attachments": [_file("整改报告.pdf", "application/pdf", PDF), _file("photo.png", "image/png", PNG)]}
    r = admin.post(f"{SUP}/letters/{first['letter_id']}/reply", json=body)
    assert r.status_code == 200, r.text
    files = r.json()["attachments"]
    assert [(x["filename"], x["size"], x["sha256"]) for x in files] == [("整改报告.pdf", len(PDF), hashlib.sha256(PDF).hexdigest()), ("photo.png", len(PNG), hashlib.sha256(PNG).hexdigest())]
    step = r.json()["steps"][-1]
    assert step["kind"] == "letter.replied" and [a["sha256"] for a in step["content"]["attachments"]] == [x["sha256"] for x in files]
    got = api.get(f"{SUP}/letters/{first['letter_id']}/attachments/{files[0]['attachment_id']}")
    assert got.status_code == 200 and got.content == PDF and got.headers["content-type"].startswith("application/pdf") and "filename*=UTF-8''" in got.headers["content-disposition"]
    assert api.as_("admin-FIRE").get(f"{SUP}/letters/{first['letter_id']}/attachments/{files[0]['attachment_id']}").status_code == 404
    assert api.as_("OFF-SAMR-1").get(f"{SUP}/letters/{first['letter_id']}/attachments/{files[0]['attachment_id']}").status_code == 403
    assert api.get(f"{SUP}/letters/{first['letter_id']}/attachments/A-made-up").status_code == 404


@pytest.mark.parametrize(
    ("attachments", "needle"),
    [
        ([_file("x.pdf", "application/pdf", b"MZ\x90\x00 not a pdf")], "is not the application/pdf"),
        ([{"filename": "x.pdf", "content_type": "application/pdf", "data_base64": "%%%"}], "base64"),
        ([_file("x.exe", "application/x-msdownload", b"MZ")], "content_type"),
        ([_file("e.pdf", "application/pdf", b"")], "is not the application/pdf"),
        ([_file(f"{n}.pdf", "application/pdf", PDF) for n in range(6)], "attachments"),
    ],
)
def test_a_bad_attachment_refuses_the_whole_report(api: Api, attachments: list[dict[str, str]], needle: str) -> None:
    f = finding(api)
    first = letter(api, f["finding_id"])
    r = api.as_("admin-SAMR").post(f"{SUP}/letters/{first['letter_id']}/reply", json={"text": "报告", "attachments": attachments})
    assert r.status_code == 400 and needle in r.text, r.text
    assert api.get(f"{SUP}/letters/{first['letter_id']}").json()["status"] == "issued"  # nothing half-stored


def test_a_complaint_about_an_officer_opens_a_finding_about_their_agency(api: Api) -> None:
    made = finding(api, source="complaint", source_ref="投诉-2026-001", officer_id="OFF-SAMR-1", reason="执法人员检查时态度粗暴")
    assert made["officer_id"] == "OFF-SAMR-1"
    r = api.post(f"{SUP}/findings", json={"agency_id": "FIRE", "reason": "r", "source": "complaint", "officer_id": "OFF-SAMR-1"})
    assert r.status_code == 400 and "another agency" in r.text
    assert api.post(f"{SUP}/findings", json={"agency_id": "SAMR", "reason": "r", "officer_id": "OFF-NOBODY"}).status_code == 404
