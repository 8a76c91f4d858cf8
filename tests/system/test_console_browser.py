"""The console's pages for the people who use them (issue 16 items 1, 4, 6, 7), in a real browser against a real
server: every page on a phone (390x844) and a desktop, in Chinese and English, shows no raw id from the registers'
id lists (labels.groups() and the seeded registers), labels every control, shows where the focus is and fits the
screen; the dashboard's period, drill-down, districts and alerts (acknowledged, assigned, opened); the enterprise's
history on a phone; the layout at 200 % zoom. Pages run under the CSP with no script error (``watched``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from server.console import labels
from server.storage.engine import sql
from tests.server.cases_support import seed_case_people
from tests.server.conftest import FRAGILE, PLAIN
from tests.support.browser import browser, keep_screenshot  # noqa: F401  (browser is a pytest fixture)
from tests.system.conftest import Stack
from tests.system.harness import write
from tests.system.test_browser import docs_untouched, running, sign_in, watched  # noqa: F401  (pytest fixtures: docs_untouched autouse)

pytestmark = pytest.mark.system

_ALERT = sql(
    "INSERT INTO alerts(created_ms, kind, severity, agency_id, credit_code, officer_id, ref, message_zh, message_en)"
    " VALUES (:now, 'low_rating', 'warning', 'SAMR', :code, 'OFF-SAMR-1', :ref, '企业给出差评（2 星）', 'The enterprise rated the inspection 2 of 5') RETURNING id"
)
#: A desktop at 200 % zoom lays out like a 640 CSS px wide window.
ZOOM_200 = {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2}
TOKEN = re.compile(r"[A-Za-z0-9_.\-]+")
#: Every control of a page with its accessible name ('' when it has none), and whether the page is wider than the screen.
_CONTROLS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')].filter(el => el.getClientRects().length).map(el => {
  const by = (el.getAttribute('aria-labelledby') || '').split(' ').map(id => document.getElementById(id)).filter(Boolean).map(x => x.textContent).join(' ');
  const name = (el.labels && [...el.labels].map(l => l.textContent).join(' ')) || el.getAttribute('aria-label') || by || (el.tagName === 'BUTTON' ? el.textContent : '');
  return [el.id || el.name || el.outerHTML.slice(0, 60), name.trim()];
})"""
_CHROME = "() => [...document.querySelectorAll('h1, h2, h3, th, label, button, nav a, caption')].filter(el => el.getClientRects().length).map(el => el.innerText.trim())"
#: Text whose contrast with its background is under WCAG AA (4.5:1; 3:1 for large text), with the ratio.
_LOW_CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); })
    .reduce((a, c, i) => a + c * [0.2126, 0.7152, 0.0722][i], 0);
  const back = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length < 4 || c[3] > 0.5) return c; } return [255, 255, 255]; };
  const out = [], walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el.getClientRects().length || el.closest('svg, [aria-hidden=true], button:disabled')) continue;
    const s = getComputedStyle(el);
    if (s.visibility === 'hidden') continue;
    const a = lum(rgb(s.color)), b = lum(back(el)), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && parseInt(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push([node.textContent.trim().slice(0, 30), ratio.toFixed(2)]);
  }
  return out;
}"""
#: How much wider than the screen the page is, in CSS px. A phone (is_mobile) widens its layout viewport to a page that
#: is too wide, so window.innerWidth grows with the page: the screen's width is the context's viewport, given here.
_OVERFLOW = "w => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - w"


def overflow(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate(_OVERFLOW, page.viewport_size["width"]))
_FOCUS = "() => { const s = getComputedStyle(document.activeElement); return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; }"


def raw_ids(lang: str) -> set[str]:
    """The ids a page in ``lang`` must not show: in Chinese every id; in English those no English sentence holds
    (an id with _ or -, the agencies' upper-case ids), since "open" or "ended" are words there too."""
    ids = {k for g in labels.groups().values() for k in g if k} | {"SAMR", "FIRE", "food", "fire", "AG-TEST"}  # AG-TEST: the test devices' agency
    return ids if lang == "zh" else {i for i in ids if "_" in i or "-" in i or i.isupper()}


def check_page(page, lang: str, where: str, phone: bool) -> None:  # type: ignore[no-untyped-def]
    text = page.inner_text("body")
    shown = set(TOKEN.findall(text)) & raw_ids(lang)
    assert not shown, (where, shown, [ln for ln in text.splitlines() if set(TOKEN.findall(ln)) & shown])
    if lang == "en":  # the page's own words are English (the registers' names may be Chinese only: not checked)
        chrome = page.evaluate(_CHROME)
        assert not [x for x in chrome if re.search(r"[\u4e00-\u9fff]", _without_content(x)) and x != "中文"], (where, chrome)
    unlabelled = [c for c, name in page.evaluate(_CONTROLS) if not name]
    assert not unlabelled, (where, unlabelled)
    if phone:
        assert overflow(page) <= 1, f"{where}: wider than the phone's screen"
    low = page.evaluate(_LOW_CONTRAST)
    assert not low, (where, low)


#: What people wrote (a draw's title, the registers' names, a message): it stays as written on an English page.
USER_CONTENT = ("食品抽查", "海淀某餐饮公司", "市场监管局", "消防救援支队", "企业给出差评（2 星）", "销售过期食品", "王审核", "李消防", "对当事人罚款 100 元", "低风险小店")


def _without_content(text: str) -> str:
    for written in USER_CONTENT:
        text = text.replace(written, "")
    return text


def check_focus(page, where: str) -> None:  # type: ignore[no-untyped-def]
    """The first Tab on a page just loaded reaches the skip link, drawn with a visible ring."""
    page.keyboard.press("Tab")
    tag, style, width = page.evaluate(_FOCUS)
    assert tag == "A" and style != "none" and width != "0px", (where, tag, style, width)


def tour(browser, url: str, pages: list[tuple[str | None, str, str]]) -> Iterator[tuple[Any, Any, str | None, str, str, str]]:  # type: ignore[no-untyped-def]
    """Each page as its user, on a phone and a desktop, in Chinese and English, loaded and its focus ring checked:
    yields (context, page, screen kind, language, user, path); the page is closed after the caller's checks."""
    for kind in ("phone", None):
        with watched(browser, kind) as (ctx, _):
            for lang in ("zh", "en"):
                signed_in = None
                for user, path, ready in pages:
                    if user != signed_in:
                        ctx.clear_cookies()
                        if user:
                            entry = sign_in(ctx, url, user)
                            entry.wait_for_url(lambda u: "/login" not in u)
                            entry.close()
                        signed_in = user
                    page = ctx.new_page()
                    page.goto(f"{url}{path}{'&' if '?' in path else '?'}lang={lang}")
                    page.wait_for_selector(ready, timeout=15_000)
                    check_focus(page, path)
                    yield ctx, page, kind, lang, user, path
                    page.close()


def _setup(running: Stack) -> tuple[str, int, str]:
    """A recorder (of an agency the registers do not name), an ended inspection, an alert about it, a draw; their ids."""
    running.add_devices(1)
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    inspection = running.server.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-1")["inspection_id"]
    running.server.api(f"/api/v1/inspections/{inspection}/end", {"result": "case_opened"}, as_="OFF-SAMR-1")
    alert = write(running.server.db, lambda tx: tx.scalar(_ALERT, now=int(time.time() * 1000), code=PLAIN, ref=inspection))
    draw = running.server.api("/api/v1/draws", {"agency_id": "SAMR", "field": "food", "title": "食品抽查", "enterprises": 1, "draw_at_ms": int(time.time() * 1000) + 600_000}, expect=201)
    return text, alert, draw["public_page"]


def test_every_page_on_a_phone_and_a_desktop_in_both_languages(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    code_text, alert, draw_page = _setup(running)
    pages = [
        (None, "/login", "#submit"), (None, draw_page, "#draw"), ("sup", "/", "#by-agency .bar-row"), ("sup", f"/alerts/{alert}", "#inspection"),
        ("sup", "/jobs", "#jobs"), ("sup", "/users", "#users"), ("sup", "/scorecard", "#scorecard"), ("sup", "/supervision", "main"),
        ("admin-SAMR", "/", "#alerts .alert-item"), ("ent-plain", "/enterprise", "#query-submit"),
    ]  # fmt: skip
    for ctx, page, kind, lang, user, path in tour(browser, url, pages):
        if path == "/enterprise":  # the history, with its results and rating form
            page.fill("#code_text", code_text)
            page.click("#query-submit")
            page.wait_for_selector("#rows td.result")
        check_page(page, lang, f"{kind or 'desktop'} {lang} {path}", kind == "phone")
        if path == f"/alerts/{alert}":  # the inspection's evidence bundle, exported from the alert
            assert page.inner_text("#export-inspection") == ("导出证据包" if lang == "zh" else "Export evidence bundle")
            assert page.get_attribute("#export-inspection", "href").startswith("/api/v1/evidence/bundles/inspection/")
        if kind is None and lang == "en" and path == f"/alerts/{alert}":
            keep_screenshot(page, "alert-en")
        if kind == "phone" and lang == "zh" and path in ("/", "/jobs"):
            keep_screenshot(page, "phone-dashboard" if path == "/" else "phone-jobs")


def test_the_dashboards_period_drill_down_districts_and_alerts(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    _, alert, _ = _setup(running)
    with watched(browser) as (ctx, _):
        page = sign_in(ctx, url, "sup")
        page.wait_for_url(f"{url}/?lang=zh")
        page.wait_for_selector("#k-inspections:has-text('1')")
        page.wait_for_selector("#fleet :text('执法记录仪')")  # the device's kind, and its agency by name (unknown here, never its id)
        assert "AG-TEST" not in page.inner_text("#fleet") and "（未知）" in page.inner_text("#fleet")
        page.click("button[data-period='7d']")
        assert page.get_attribute("button[data-period='7d']", "aria-pressed") == "true"
        page.wait_for_selector("#period-shown:has-text('–')")
        page.click("button[data-period='month']")  # a calendar month: this one up to today, or another
        page.wait_for_selector(f"#period-shown:has-text('{time.strftime('%Y-%m', time.gmtime(time.time() + 8 * 3600))}-01')")
        page.fill("#month", "2020-02")
        page.click("#month-show")
        page.wait_for_selector("#period-shown:has-text('2020-02-01 – 2020-02-29')")
        assert page.is_hidden("#custom-period")
        page.click("button[data-period='custom']")
        page.fill("#from", "2020-01-01")
        page.fill("#to", "2020-01-31")
        page.click("#custom-show")
        page.wait_for_selector("#period-shown:has-text('2020-01-01 – 2020-01-31')")
        page.wait_for_selector("#by-agency :text('该区间暂无数据')")
        assert page.inner_text("#k-inspections") == "0" and "from_day=2020-01-01" in page.get_attribute("#export", "href")
        page.fill("#from", "2020-01-01")
        page.fill("#to", "2022-01-01")  # longer than a year: the server's reason, in Chinese
        page.click("#custom-show")
        page.wait_for_selector("#period-error:has-text('不能超过')")
        page.click("button[data-period='30d']")
        page.click("#by-agency button.bar-row:has-text('市场监管局')")  # agency -> its fields
        page.click("#by-agency button.bar-row:has-text('食品安全')")  # field -> its enterprises
        page.wait_for_selector("#by-agency :text('海淀某餐饮公司')")
        assert "市场监管局" in page.inner_text("#crumbs")
        keep_screenshot(page, "dashboard-drill-down")
        page.click("#crumbs button[data-level='0']")
        page.wait_for_selector("#by-agency button.bar-row:has-text('市场监管局')")
        assert "海淀区" in page.inner_text("#district-rows")
        assert page.eval_on_selector_all("#trend-table tbody tr", "rows => rows.length") == 30  # the chart's figures, for a screen reader
        # Alerts: filtered, acknowledged, assigned, opened.
        item = f"#alerts [data-alert='{alert}']"
        page.wait_for_selector(item)
        page.select_option("#alert-kind", "device_offline")
        page.wait_for_selector(f"{item}", state="detached")
        page.select_option("#alert-kind", "low_rating")
        page.select_option("#alert-agency", "SAMR")
        page.wait_for_selector(item)
        page.dblclick(f"{item} button.ack")  # a double click acknowledges once
        page.wait_for_selector(f"{item} .handled:has-text('已确认：sup')")
        page.wait_for_selector("#assignees option[value='admin-SAMR']", state="attached")  # suggested: administrators, supervisors
        assert page.query_selector("#assignees option[value='OFF-SAMR-1']") is None
        page.click(f"{item} details.assign-box summary")
        page.fill(f"{item} input[name=assignee]", "admin-FIRE")  # another agency's administrator: refused, in Chinese
        page.click(f"{item} form.assign button")
        page.wait_for_selector("#alert-notice:has-text('不能把这条预警分派给')")
        page.fill(f"{item} input[name=assignee]", "admin-SAMR")  # the form stays open after a refusal
        page.click(f"{item} form.assign button")
        page.wait_for_selector(f"{item} .handled:has-text('已分派给 admin-SAMR')")
        page.select_option("#alert-handled", "new")
        page.wait_for_selector(item, state="detached")
        page.select_option("#alert-handled", "")
        page.click(f"{item} a.details")
        page.wait_for_url(f"{url}/alerts/{alert}?lang=zh")
        assert "企业差评" in page.inner_text("h1") and "立案" in page.inner_text("#parts") and "已确认：sup" in page.inner_text("#handling")
        keep_screenshot(page, "alert")
        # An error in English only (the framework's own, a proxy's) never reaches a Chinese page; "中文 / english" shows its Chinese.
        said = page.evaluate("""async () => [
          await errorText(new Response(JSON.stringify({detail: "Validation failed for POST /api/v1/alerts/1/assign"}), {status: 400})),
          await errorText(new Response(JSON.stringify({detail: "这条预警属于其他执法机关 / this alert belongs to another agency"}), {status: 403})),
          await errorText(new Response("<h1>502 Bad Gateway</h1>", {status: 502})),
        ]""")
        assert said == ["填写的内容有误，请检查后重试。", "这条预警属于其他执法机关", "请求失败（502）"]
        # The contrast check is real: light grey text on white is caught.
        page.evaluate("() => { const p = document.createElement('p'); p.textContent = '浅灰色文字'; p.style.color = '#aaaaaa'; document.querySelector('main').append(p); }")
        assert "浅灰色文字" in [text for text, _ in page.evaluate(_LOW_CONTRAST)]
        admin = sign_in(ctx, url, "admin-SAMR")  # the assignee sees it among theirs
        admin.wait_for_url(f"{url}/?lang=zh")
        admin.select_option("#alert-handled", "mine")
        admin.wait_for_selector(item)


def test_the_enterprise_history_fits_a_phone_and_a_desktop_at_200_percent(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    code_text, _, _ = _setup(running)
    with watched(browser, "phone") as (ctx, _):
        page = sign_in(ctx, url, "ent-plain")
        page.wait_for_url(f"{url}/enterprise?lang=zh")
        assert page.get_attribute("#photo", "capture") == "environment" and "拍照或选择照片" in page.inner_text(".file-pick")
        page.fill("#code_text", code_text)
        page.click("#query-submit")
        cell = page.wait_for_selector("#rows td:has-text('市场监管局')")
        bundle = page.get_attribute("#rows a.bundle", "href")  # the enterprise exports its own inspection's evidence bundle
        assert bundle and bundle.startswith("/api/v1/evidence/bundles/inspection/") and page.inner_text("#rows a.bundle") == "导出证据包"
        got = ctx.request.get(url + bundle)
        assert got.status == 200 and got.body()[:2] == b"PK", got.status
        box = cell.bounding_box()
        assert box and box["width"] > 200 and box["height"] < 60, box  # one line, not a character per line
        assert cell.get_attribute("data-label") == "机关"
        keep_screenshot(page, "enterprise-phone")
        assert overflow(page) <= 1
    with watched(browser, ZOOM_200) as (ctx, _):
        for user, path, ready in (
            ("sup", "/", "#by-agency .bar-row"), ("sup", "/jobs", "#jobs"), ("sup", "/scorecard", "#scorecard"), ("sup", "/supervision", "#findings"),
            ("sup", "/cases", "#cases"), ("sup", "/public/disclosure", "#disclosed"), ("sup", "/public/tree-head", "#daily"),
        ):  # fmt: skip
            page = sign_in(ctx, url, user)
            page.wait_for_url(lambda u: "/login" not in u)
            page.goto(f"{url}{path}")
            page.wait_for_selector(ready)
            assert overflow(page) <= 1, path
            page.close()


def _cases_and_code(running: Stack) -> tuple[str, str, str]:
    """A case opened from the ended inspection, decided and disclosed; a case-opened inspection with no case yet; and
    a real door code (亮码) of an inspection under way. Returns (case id, the inspection still to open, the code)."""
    seed_case_people(str(running.server.db))
    _, _, _ = _setup(running)
    srv = running.server
    ended = srv.api("/api/v1/inspections/mine?page=1&per_page=5", as_="OFF-SAMR-1")["items"][0]["inspection_id"]
    body = {"kind": "penalty", "title": "销售过期食品", "inspection_id": ended, "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"]}
    case_id = srv.api("/api/v1/cases", body, as_="OFF-SAMR-1", expect=201)["case_id"]
    srv.api(f"/api/v1/cases/{case_id}/transitions", {"to": "investigating"}, as_="OFF-SAMR-1")
    srv.api(f"/api/v1/cases/{case_id}/decision", {"summary": "对当事人罚款 100 元", "fine_yuan": 100}, as_="OFF-SAMR-1", expect=201)
    srv.api(f"/api/v1/cases/{case_id}/publish", {}, as_="OFF-SAMR-1")
    text = srv.text(f"/api/v1/enterprises/{FRAGILE}/qr.txt")
    under_way = srv.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-2")["inspection_id"]
    srv.api(f"/api/v1/inspections/{under_way}/end", {"result": "case_opened"}, as_="OFF-SAMR-2")  # 立案, no case yet
    text = srv.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    live = srv.api("/api/v1/scans", {"code_text": text, "field": "fire"}, as_="OFF-FIRE-1")["inspection_id"]
    code = srv.api(f"/api/v1/inspections/{live}/badge", {}, as_="OFF-FIRE-1", expect=201)["code"]
    return case_id, under_way, code


def test_the_cases_public_and_check_pages_on_a_phone_and_a_desktop_in_both_languages(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The pages of issues 15 and 17 and the door-code check (issue 16) pass the same checks as the console's: no raw
    id, every control labelled, a focus ring, no sideways scroll on a phone, AA contrast, Chinese and English; the
    public pages are linked from every page's footer (the login page too); the evidence bundles' export links."""
    url = running.server.url
    case_id, to_open, code = _cases_and_code(running)
    pages = [
        (None, "/login", "#submit"), (None, "/public/disclosure", "#disclosed"), (None, "/public/tree-head", "#daily"), (None, f"/check/{code}", "#check-ok"),
        ("OFF-SAMR-1", "/cases", "#cases"), ("OFF-SAMR-1", f"/cases?case={case_id}", "#case"), ("OFF-SAMR-1", "/officer", "#mine .decision"), ("admin-SAMR", "/cases", "#reviewers"),
        ("sup", f"/cases?case={case_id}", "#case"), ("ent-plain", f"/cases?case={case_id}", "#case"), ("OFF-SAMR-2", "/officer", "#mine .decision"),
    ]  # fmt: skip
    for ctx, page, kind, lang, user, path in tour(browser, url, pages):
        check_page(page, lang, f"{kind or 'desktop'} {lang} {path}", kind == "phone")
        footer = page.inner_text("footer.foot")
        assert ("行政执法公示" in footer and "证据日志公开树头" in footer) if lang == "zh" else ("disclosed" in footer and "tree heads" in footer), (path, footer)
        if user == "ent-plain":  # the party concerned sees its own case, linked from its menu
            assert page.is_visible("#cases-link") and page.is_visible("#enterprise-link") and "销售过期食品" in page.inner_text("#case")
        if path.startswith("/cases?case="):
            assert page.get_attribute("#export-case", "href") == f"/api/v1/evidence/bundles/case/{case_id}"
            got = ctx.request.get(f"{url}/api/v1/evidence/bundles/case/{case_id}")  # the button downloads the case's bundle
            assert got.status == 200 and got.body()[:2] == b"PK", (user, got.status)
        if path == "/officer" and user == "OFF-SAMR-1":  # 立案, and the agency has its case: no link
            page.wait_for_selector("#mine .decision:has-text('立案'), #mine .decision:has-text('case opened')")
            assert page.query_selector("a.open-case") is None
        if path == "/officer" and user == "OFF-SAMR-2":  # ended with 立案, no case yet: a link to the cases page's form
            link = page.wait_for_selector(f"#mine [data-inspection='{to_open}'] a.open-case")
            assert link.get_attribute("href") == f"/cases?lang={lang}&inspection={to_open}"
            assert page.get_attribute("#photo", "capture") == "environment" and page.is_visible("#photo-button")
            assert "Choose File" not in page.inner_text("body") and page.eval_on_selector("#photo", "el => el.getBoundingClientRect().width") <= 1
