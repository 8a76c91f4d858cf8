"""The jobs' status page and a draw's public page (Jinja, Chinese first, ``?lang=en``), and the role guards'
answers: 401 without a session, 403 naming the roles a route needs, before the body is read."""

from __future__ import annotations

import time
from pathlib import Path

from server import db as dbmod
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
    assert "、".join(team["officers"]) in after.text and "Eligible enterprises" in after.text
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
