"""The officer's phone page and the enterprise's check of the officer (issue 16 items 2 and 3) in a real browser (Debian
Chromium under Playwright, 390×844 phone viewport) against a real server, under its Content-Security-Policy:

* refused at a no-disturb enterprise → the exception kinds with the officer's own registered items → one picked →
  allowed, in words and colour; in Chinese and in English;
* the officer shows a door code (亮码); the enterprise opens it on a phone with no account: a real code, a forged one,
  an expired one and replayed ones (superseded by a newer code, and after the inspection ended)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from protocol.qrphoto import decode_photo
from server.console import badges
from server.rules.codes import render_png
from server.storage.engine import sql
from tests.server.conftest import GOOD
from tests.support.browser import browser, keep_screenshot, new_context  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import read_all, write
from tests.system.test_browser import running, sign_in, watched  # noqa: F401  (running is a pytest fixture)
from tests.system.test_console_browser import check_page

pytestmark = pytest.mark.system

_ISSUED = sql("SELECT count(*) FROM badges WHERE inspection_id = :id")
_CHECKED = sql("SELECT count(*) FROM badges WHERE inspection_id = :id AND first_checked_ms IS NOT NULL")
_EXPIRE = sql("UPDATE badges SET issued_ms = :issued, expires_ms = :expires WHERE badge_id = :id")


def door_photo(stack: Stack, tmp_path: Path, credit_code: str, name: str) -> Path:
    photo = tmp_path / f"{credit_code}.png"
    photo.write_bytes(render_png(stack.server.text(f"/api/v1/enterprises/{credit_code}/qr.txt"), name))
    return photo


def LANG_OF(page) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
    return "zh" if str(page.evaluate("document.documentElement.lang")).startswith("zh") else "en"


def fits_the_width(page) -> bool:  # type: ignore[no-untyped-def]
    """No sideways scroll: measured against the screen (a phone widens innerWidth to a page that is too wide)."""
    return bool(page.evaluate("w => document.documentElement.scrollWidth <= w", (page.viewport_size or {"width": 10**6})["width"]))


def refused_then_exception(page, photo: Path, field: str, words: dict[str, str], shot: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Scan a no-disturb enterprise, be refused, pick the complaint ticket offered and scan again; the inspection's id."""
    page.set_input_files("#photo", str(photo))
    page.select_option("#field", field)
    page.click("#scan-submit")
    box = page.wait_for_selector("#decision-box[data-code='no_disturb']")
    assert words["refused"] in page.inner_text("#outcome-words") and "refused" in (box.get_attribute("class") or "")
    colour = page.eval_on_selector("#outcome-words", "e => getComputedStyle(e).color")
    page.wait_for_selector("#exception:not([hidden])")
    kinds = page.eval_on_selector_all("#exception-kind option", "os => os.map(o => o.textContent)")
    assert [re.sub(r"\s*[（(]\d+[）)]$", "", k) for k in kinds] == words["kinds"], kinds
    assert page.input_value("#exception-kind") == "complaint"  # the first kind with an item of the officer's
    assert "12345-2026-001" in page.inner_text("#exception-items") and "12345-2026-002" not in page.inner_text("#exception-items")  # closed: not offered
    page.select_option("#exception-kind", "major_risk")  # an urgent kind: nothing registered, a number may be typed
    assert page.is_visible("#exception-ref") and page.inner_text("#exception-none") == words["none"]
    page.click("#exception-submit")  # nothing picked, nothing typed: the page says so and sends nothing
    page.wait_for_selector(f"#exception-error:has-text('{words['pick']}')")
    assert page.get_attribute("#decision-box", "data-code") == "no_disturb"
    page.select_option("#exception-kind", "complaint")
    assert not page.is_visible("#exception-ref")
    page.check("input[name='exception-item'][value='12345-2026-001']")
    if LANG_OF(page) == "zh":  # no raw id, every control named, fits the phone, contrast (the English form holds a ticket's Chinese words)
        check_page(page, "zh", "officer page, exception form", phone=True)
    if shot:
        keep_screenshot(page, shot)
    page.click("#exception-submit")
    page.wait_for_selector("#decision-box[data-outcome='allowed'][data-code='allowed_exception']")
    assert page.inner_text("#outcome-words") == words["allowed"]
    assert page.eval_on_selector("#outcome-words", "e => getComputedStyle(e).color") != colour  # green, not red
    assert page.is_hidden("#exception")
    inspection_id = page.get_attribute("#decision-badge", "data-id")
    assert inspection_id
    row = page.wait_for_selector(f"#mine [data-inspection='{inspection_id}']")
    assert "12345-2026-001" in row.inner_text() and words["kinds"][0] in row.inner_text()  # my inspection names its basis
    return inspection_id


def test_the_officers_exception_and_the_enterprises_check(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    photo = door_photo(running, tmp_path, GOOD, "守信示范企业")
    zh = {"refused": "不得检查", "allowed": "可以检查（依据例外）", "kinds": ["投诉举报", "双随机抽查", "整改复查", "上级交办", "重大风险"], "none": "没有可用于该企业和领域的登记依据", "pick": "请先选择一项依据"}
    with watched(browser, "phone") as (ctx, _), watched(browser, "phone") as (enterprise, _):
        page = sign_in(ctx, url, "OFF-SAMR-1")
        page.wait_for_url(f"{url}/officer?lang=zh")
        assert page.evaluate("[innerWidth, innerHeight]") == [390, 844]
        assert page.inner_text("#photo-button").startswith("拍摄")  # the file chooser is a labelled button
        inspection_id = refused_then_exception(page, photo, "food", zh, shot="officer-exception")

        # 亮码: the officer shows a code; the enterprise opens it with no account
        page.dblclick("#decision-badge")  # a double tap asks for one code
        page.wait_for_selector("#badge:not([hidden]) #badge-qr[src^='data:image/svg+xml']")
        assert "有效至" in page.inner_text("#badge-expiry")
        assert read_all(running.server.db, _ISSUED, id=inspection_id) == [(1,)]
        keep_screenshot(page, "officer-badge")
        scanned = decode_photo(page.locator("#badge-qr").screenshot())  # what an enterprise's phone camera reads
        assert scanned == f"{url}/check/{page.get_attribute('#badge', 'data-code')}", scanned
        first = page.get_attribute("#badge", "data-code")
        assert first and first.startswith("B1.")
        preview = enterprise.request.get(f"{url}/check/{first}", headers={"User-Agent": "WhatsApp/2.23.20.0"})  # a link preview: no script
        assert preview.status == 200 and "亮码有效" in preview.text()
        assert read_all(running.server.db, _CHECKED, id=inspection_id) == [(0,)]  # a bare GET is nobody's check
        check = enterprise.new_page()
        answer = check.goto(f"{url}/check/{first}")
        assert answer is not None and answer.status == 200
        assert check.evaluate("[innerWidth, innerHeight]") == [390, 844]
        text = check.inner_text("main")
        for words in ("亮码有效", "守信示范企业", "OFF-SAMR-1", "C-SAMR-1", "有效", "市场监管局", "食品安全", "投诉举报 12345-2026-001", "贵单位在无事不扰名单上"):
            assert words in text, words
        assert check.get_attribute("#check-ok", "data-ok") == "yes"
        assert fits_the_width(check) and fits_the_width(page)  # nothing runs off a 390-pixel screen
        check_page(check, "zh", "check page", phone=True)
        check_page(page, "zh", "officer page, code shown", phone=True)
        keep_screenshot(check, "check-valid")
        page.wait_for_selector("#badge-checked:has-text('企业已扫码核验')", timeout=15_000)  # the page's script told the server; the officer sees it
        assert read_all(running.server.db, _CHECKED, id=inspection_id) == [(1,)]
        en = enterprise.new_page()
        assert en.goto(f"{url}/check/{first}?lang=en").status == 200  # type: ignore[union-attr]
        assert "Code valid" in en.inner_text("main") and "complaint or report 12345-2026-001" in en.inner_text("main")
        check_page(en, "en", "check page (en)", phone=True)

        # forged: one character of the tag changed
        head, tag = first.rsplit(".", 1)
        forged = f"{head}.{'A' if tag[0] != 'A' else 'B'}{tag[1:]}"
        answer = check.goto(f"{url}/check/{forged}")
        assert answer is not None and answer.status == 400
        assert check.get_attribute("#check-refused", "data-kind") == "forged" and "伪造" in check.inner_text("#check-reason")
        check_page(check, "zh", "check page, forged", phone=True)
        keep_screenshot(check, "check-forged")

        # replayed: the officer shows a newer code; the old one is refused, the new one is good
        page.click("#badge-renew")
        page.wait_for_function("c => document.getElementById('badge').dataset.code !== c", arg=first)
        second = page.get_attribute("#badge", "data-code")
        answer = check.goto(f"{url}/check/{first}")
        assert answer is not None and answer.status == 409 and check.get_attribute("#check-refused", "data-kind") == "superseded"
        assert "取代" in check.inner_text("#check-reason")
        assert check.goto(f"{url}/check/{second}").status == 200  # type: ignore[union-attr]

        # expired: the same code as the server would have issued 10 minutes ago
        key = badges.load_key(running.server.key_base)
        _, bid, _, _ = second.split(".")  # type: ignore[union-attr]
        past = (int(time.time()) - 600) * 1000
        write(running.server.db, lambda tx: tx.run(_EXPIRE, issued=past - badges.LIFETIME_MS, expires=past, id=bid))
        expired = badges.make_code(key, bid, past)
        answer = check.goto(f"{url}/check/{expired}")
        assert answer is not None and answer.status == 410 and check.get_attribute("#check-refused", "data-kind") == "expired"
        assert "已过期" in check.inner_text("#check-reason")
        answer = check.goto(f"{url}/check/{expired}?lang=en")
        assert answer is not None and answer.status == 410 and "has expired" in check.inner_text("#check-reason")

        # replayed after the inspection ended: a fresh code, then the officer ends the inspection on the page
        page.click("#badge-renew")
        page.wait_for_function("c => document.getElementById('badge').dataset.code !== c", arg=second)
        third = page.get_attribute("#badge", "data-code")
        assert check.goto(f"{url}/check/{third}").status == 200  # type: ignore[union-attr]
        row = page.wait_for_selector(f"#mine [data-inspection='{inspection_id}']")
        row.query_selector("select.result").select_option("no_violation")  # type: ignore[union-attr]
        row.query_selector("button.end").click()  # type: ignore[union-attr]
        page.wait_for_selector(f"#mine [data-inspection='{inspection_id}'] :text('未发现问题')")
        answer = check.goto(f"{url}/check/{third}")
        assert answer is not None and answer.status == 409 and check.get_attribute("#check-refused", "data-kind") == "ended"
        assert "检查已结束" in check.inner_text("#check-reason")


def test_the_officers_exception_in_english(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    photo = door_photo(running, tmp_path, GOOD, "守信示范企业")
    en = {
        "refused": "Do not inspect", "allowed": "You may inspect (on the exception)", "none": "No registered item fits this enterprise and field", "pick": "Pick an item first",
        "kinds": ["complaint or report", "random draw", "rectification follow-up", "superior assignment", "major risk"],
    }  # fmt: skip
    with watched(browser, "phone") as (ctx, _):
        page = sign_in(ctx, url, "OFF-FIRE-1")
        page.wait_for_url(f"{url}/officer?lang=zh")
        page.goto(f"{url}/officer?lang=en")
        inspection_id = refused_then_exception(page, photo, "food", en)
        mine = page.inner_text("#mine")
        assert "under way" in mine and "Show my code" in mine
        check_page(page, "en", "officer page (en), allowed", phone=True)
        page.click("#decision-badge")
        page.wait_for_selector("#badge:not([hidden]) #badge-qr[src^='data:image/svg+xml']")
        assert "Good until" in page.inner_text("#badge-expiry")
        code = page.get_attribute("#badge", "data-code")
        check = ctx.new_page()
        assert check.goto(f"{url}/check/{code}?lang=en").status == 200  # type: ignore[union-attr]
        assert "Fire rescue" in check.inner_text("main") and inspection_id not in check.inner_text("main")  # no raw ids
        assert fits_the_width(check) and fits_the_width(page)
    with watched(browser) as (desktop, _):  # the same page on a desktop screen
        wide = desktop.new_page()
        assert wide.goto(f"{url}/check/{code}?lang=en").status == 200  # type: ignore[union-attr]
        assert wide.evaluate("innerWidth") > 390 and fits_the_width(wide) and "Code valid" in wide.inner_text("main")


_OPENED = sql(
    "INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms)"
    " VALUES (:id, :code, '110108', :agency, 'food', 'ended', :at, :at)"
)
_PART = sql(
    "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, ended_ms, result)"
    " VALUES (:id, :officer, :agency, 'food', :at, :at, 'no_violation')"
)


def test_my_inspections_today_are_mine_a_page_at_a_time(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    now = int(time.time() * 1000)

    def seed(tx) -> None:  # type: ignore[no-untyped-def]
        for n, officer in enumerate(["OFF-SAMR-2"] * 7 + ["OFF-SAMR-1"]):
            tx.run(_OPENED, id=f"INSP-{n}", code=GOOD, agency="SAMR", at=now - (n + 1) * 1000)
            tx.run(_PART, id=f"INSP-{n}", officer=officer, agency="SAMR", at=now - (n + 1) * 1000)

    write(running.server.db, seed)
    with watched(browser, "phone") as (ctx, _):
        page = sign_in(ctx, url, "OFF-SAMR-2")
        page.wait_for_url(f"{url}/officer?lang=zh")
        page.wait_for_selector("#mine-pager:not([hidden])")
        assert page.inner_text("#mine-page") == "第 1/2 页，共 7 次" and page.is_disabled("#mine-prev")
        first = page.eval_on_selector_all("#mine [data-inspection]", "xs => xs.map(x => x.dataset.inspection)")
        assert first == [f"INSP-{n}" for n in range(5)]  # newest first
        page.click("#mine-next")
        page.wait_for_selector("#mine-page:has-text('第 2/2 页')")
        second = page.eval_on_selector_all("#mine [data-inspection]", "xs => xs.map(x => x.dataset.inspection)")
        assert second == ["INSP-5", "INSP-6"] and page.is_disabled("#mine-next")  # INSP-7 is another officer's
        assert "未发现问题" in page.inner_text("#mine")
