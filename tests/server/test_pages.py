"""The jobs' status page and a draw's public page (Jinja, Chinese first, ``?lang=en``), and the role guards'
answers: 401 without a session, 403 naming the roles a route needs, before the body is read."""

from __future__ import annotations

import time
from pathlib import Path

from server import db as dbmod
from server.storage.engine import sql
from server.jobs.draws import perform_due_draws
from server.console.limits import MIB
from tests.server.conftest import Api

HTML = "text/html"


def test_the_jobs_page_is_for_supervisors_in_chinese_then_english(api: Api) -> None:
    assert api.client.get("/jobs").status_code == 401
    refused = api.as_("admin-SAMR").get("/jobs")
    assert refused.status_code == 403 and refused.json()["detail"].startswith("角色 agency_admin 无权执行此操作")
    zh = api.get("/jobs")
    assert zh.status_code == 200 and zh.headers["content-type"].startswith(HTML)
    assert '<html lang="zh-CN">' in zh.text and "定时任务" in zh.text and "证据日志每日签名树头" in zh.text and "下次运行" in zh.text
    en = api.get("/jobs?lang=en")
    assert '<html lang="en">' in en.text and "Scheduled jobs" in en.text and "Next run" in en.text


def test_a_draws_public_page_before_and_after_the_draw(api: Api, seeded_db: Path) -> None:
    at = int(time.time() * 1000) + 60_000
    made = api.post("/api/v1/draws", json={"agency_id": "SAMR", "field": "food", "title": "<b>食品</b>抽查", "enterprises": 1, "draw_at_ms": at})
    assert made.status_code == 201, made.text
    draw_id, page = made.json()["draw_id"], made.json()["public_page"]
    before = api.client.get(page)  # public: no session
    assert before.status_code == 200 and before.headers["content-type"].startswith(HTML)
    assert "双随机抽查结果公示" in before.text and made.json()["seed_hash"] in before.text and "将于" in before.text
    assert "&lt;b&gt;食品&lt;/b&gt;抽查" in before.text and "<b>食品" not in before.text  # escaped by Jinja
    assert api.client.get(f"/api/v1/draws/{draw_id}").json()["seed"] is None  # secret until drawn
    with dbmod.writing(seeded_db) as tx:
        assert perform_due_draws(tx, api.client.app.state.policy, at) == [draw_id]
    view = api.client.get(f"/api/v1/draws/{draw_id}").json()
    assert view["status"] == "drawn" and view["seed"] and len(view["result"]["teams"]) == 1
    after = api.client.get(f"{page}?lang=en")
    team = view["result"]["teams"][0]
    assert "Random inspection draw" in after.text and view["seed"] in after.text and team["credit_code"] in after.text
    assert "Eligible enterprises" in after.text
    with dbmod.writing(seeded_db) as tx:  # the officers drawn by name, never by id
        tx.run(sql("UPDATE officers SET name = '王五' WHERE officer_id = 'OFF-SAMR-1'"))
        tx.run(sql("UPDATE officers SET name = '赵六' WHERE officer_id = 'OFF-SAMR-2'"))
    again = api.client.get(f"{page}?lang=zh").text
    assert "王五" in again and "赵六" in again and not [o for o in team["officers"] if o in again]
    assert api.client.get("/public/draws/nope").status_code == 404


def test_a_role_guard_answers_as_the_handlers_did(api: Api) -> None:
    r = api.as_("admin-SAMR").get("/api/v1/events")
    assert r.status_code == 403
    assert r.json() == {"status_code": 403, "detail": "角色 agency_admin 无权执行此操作 / role agency_admin may not do this (needs supervisor)", "extra": None}
    r = api.as_("OFF-SAMR-1").get("/api/v1/alerts")
    assert r.json()["detail"].endswith("(needs supervisor or agency_admin)")
    r = api.client.get("/api/v1/overview")
    assert r.status_code == 401 and r.json()["detail"] == "请先登录 / sign in first"


def test_a_role_guard_refuses_before_the_body_is_read(api: Api) -> None:
    body = b'{"reason": "' + b"x" * int(1.1 * MIB) + b'"}'
    r = api.as_("OFF-SAMR-1").post("/api/v1/enterprises/x/qr/revoke", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 403  # not 413: an officer may not revoke, whatever the body


def test_the_dashboards_answers_keep_their_keys(api: Api) -> None:
    """The keys server/console/static/dashboard.js reads (the answers are Structs now, the JSON as before)."""
    live = api.as_("admin-SAMR").get("/api/v1/live").json()
    assert set(live) == {"now_ms", "under_way", "alerts", "fleet", "today"}
    assert {"inspections", "joint_rate", "blocked_attempts", "recording_coverage_rate", "participation_rate", "refusals_by_code"} <= set(live["today"])
    trend = api.get("/api/v1/trend?days=2").json()
    assert trend and set(trend[0]) == {"day", "inspections", "joint_inspections", "scans", "refused", "repeat_answers"}
    assert api.client.get("/ping").json() == {"ok": True}


# --- issue 16: labels, the dashboard's period, drill-down and districts, an alert's page, the nav -------------------

import re  # noqa: E402

from server.console import labels  # noqa: E402
from server.rules.alerts import raise_alert  # noqa: E402
from tests.server.conftest import PLAIN  # noqa: E402

#: Tokens that are ids a person must never read on a Chinese page.
ID_TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")


def raw_ids() -> set[str]:
    """The ids of every registered group and of the seeded registers (tests/server/conftest.py's seed)."""
    ids = {k for g in labels.groups().values() for k in g if k}
    return ids | {"SAMR", "FIRE", "food", "fire"}


def visible_text(html: str) -> str:
    """The text of a page a person reads: no scripts' data, no tags, no attribute values."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    html = re.sub(r"<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def assert_no_raw_ids(html: str) -> None:
    found = set(ID_TOKEN.findall(visible_text(html))) & raw_ids()
    assert not found, found


def test_jobs_page_says_schedules_and_outcomes_in_words(api: Api) -> None:
    zh = api.get("/jobs").text
    assert "每天 00:10" in zh and "每月 1 日 02:00" in zh and "每分钟" in zh and "尚未运行。" in zh and 'id="back"' in zh
    assert '"trigger"' not in zh and "cron" not in zh
    assert_no_raw_ids(zh)
    en = api.get("/jobs?lang=en").text
    assert "Every day at 00:10" in en and "Not run yet." in en and "Back to the dashboard" in en


def test_the_header_names_the_role_and_offers_cases_to_those_who_work_on_them(api: Api) -> None:
    """Cases for those who work on them, and for the enterprise: the party concerned sees its own (issue 15 item 4)."""
    for user, role_zh, cases in (("sup", "监督人员", True), ("admin-SAMR", "机关管理员", True), ("OFF-SAMR-1", "执法人员", True), ("ent-plain", "企业", True)):
        page = {"sup": "/", "admin-SAMR": "/", "OFF-SAMR-1": "/enterprise", "ent-plain": "/enterprise"}[user]
        html = api.as_(user).get(page).text
        assert f"{user} · {role_zh}" in html, user
        assert ('id="cases-link"' in html) is cases, user
    assert "supervisor" not in visible_text(api.get("/").text)


def test_the_dashboard_and_an_alerts_page_show_labels_not_ids(api: Api, seeded_db: Path) -> None:
    with dbmod.writing(seeded_db) as tx:
        raise_alert(tx, "no_disturb_attempt", int(time.time() * 1000), "拦截一次", "refused once", credit_code=PLAIN, agency_id="SAMR", officer_id="OFF-SAMR-1")
    html = api.get("/").text
    assert "市场监管局" in html and "无事不扰拦截" in html and "近 7 天" in html and "按月" in html
    assert_no_raw_ids(html)
    (alert,) = api.get("/api/v1/alerts").json()
    page = api.get(alert["page"])
    assert page.status_code == 200 and "无事不扰拦截" in page.text and "市场监管局" in page.text and "海淀某餐饮公司" in page.text
    assert_no_raw_ids(page.text)
    other = api.as_("admin-FIRE").get(alert["page"])
    assert other.status_code == 403 and "这条预警属于其他执法机关" in other.text and "another agency" not in other.text  # a page, in Chinese
    missing = api.get("/alerts/99999999?lang=en")
    assert missing.status_code == 404 and "no alert 99999999" in missing.text and "<html" in missing.text
    assert api.as_("OFF-SAMR-1").get(alert["page"], follow_redirects=False).status_code in (302, 303, 307)
    en = api.get(alert["page"] + "?lang=en").text
    assert "No-disturb attempt refused" in en and "Market regulation" in en


def test_the_dashboards_period_drill_down_and_districts(api: Api) -> None:
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    assert api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"code_text": text, "field": "food"}).json()["outcome"] == "allowed"
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    q = f"from_day={day}&to_day={day}"
    assert api.get(f"/api/v1/stats/summary?{q}").json()["inspections"] == 1
    assert api.get(f"/api/v1/stats/by-enterprise?{q}&agency_id=SAMR&field=food").json() == [{"credit_code": PLAIN, "name": "海淀某餐饮公司", "inspections": 1}]
    assert api.get(f"/api/v1/stats/by-division?{q}").json() == [{"division": "110108", "name": "海淀区", "inspections": 1, "enterprises": 1}]
    assert api.get(f"/api/v1/stats/by-division?{q}&lang=en").json()[0]["name"] == "Haidian"
    assert api.as_("admin-FIRE").get(f"/api/v1/stats/by-enterprise?{q}&agency_id=SAMR").status_code == 403
    assert api.as_("admin-FIRE").get(f"/api/v1/stats/by-division?{q}").json() == []
    assert api.as_("admin-SAMR").get(f"/api/v1/stats/by-enterprise?{q}").json()[0]["inspections"] == 1
    for bad in (f"from_day={day}", f"from_day={day}&to_day=2000-01-01", "from_day=1990-01-01&to_day=1990-01-02", "from_day=2020-01-01&to_day=2022-01-01", "from_day=x&to_day=y"):
        r = api.get(f"/api/v1/stats/summary?{bad}")
        assert r.status_code == 400, (bad, r.text)
    assert api.get(f"/api/v1/trend?{q}").json()[0]["inspections"] == 1
    table = api.get(f"/api/v1/stats.csv?{q}").text
    assert table.count("\n") == 2 and table.startswith("\ufeff机关代码,执法机关,领域代码,执法领域,检查次数,参与人次") and "市场监管局,food,食品安全,1,1" in table
    assert api.get(f"/api/v1/stats.csv?{q}&lang=en").text.startswith("\ufeffAgency code,Agency,Field code,Field,Inspections,Officer parts")
    assert api.as_("OFF-SAMR-1").get(f"/api/v1/stats/summary?{q}").status_code == 403


def test_a_draws_page_names_the_agency_and_field(api: Api) -> None:
    made = api.post("/api/v1/draws", json={"agency_id": "SAMR", "field": "food", "title": "食品抽查", "enterprises": 1, "draw_at_ms": int(time.time() * 1000) + 60_000})
    html = api.client.get(made.json()["public_page"]).text
    assert "市场监管局" in html and "食品安全" in html
    assert_no_raw_ids(html)


def test_a_jobs_outcome_reads_as_a_sentence() -> None:
    from server.console.jobs_api import outcome_words

    assert outcome_words("ok", '{"offline_alerts": 2, "backlog_alerts": 0}', "zh") == "已完成：2 台设备离线预警，0 台设备积压预警。"
    assert outcome_words("ok", '{"drawn": ["D-1"]}', "en") == "Done: 1 draw(s) performed."
    assert outcome_words("error", "OperationalError: disk full", "zh").startswith("失败：OperationalError: disk full")
    assert outcome_words("ok", "not json", "zh") == "已完成。"


def test_the_supervision_page_labels_every_state_and_source(api: Api) -> None:
    """A finding's state and source, a letter's kind and state are words from labels.py in both languages ('open' is
    an id: the English page says 'in progress')."""
    made = api.post("/api/v1/supervision/findings", json={"agency_id": "SAMR", "reason": "重复检查未说明理由", "credit_code": PLAIN})
    assert made.status_code == 201, made.text
    states = re.compile(r'<td class="state [a-z]*">([^<]*)</td>')
    en = api.get("/supervision?lang=en").text
    assert states.findall(en) == ["in progress"] and "found by a supervisor" in en
    zh = api.get("/supervision").text
    assert states.findall(zh) == ["办理中"] and "监督人员发现" in zh
    assert labels.label("finding_status", "open", "en") == "in progress" and labels.label("letter_status", "overdue", "zh") != labels.UNKNOWN[0]


def test_a_cases_alert_opens_its_case(api: Api, seeded_db: Path) -> None:
    """An alert about a case (a major decision without review, a disagreement, a transfer) links to the case's page;
    an overdue review to the cases page (its reviews to do)."""
    now = int(time.time() * 1000)
    with dbmod.writing(seeded_db) as tx:
        raise_alert(tx, "major_without_review", now, "未经审核", "no review", agency_id="SAMR", ref="CASE-2026-00007")
        raise_alert(tx, "review_overdue", now, "审核逾期", "review overdue", agency_id="SAMR", ref="REV-1")
    ids = {r["kind"]: r["id"] for r in api.get("/api/v1/alerts").json()}
    page = api.get(f"/alerts/{ids['major_without_review']}").text
    assert 'href="/cases?case=CASE-2026-00007&amp;lang=zh"' in page and "所涉案件" in page and "重大执法决定未经法制审核" in page
    page = api.get(f"/alerts/{ids['review_overdue']}?lang=en").text
    assert 'href="/cases?lang=en"' in page and "Legal review overdue" in page
