"""The real-browser test support (tests/support/browser.py) works on this machine: Debian's Chromium
starts under Playwright without any browser download, renders Chinese with real glyphs, runs the page's
JavaScript on a click and takes screenshots. A small page is served by the stdlib http.server."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (  # noqa: F401  (browser, page, phone_page are pytest fixtures)
    CHROMIUM,
    REFRESH_DOCS_ENV,
    browser,
    driver_start_seconds,
    keep_screenshot,
    launch_browser,
    page,
    phone_page,
    platform_fonts,
    save_screenshot,
)

pytestmark = pytest.mark.system

TITLE = "执法检查"
PAGE = f"""<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE}</title></head>
<body>
  <h1 id="title">{TITLE}</h1>
  <p><span id="zhi">执</span> <span id="fa">法</span></p>
  <p id="status">未扫码</p>
  <button id="go" type="button">扫码</button>
  <script>
    document.getElementById("go").addEventListener("click", () => {{
      document.getElementById("status").textContent = "已扫码：" + navigator.language;
    }});
  </script>
</body>
</html>
""".encode()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path not in ("/", "/index.html"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep the test output quiet
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Base URL of the test page, served on a free port of 127.0.0.1 from a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("run", range(3))
def test_page_renders_chinese_and_click_runs_script(page, site: str, tmp_path: Path, run: int) -> None:  # noqa: F811
    page.goto(site)
    assert page.title() == TITLE
    assert page.locator("#title").text_content() == TITLE
    assert page.evaluate("navigator.language") == "zh-CN"
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Asia/Shanghai"

    # Real glyphs, not "tofu" boxes: two different characters look different (missing glyphs are drawn
    # as identical boxes), and a font was found for them (without a CJK font it is only DejaVu Sans).
    assert page.locator("#zhi").screenshot() != page.locator("#fa").screenshot()
    fonts = platform_fonts(page, "#title")
    assert sum(fonts.values()) == len(TITLE), fonts
    assert set(fonts) - {"DejaVu Sans", "DejaVu Serif", "Liberation Sans"}, f"no CJK font drew the title: {fonts}"

    page.get_by_role("button", name="扫码").click()
    assert page.locator("#status").text_content() == "已扫码：zh-CN"

    png = page.screenshot(full_page=True)
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("page", ["phone"], indirect=True)
def test_phone_viewport_by_indirect_parametrization(page, site: str) -> None:  # noqa: F811
    page.goto(site)
    assert page.evaluate("[innerWidth, innerHeight]") == [390, 844]
    page.locator("#go").tap()
    assert page.locator("#status").text_content() == "已扫码：zh-CN"


def test_phone_page_fixture(phone_page, site: str) -> None:  # noqa: F811
    phone_page.goto(site)
    assert phone_page.evaluate("[innerWidth, innerHeight, devicePixelRatio]") == [390, 844, 2]
    assert phone_page.evaluate("navigator.maxTouchPoints") > 0


def test_save_screenshot(page, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("tests.support.browser.SCREENSHOT_DIR", tmp_path / "shots")
    page.goto(site)
    path = save_screenshot(page, "tests/system/x.py::test[a b]")
    assert path.parent == tmp_path / "shots" and path.name == "tests_system_x.py_test_a_b.png"
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_screenshots_stay_out_of_the_repository_unless_refreshing_docs(page, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.delenv(REFRESH_DOCS_ENV, raising=False)
    monkeypatch.delenv("FE_TEST_SCREENSHOT_DIR", raising=False)
    page.goto(site)
    from tests.support import browser as support

    assert not support.SCREENSHOT_DIR.resolve().is_relative_to(repo)  # the default is a temporary folder
    monkeypatch.setattr(support, "SCREENSHOT_DIR", tmp_path / "shots")
    monkeypatch.setattr(support, "DOCS_DIR", tmp_path / "docs")
    assert keep_screenshot(page, "dashboard") == tmp_path / "shots" / "dashboard.png"
    assert not (tmp_path / "docs").exists()
    monkeypatch.setenv(REFRESH_DOCS_ENV, "1")  # only scripts/screenshots.sh sets it
    assert keep_screenshot(page, "dashboard") == tmp_path / "docs" / "dashboard.png"
    assert (tmp_path / "docs" / "dashboard.png").read_bytes().startswith(PNG_MAGIC)


def test_launch_time(site: str, record_property: pytest.RecordProperty) -> None:
    """Three fresh launches of Chromium (the shared Playwright driver may already be running)."""
    launches = []
    for _ in range(3):
        t0 = time.monotonic()
        with launch_browser() as b:
            launched = time.monotonic() - t0
            context = b.new_context()
            p = context.new_page()
            p.goto(site)
            assert p.locator("#title").text_content() == TITLE
            context.close()
        launches.append(launched)
    record_property("chromium_launch_seconds", launches)
    record_property("playwright_driver_start_seconds", driver_start_seconds())
    print(
        f"{CHROMIUM} launch: " + ", ".join(f"{s:.2f} s" for s in launches)
        + f"; Playwright driver start: {driver_start_seconds():.2f} s"
    )
    # Only a guard against a hang (Playwright's own launch timeout is 30 s): timing is reported, not tested.
    assert max(launches) < 30
