"""The console in a real browser (Debian Chromium under Playwright) against a real server, broker and agent.

Every page runs under the server's Content-Security-Policy: each test watches its pages' consoles and fails
on a CSP violation or an uncaught script error. Screenshots go to a temporary folder; the README's pictures
in docs/ are refreshed only by scripts/screenshots.sh (FE_REFRESH_DOCS=1).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from server.rules.codes import render_png
from tests.server.conftest import GOOD, PLAIN, password, seed
from tests.support.browser import DOCS_DIR, ConsoleLog, browser, keep_screenshot, new_context, refreshing_docs  # noqa: F401  (browser is a pytest fixture)
from tests.support.photos import ROTATE_CW_TO_DISPLAY, camera_photo
from tests.system.conftest import Stack
from tests.system.harness import http_json, write

pytestmark = pytest.mark.system

#: What the browser sends for a phone photo: about 2 megapixels of JPEG (the camera's file was 5+ MB).
SHRUNK_MAX_BYTES = 1_500_000
SHRUNK_MAX_PIXELS = 2_000_000
#: Chinese text of the page's message for a photo that is too large.
TOO_LARGE_ZH = "照片太大"


def _docs_pictures() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(DOCS_DIR.glob("*.png"))}


@pytest.fixture(scope="module", autouse=True)
def docs_untouched() -> Iterator[None]:
    """Running these tests never changes the README's pictures (only scripts/screenshots.sh does)."""
    before = _docs_pictures()
    yield
    if not refreshing_docs():
        assert _docs_pictures() == before, "a browser test wrote into docs/: screenshots belong in a temporary folder"


@pytest.fixture
def running(stack: Stack) -> Stack:
    """A running server with the registers seeded (SQLite: the pages read through the same seam on either backend,
    and a browser per backend would double the slowest tests for no new path)."""
    stack.server.start_and_wait()
    write(stack.server.db, seed)
    return stack


def sign_in(context, url: str, username: str):  # type: ignore[no-untyped-def]
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password(username))
    page.click("#submit")
    return page


@contextmanager
def watched(browser, kind: str | None = None) -> Iterator[tuple[object, ConsoleLog]]:  # type: ignore[no-untyped-def]  # noqa: F811
    """A browser context whose pages must show no CSP violation and no uncaught script error."""
    ctx = new_context(browser, kind)
    log = ConsoleLog(ctx)
    try:
        yield ctx, log
        log.assert_clean()
    finally:
        ctx.close()


def test_each_role_signs_in_to_its_own_page(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    with watched(browser) as (ctx, _):
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


def test_a_live_inspection_appears_on_the_dashboard(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    (terminal,) = running.add_devices(1, model="qr_terminal")
    terminal.start()
    url = running.server.url
    with watched(browser) as (ctx, _):
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
        keep_screenshot(page, "dashboard")
        en = ctx.new_page()
        en.goto(f"{url}/?lang=en")
        en.wait_for_selector(f"tr[data-inspection='{answer['inspection_id']}']", timeout=15_000)
        assert "Inspections under way" in en.inner_text("main")


def test_officer_scans_a_photo_on_the_phone_page(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    photo = tmp_path / "door.png"
    photo.write_bytes(render_png(running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt"), "海淀某餐饮公司"))
    refused_photo = tmp_path / "quiet.png"
    refused_photo.write_bytes(render_png(running.server.text(f"/api/v1/enterprises/{GOOD}/qr.txt"), "守信示范企业"))
    with watched(browser, "phone") as (ctx, _):
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
        keep_screenshot(page, "officer")
        page.select_option("select.result", "rectification_ordered")
        page.click("button.end")
        page.wait_for_selector("#mine :text('责令整改')")


def test_an_agency_administrator_is_refused_another_agencys_record(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    inspection = running.server.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-1")["inspection_id"]
    with watched(browser) as (ctx, _):
        page = sign_in(ctx, url, "admin-FIRE")
        page.wait_for_url(f"{url}/?lang=zh")
        page.wait_for_selector("#live-state.ok")
        assert inspection not in page.content()  # not shown ...
        refused = page.request.get(f"{url}/api/v1/inspections/{inspection}")
        assert refused.status == 403 and "其他执法机关" in refused.text()  # ... and refused when asked for
        own = sign_in(ctx, url, "admin-SAMR")
        own.wait_for_url(f"{url}/?lang=zh")
        assert own.request.get(f"{url}/api/v1/inspections/{inspection}").status == 200


def test_the_enterprise_sees_who_inspected_it(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    inspection = running.server.api("/api/v1/scans", {"code_text": text, "field": "food"}, as_="OFF-SAMR-1")["inspection_id"]
    running.server.api(f"/api/v1/inspections/{inspection}/end", {"result": "case_opened"}, as_="OFF-SAMR-1")
    with watched(browser, "phone") as (ctx, _):
        page = ctx.new_page()  # anyone who photographed the sticker: that inspections happened, not their outcome
        page.goto(f"{url}/enterprise")
        page.fill("#code_text", text)
        page.click("#query-submit")
        page.wait_for_selector("#rows :text('市场监管局')")
        assert "海淀某餐饮公司" in page.inner_text("#name") and "食品安全" in page.inner_text("#rows")
        assert "立案" not in page.inner_text("main") and page.is_visible("#outcomes-hidden")
        page.fill("#code_text", text[:-3] + "AAA")
        page.click("#query-submit")
        page.wait_for_selector("#error:has-text('篡改')")  # the server's reason, in the page's language
        own = sign_in(ctx, url, "ent-plain")  # the enterprise's own account: the outcomes too
        own.wait_for_url(f"{url}/enterprise?lang=zh")
        own.fill("#code_text", text)
        own.click("#query-submit")
        own.wait_for_selector("#rows td.result:has-text('立案')")
        assert own.is_visible("#result-head") and not own.is_visible("#outcomes-hidden")
        own.select_option("#rows form.rate select", "2")  # the owner rates the ended inspection, once
        own.fill("#rows form.rate input", "检查时态度生硬")
        own.click("#rows form.rate button")
        own.wait_for_selector("#rating-notice:has-text('感谢评价')")
        assert "★★☆☆☆" in own.inner_text("#rows") and own.query_selector("#rows form.rate") is None
        own.click("#query-submit")  # asked again: rated, no form
        own.wait_for_selector("#rows :text('已评价')")
        assert own.query_selector("#rows form.rate") is None


def _multipart_file(content_type: str, body: bytes, name: str) -> bytes:
    """The content of the form field ``name`` in a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, content = part.partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in head:
            return content.removesuffix(b"\r\n")
    raise AssertionError(f"no field {name!r} in the form")


def test_officer_uploads_a_camera_photo_shrunk_in_the_browser(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    text = running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")
    # A phone held upright: 3000x4000 as seen, stored as 4000x3000 pixels with an EXIF orientation tag.
    camera = camera_photo(text, size=(3000, 4000), min_bytes=5_000_000, orientation=ROTATE_CW_TO_DISPLAY)
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(camera)
    sent: list[bytes] = []

    def capture(route, request) -> None:  # type: ignore[no-untyped-def]
        sent.append(_multipart_file(request.headers["content-type"], request.post_data_buffer or b"", "photo"))
        route.continue_()

    with watched(browser, "phone") as (ctx, _):
        page = sign_in(ctx, url, "OFF-SAMR-1")
        page.wait_for_url(f"{url}/officer?lang=zh")
        page.route("**/api/v1/scans/photo", capture)
        page.set_input_files("#photo", str(photo))
        page.dblclick("#scan-submit")  # a careless double tap while the photo is being shrunk: one scan
        page.wait_for_selector("#decision-box[data-outcome='allowed']", timeout=20_000)
        assert "海淀某餐饮公司" in page.inner_text("#decision")
    (upload,) = sent  # exactly one upload
    image = Image.open(io.BytesIO(upload))
    assert image.format == "JPEG" and len(upload) < SHRUNK_MAX_BYTES < len(camera), (len(upload), len(camera))
    assert image.width * image.height <= SHRUNK_MAX_PIXELS * 1.01, image.size
    assert image.width < image.height, f"sent sideways: {image.size} (the EXIF orientation was not applied)"
    assert image.getexif().get(0x0112, 1) == 1  # upright pixels, no tag left to turn them again


def test_a_photo_too_large_gets_a_chinese_message(running: Stack, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    unreadable = tmp_path / "IMG_0002.jpg"  # a file the browser cannot draw (so cannot shrink), over the limit
    unreadable.write_bytes(b"\xff\xd8\xff\xe0" + bytes(16 * 1024 * 1024))
    small = tmp_path / "door.png"
    small.write_bytes(render_png(running.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt"), "海淀某餐饮公司"))
    uploads: list[str] = []
    with watched(browser, "phone") as (ctx, _):
        page = sign_in(ctx, url, "OFF-SAMR-1")
        page.wait_for_url(f"{url}/officer?lang=zh")
        page.on("request", lambda r: uploads.append(r.url) if r.url.endswith("/api/v1/scans/photo") else None)
        page.set_input_files("#photo", str(unreadable))
        page.click("#scan-submit")
        page.wait_for_selector(f"#scan-error:has-text('{TOO_LARGE_ZH}')")
        assert uploads == []  # refused before minutes of uploading
        # A proxy in front of the server answers 413 with its own English page: the officer still reads Chinese.
        page.route("**/api/v1/scans/photo", lambda route: route.fulfill(status=413, content_type="text/html", body="<h1>413 Request Entity Too Large</h1>"))
        page.set_input_files("#photo", str(small))
        page.click("#scan-submit")
        page.wait_for_selector(f"#scan-error:has-text('{TOO_LARGE_ZH}')")
        assert "Request Entity Too Large" not in page.inner_text("#decision")


def test_every_page_runs_under_the_content_security_policy(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    with watched(browser) as (ctx, log):
        anonymous = ctx.new_page()
        for path, ready in (("/login", "#submit"), ("/login?lang=en", "#submit"), ("/enterprise", "#query-submit")):
            anonymous.goto(url + path)
            anonymous.wait_for_selector(ready)
        for user, path, ready in (
            ("sup", "/?lang=zh", "#live-state.ok"), ("admin-SAMR", "/?lang=zh", "#live-state.ok"),
            ("OFF-SAMR-1", "/officer?lang=zh", "#mine .muted"), ("ent-plain", "/enterprise?lang=zh", "#query-submit"),
        ):  # fmt: skip
            page = sign_in(ctx, url, user)
            page.wait_for_url(url + path)
            page.wait_for_selector(ready)  # the page's own script ran (live stream open, my inspections listed)
            if user == "sup":  # the supervisors' other pages: scheduled jobs, accounts (when the server has them)
                page.goto(f"{url}/jobs")
                page.wait_for_selector("table")
                if page.goto(f"{url}/users").status != 404:
                    page.wait_for_selector("table")
            page.close()
        assert log.csp_violations == []
        # The watch is real: an injected inline script is refused by the browser and reported.
        anonymous.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.append(s); }")
        assert anonymous.evaluate("() => window.injected") is None
        assert any("inline script" in v for v in log.csp_violations), log.errors
        log.errors.clear()


def test_the_api_docs_render_with_no_network_but_the_server(running: Stack, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    url = running.server.url
    blocked: list[str] = []

    def only_the_server(route, request) -> None:  # type: ignore[no-untyped-def]
        if request.url.startswith(url + "/"):
            route.continue_()
        else:  # a government network: nothing else is reachable
            blocked.append(request.url)
            route.abort("internetdisconnected")

    with watched(browser) as (ctx, _):
        ctx.route("**/*", only_the_server)
        page = ctx.new_page()
        page.goto(f"{url}/schema")
        page.wait_for_selector("text=scan-to-inspect", timeout=20_000)
        page.locator(".opblock-summary-path", has_text="/api/v1/scans/photo").first.wait_for()  # operations are listed
        assert blocked == [], blocked
