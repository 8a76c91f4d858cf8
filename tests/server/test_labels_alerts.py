"""Alerts acknowledged and assigned (issue 16 item 4), on both backends: who may, whom to, once only, filters; and the
one place of labels (server/console/labels.py)."""

from __future__ import annotations

import time

from server.console import labels
from server.evidence.records import records_of
from server.rules.alerts import KINDS, raise_alert
from server.storage.engine import storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import PLAIN, Api


def _alerts(url: str) -> None:
    """Three alerts: SAMR's (by agency), FIRE's, and one naming only a SAMR officer; their ids by name."""
    now = int(time.time() * 1000)
    with storage_for(url).writing() as tx:
        raise_alert(tx, "no_disturb_attempt", now, "拦截", "refused", credit_code=PLAIN, agency_id="SAMR", ref="scan-1")
        raise_alert(tx, "low_rating", now, "差评", "low", credit_code=PLAIN, agency_id="FIRE", ref="ins-x")
        raise_alert(tx, "credential_refused", now, "证件", "credential", officer_id="OFF-SAMR-1")


def _ids(api: Api) -> dict[str, int]:
    rows = api.get("/api/v1/alerts").json()
    return {r["kind"]: r["id"] for r in rows}


def test_acknowledge_once_by_whom_may(api: Api, seeded_url: str) -> None:  # noqa: F811
    _alerts(seeded_url)
    ids = _ids(api)
    samr, fire, officer = ids["no_disturb_attempt"], ids["low_rating"], ids["credential_refused"]
    r = api.as_("admin-SAMR").post(f"/api/v1/alerts/{samr}/acknowledge")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledged_by"] == "admin-SAMR" and body["acknowledged_ms"] and body["page"] == f"/alerts/{samr}"
    again = api.post(f"/api/v1/alerts/{samr}/acknowledge")  # a double click, or a second person
    assert again.status_code == 409 and "已由 admin-SAMR 确认" in again.json()["detail"]
    assert api.get(f"/api/v1/alerts/{samr}").json()["acknowledged_by"] == "admin-SAMR"  # kept as it was
    other = api.as_("admin-SAMR").post(f"/api/v1/alerts/{fire}/acknowledge")
    assert other.status_code == 403 and "其他执法机关" in other.json()["detail"]
    assert api.as_("admin-SAMR").get(f"/api/v1/alerts/{fire}").status_code == 403
    assert api.as_("admin-SAMR").post(f"/api/v1/alerts/{officer}/acknowledge").status_code == 200  # its officer's alert is the agency's
    assert api.post("/api/v1/alerts/987654321/acknowledge").status_code == 404
    assert api.post("/api/v1/alerts/0/acknowledge").status_code == 400
    assert api.post("/api/v1/alerts/abc/acknowledge").status_code in (400, 404)
    assert api.as_("OFF-SAMR-1").post(f"/api/v1/alerts/{fire}/acknowledge").status_code == 403  # wrong role
    assert api.client.post(f"/api/v1/alerts/{fire}/acknowledge").status_code == 401
    with storage_for(seeded_url).reading() as tx:
        (rec,) = records_of(tx, f"alert:{samr}")
    assert rec.kind == "alert.acknowledged" and rec.content() == {"actor": "admin-SAMR", "content": {"alert_id": samr, "kind": "no_disturb_attempt"}}


def test_assign_within_the_agency_concerned(api: Api, seeded_url: str) -> None:  # noqa: F811
    _alerts(seeded_url)
    ids = _ids(api)
    samr, fire = ids["no_disturb_attempt"], ids["low_rating"]
    admin = api.as_("admin-SAMR")
    r = admin.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "admin-SAMR"})
    assert r.status_code == 200 and r.json()["assigned_to"] == "admin-SAMR" and r.json()["assigned_by"] == "admin-SAMR"
    # An officer (who sees no alerts), another agency's, upwards, an enterprise, nobody:
    for who in ("OFF-SAMR-1", "OFF-FIRE-1", "sup", "admin-FIRE", "ent-plain", "nobody-at-all"):
        bad = admin.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": who})
        assert bad.status_code == 400, (who, bad.text)
    assert admin.post(f"/api/v1/alerts/{fire}/assign", json={"assignee": "admin-SAMR"}).status_code == 403
    assert api.post(f"/api/v1/alerts/{fire}/assign", json={"assignee": "admin-SAMR"}).status_code == 400  # not FIRE's administrator
    assert api.post(f"/api/v1/alerts/{fire}/assign", json={"assignee": "admin-FIRE"}).status_code == 200
    assert api.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "sup"}).json()["assigned_to"] == "sup"  # reassigned
    assert api.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "sup", "extra": 1}).status_code == 400
    assert api.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "x" * 5000}).status_code == 400
    assert api.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": ""}).status_code == 400
    assert api.post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "sup\u0000"}).status_code == 400  # a NUL PostgreSQL cannot keep
    assert api.post(f"/api/v1/alerts/{samr}/assign", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.get("/api/v1/alerts?kind=" + "k" * 5000).status_code == 400
    assert api.post("/api/v1/alerts/987654321/assign", json={"assignee": "sup"}).status_code == 404
    assert api.as_("OFF-SAMR-1").post(f"/api/v1/alerts/{samr}/assign", json={"assignee": "sup"}).status_code == 403
    with storage_for(seeded_url).reading() as tx:
        assert [r.kind for r in records_of(tx, f"alert:{samr}")] == ["alert.assigned", "alert.assigned"]


def test_alerts_filtered_by_kind_agency_and_handling(api: Api, seeded_url: str) -> None:  # noqa: F811
    _alerts(seeded_url)
    ids = _ids(api)
    api.post(f"/api/v1/alerts/{ids['low_rating']}/acknowledge")
    api.post(f"/api/v1/alerts/{ids['no_disturb_attempt']}/assign", json={"assignee": "sup"})
    kinds = lambda q, who="sup": sorted(r["kind"] for r in api.as_(who).get(f"/api/v1/alerts?{q}").json())  # noqa: E731
    assert kinds("agency_id=FIRE") == ["low_rating"]
    assert kinds("agency_id=SAMR") == ["credential_refused", "no_disturb_attempt"]
    assert kinds("handled=new") == ["credential_refused", "no_disturb_attempt"]
    assert kinds("handled=acknowledged") == ["low_rating"]
    assert kinds("handled=mine") == ["no_disturb_attempt"]
    assert kinds("kind=low_rating&handled=new") == []
    assert kinds("agency_id=FIRE", "admin-SAMR") == []  # another agency's: never shown
    assert api.get("/api/v1/alerts?handled=bogus").status_code == 400


def test_every_alert_kind_and_role_has_both_labels() -> None:
    g = labels.groups()
    assert set(g["alert_kind"]) == set(KINDS)
    for group in ("alert_kind", "role", "device_kind", "inspection_state", "result", "severity", "job_outcome"):
        for key, (zh, en) in g[group].items():
            assert zh and en and zh != key and (en != key or "_" not in key), (group, key)  # "referred" may read as itself
    assert labels.label("role", "supervisor") == "监督人员" and labels.label("role", "supervisor", "en") == "Supervisor"
    assert labels.label("role", "made-up") == "（未知）" and labels.label("nothing", None, "en") == "(unknown)"
    assert labels.localized("没有该预警 / no such alert", "zh") == "没有该预警" and labels.localized("没有该预警 / no such alert", "en") == "no such alert"
    assert labels.localized("only one language", "zh") == "only one language"
    assert labels.division("110108", "zh") == "海淀区" and labels.division("999999", "zh") == "行政区划 999999"
    assert labels.table("en", "severity")["severity"]["critical"] == "Critical"


def test_register_names_come_from_the_registers(seeded_url: str) -> None:
    with storage_for(seeded_url).reading() as tx:
        zh, en = labels.register_names(tx, "zh"), labels.register_names(tx, "en")
    assert zh["agency"]["SAMR"] == "市场监管局" and en["agency"]["SAMR"] == "Market regulation" and zh["field"]["food"] == "食品安全"


def test_two_acknowledgements_at_once_one_wins(seeded_url: str) -> None:
    """Two people press 确认 at the same moment: one acknowledgement, one 409, one record in the evidence log."""
    import threading

    from server.errors import Conflict
    from server.rules.alerts import acknowledge_alert

    _alerts(seeded_url)
    store = storage_for(seeded_url)
    with store.reading() as tx:
        from server.storage.alerts import recent_alerts

        alert_id = int(recent_alerts(tx, agency_id=None, everyone=True, kind="no_disturb_attempt", limit=1)[0][0])
    start, outcomes = threading.Barrier(2), []

    def press(user: str, role: str) -> None:
        start.wait()
        try:
            with store.writing() as tx:
                acknowledge_alert(tx, alert_id, username=user, role=role, agency_id="SAMR" if role == "agency_admin" else None, now_ms=int(time.time() * 1000))
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=press, args=a) for a in (("sup", "supervisor"), ("admin-SAMR", "agency_admin"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "ok"]
    with store.reading() as tx:
        assert len(records_of(tx, f"alert:{alert_id}")) == 1


def test_every_id_of_the_code_has_its_label() -> None:
    """The sets of ids the code knows (roles, device kinds, results, scan outcomes) each have a label: a new one
    without a label fails here, before a page shows （未知）."""
    import typing

    from protocol.messages import InspectionResult
    from server.console.auth import ROLES
    from server.jobs.tasks import JOBS
    from server.rules.registry import ID_PREFIX

    g = labels.groups()
    assert set(ROLES) <= set(g["role"])
    assert set(ID_PREFIX) <= set(g["device_kind"])
    assert set(typing.get_args(InspectionResult)) <= set(g["result"])
    assert {"allowed", "join", "repeat", "refused"} <= set(g["scan_outcome"])
    assert {severity for severity, _, _ in KINDS.values()} <= set(g["severity"])
    from server.console.jobs_api import schedule_words

    for job_id in JOBS:  # every job's schedule reads as words, in both languages
        assert "trigger" not in schedule_words(job_id, "zh") and "{" not in schedule_words(job_id, "en")


def test_the_cases_alert_kinds_are_in_the_one_table() -> None:
    """Cases' alert kinds live in server/rules/alerts.py's KINDS (with severities and labels), not patched in at import
    time: importing the cases' labels leaves the table as it was."""
    import importlib

    from server.rules import alerts

    cases_kinds = {"major_without_review": "warning", "review_disagreement": "warning", "case_transfer": "info", "review_overdue": "warning"}
    before = dict(alerts.KINDS)
    assert {k: alerts.KINDS[k][0] for k in cases_kinds} == cases_kinds == {k: alerts.SEVERITY[k] for k in cases_kinds}
    assert all(alerts.LABELS[k] == alerts.KINDS[k][1:] == (labels.label("alert_kind", k, "zh"), labels.label("alert_kind", k, "en")) for k in cases_kinds)
    importlib.reload(importlib.import_module("server.cases.labels"))
    assert alerts.KINDS == before and not hasattr(importlib.import_module("server.cases.labels"), "ALERT_KINDS")


def test_a_case_review_and_an_exception_review_keep_their_own_words() -> None:
    """A legal review (法制审核) awaiting its reviewer and an exception awaiting the supervisors' review are different
    things: each group keeps its own words whichever module registered last."""
    import server.cases.labels  # noqa: F401
    import server.console.badge_api  # noqa: F401

    assert labels.label("case_review_status", "pending", "zh") == "待审核"
    assert labels.label("review_status", "pending", "zh") == "待监督机构复核"
    assert labels.label("case_review_status", "escalated", "en") == "disagreement, with the agency head"
