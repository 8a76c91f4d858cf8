"""The console in a real browser (Debian Chromium under Playwright) against a real server, broker and agent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.codes import render_png
from tests.server.conftest import GOOD, PLAIN, password, seed
from tests.support.browser import browser, new_context  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import http_json

pytestmark = pytest.mark.system

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def running(stack: Stack) -> Stack:
    stack.server.start_and_wait()
    con = sqlite3.connect(stack.server.db_path)
    seed(con)
    con.commit()
    con.close()
    return stack


def sign_in(context, url: str, username: str):  # type: ignore[no-untyped-def]
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password(username))
    page.click("#submit")
    return page


def keep(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshots of the pages go into docs/ for the README."""
    DOCS.mkdir(exist_ok=True)
    path = DOCS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)


def test_each_role_signs_in_to_its_own_page(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    ctx = new_context(browser)
    try:
        bad = ctx.new_page()
        bad.goto(f"{url}/login")
        bad.fill("#username", "sup")
        bad.fill("#password", "not-the-password")
        bad.click("#submit")
        bad.wait_for_selector("#error:has-text('用户名或密码错误')")
        for user, path in (("sup", "/"), ("admin-SAMR", "/"), ("OFF-SAMR-1", "/officer")):
            page = sign_in(ctx, url, user)
            page.wait_for_url(f"{url}{path}?lang=zh")
            assert user in page.inner_text("#me")
            page.click("#logout")
            page.wait_for_url(f"{url}/login?lang=zh")
        page = ctx.new_page()
        page.goto(f"{url}/")
        page.wait_for_url(f"{url}/login?lang=zh")  # signed out: back to sign-in
    finally:
        ctx.close()


def test_a_live_inspection_appears_on_the_dashboard(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    (terminal,) = running.add_devices(1, model="qr_terminal")
    terminal.start()
    url = running.server.url
    ctx = new_context(browser)
    try:
        page = sign_in(ctx, url, "sup")
        page.wait_for_url(f"{url}/?lang=zh")
        page.wait_for_selector("#live-state.ok")  # the event stream is open
        assert "暂无" in page.inner_text("#under-way")
        text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
        code, answer = http_json(terminal.url + "/v1/scan", {"officer_id": "OFF-SAMR-1", "field": "food", "code_text": text}, timeout=30)
        assert code == 200 and answer["outcome"] == "allowed"
        row = page.wait_for_selector(f"tr[data-inspection='{answer['inspection_id']}']", timeout=15_000)
        assert "海淀某餐饮公司" in row.inner_text() and "OFF-SAMR-1" in row.inner_text()
        # alerts arrive live too: the terminal signs off
        terminal.proc.stop()  # type: ignore[union-attr]
        page.wait_for_selector("#alerts :text('已离线')", timeout=15_000)
        assert "QT-" in page.inner_text("#fleet")
        page.wait_for_selector("#by-agency :text('市场监管局')", timeout=15_000)  # the per-agency chart caught up
        keep(page, "dashboard")
        en = ctx.new_page()
        en.goto(f"{url}/?lang=en")
        en.wait_for_selector(f"tr[data-inspection='{answer['inspection_id']}']", timeout=15_000)
        assert "Inspections under way" in en.inner_text("main")
    finally:
        ctx.close()


def test_officer_scans_a_photo_on_the_phone_page(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    photo = tmp_path / "door.png"
    photo.write_bytes(render_png(running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt"), "海淀某餐饮公司"))
    refused_photo = tmp_path / "quiet.png"
    refused_photo.write_bytes(render_png(running.server.text(f"/api/v1/enterprises/{GOOD}/qr.txt"), "守信示范企业"))
    ctx = new_context(browser, "phone")
    try:
        page = sign_in(ctx, url, "OFF-SAMR-1")
        page.wait_for_url(f"{url}/officer?lang=zh")
        page.set_input_files("#photo", str(refused_photo))
        page.click("#scan-submit")
        box = page.wait_for_selector("#decision-box")
        assert box.get_attribute("data-code") == "no_disturb" and "无事不扰" in box.inner_text()
        page.set_input_files("#photo", str(photo))
        page.click("#scan-submit")
        page.wait_for_selector("#decision-box[data-outcome='allowed']")
        assert "可以对“海淀某餐饮公司”开展检查" in page.inner_text("#decision")
        page.wait_for_selector("button.end")
        keep(page, "officer")
        page.select_option("select.result", "rectification_ordered")
        page.click("button.end")
        page.wait_for_selector("#mine :text('责令整改')")
    finally:
        ctx.close()


def test_an_agency_administrator_is_refused_another_agencys_record(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    inspection = running.server.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-1")["inspection_id"]
    ctx = new_context(browser)
    try:
        page = sign_in(ctx, url, "admin-FIRE")
        page.wait_for_url(f"{url}/?lang=zh")
        page.wait_for_selector("#live-state.ok")
        assert inspection not in page.content()  # not shown ...
        refused = page.request.get(f"{url}/api/v1/inspections/{inspection}")
        assert refused.status == 403 and "其他执法机关" in refused.text()  # ... and refused when asked for
        own = sign_in(ctx, url, "admin-SAMR")
        own.wait_for_url(f"{url}/?lang=zh")
        assert own.request.get(f"{url}/api/v1/inspections/{inspection}").status == 200
    finally:
        ctx.close()


def test_the_enterprise_sees_who_inspected_it(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    running.server.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-1")
    ctx = new_context(browser, "phone")
    try:
        page = ctx.new_page()
        page.goto(f"{url}/enterprise")
        page.fill("#code_text", text)
        page.click("#query-submit")
        page.wait_for_selector("#rows :text('市场监管局')")
        assert "海淀某餐饮公司" in page.inner_text("#name")
        page.fill("#code_text", text[:-3] + "AAA")
        page.click("#query-submit")
        page.wait_for_selector("#error:has-text('altered')")
    finally:
        ctx.close()

