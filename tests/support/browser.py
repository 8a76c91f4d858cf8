"""A real browser for tests of the server's web pages: Debian's Chromium, driven by Playwright.

Playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (Debian's package, installed
by scripts/setup.sh) through ``executable_path``. Use the fixtures by importing them into a test module::

    from tests.support.browser import browser, page, phone_page  # noqa: F401  (pytest fixtures)

    def test_home(page):
        page.goto(url)

* ``browser`` (session): one headless Chromium for the whole run (shared by every module that imports it).
* ``page`` (function): a page in a fresh context (own cookies and storage) with locale zh-CN and time zone
  Asia/Shanghai, desktop-size. Parametrize it indirectly for other sizes or options:
  ``@pytest.mark.parametrize("page", ["phone"], indirect=True)`` or ``[{"viewport": {...}}]``.
* ``phone_page`` (function): the same with a phone viewport (390x844, touch, mobile).

If a test using ``page``/``phone_page`` fails, a full-page screenshot goes to ``$FE_TEST_SCREENSHOT_DIR``
(default ``fe-test-screenshots/`` in the system's temporary folder: tests never write into the repository;
the README's pictures in ``docs/`` are refreshed only by ``scripts/screenshots.sh``) and the page's console
errors are printed in the test's report.

``ConsoleLog(context)`` collects the console errors, uncaught page errors and Content-Security-Policy
violations of every page of a context, for tests that must fail on any of them.

When Chromium (or the ``playwright`` package) is missing the tests are skipped with the reason, except
under CI (``CI=true``), where they fail: a missing install must never pass silently.

Chromium/Playwright facts these helpers rely on (checked with Chromium 156 from bookworm-security and
playwright 1.65):

* Playwright refuses ``--user-data-dir`` in ``args`` for ``launch()``; it makes a fresh profile itself
  (``playwright_chromiumdev_profile-*`` under the driver's ``TMPDIR``) and deletes it on ``close()``. The
  driver is started with ``TMPDIR`` pointing into a private temp folder, so every profile and artifact
  lands there and the folder is removed even if Chromium crashed.
* Only one sync Playwright driver may be running per thread ("using Playwright Sync API inside the
  asyncio loop" otherwise), so all browsers of the process share one refcounted driver.
* Run as root, Chromium needs ``--no-sandbox``. On a closed network the background-networking flags keep
  it from trying (and failing) to reach Google's services.
* ``/usr/bin/chromium`` is Debian's shell wrapper; it sources ``/etc/chromium.d/*`` and ``exec``\\ s
  ``/usr/lib/chromium/chromium``. It may print ``[: ...: unexpected operator`` on stderr when
  ``/dev/shm`` is mounted twice (``findmnt`` prints two lines): harmless.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

CHROMIUM = os.environ.get("FE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",  # we run as root
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT_DIR = Path(os.environ.get("FE_TEST_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "fe-test-screenshots"))
#: The README's pictures; written only when FE_REFRESH_DOCS=1 (set by scripts/screenshots.sh).
DOCS_DIR = _ROOT / "docs"
REFRESH_DOCS_ENV = "FE_REFRESH_DOCS"

LOCALE = "zh-CN"
TIMEZONE = "Asia/Shanghai"
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
#: Playwright's default of 30 s per action makes a broken page slow to fail.
ACTION_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 15_000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_browser() -> None:
    """Skip the test (fail it under CI) unless Chromium and the ``playwright`` package are installed."""
    problems = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"{CHROMIUM} is missing (Debian package `chromium`; run scripts/setup.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package `playwright` is not installed in this environment")
    if problems:
        reason = "real-browser tests need Chromium: " + "; ".join(problems)
        if in_ci():
            pytest.fail(reason + " (CI=true: failing instead of skipping)", pytrace=False)
        pytest.skip(reason)


class _Driver:
    """The process's one Playwright driver (a node subprocess), started on first use, stopped when the
    last user releases it. Its TMPDIR is a private folder, removed at stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._playwright: Playwright | None = None
        self._tmp: str | None = None
        self._owner: int | None = None
        #: Seconds the last start of the driver took.
        self.start_seconds: float | None = None

    def acquire(self) -> Playwright:
        from playwright.sync_api import sync_playwright

        with self._lock:
            if self._playwright is None:
                tmp = tempfile.mkdtemp(prefix="fe-browser-")
                t0 = time.monotonic()
                try:
                    # The driver copies os.environ when it starts; Chromium inherits the driver's env.
                    with mock.patch.dict(os.environ, {"TMPDIR": tmp}):
                        self._playwright = sync_playwright().start()
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                self.start_seconds = time.monotonic() - t0
                self._tmp, self._owner = tmp, threading.get_ident()
            elif self._owner != threading.get_ident():
                raise RuntimeError("the Playwright sync driver can only be used from the thread that started it")
            self._users += 1
            return self._playwright

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._playwright is None:
                return
            playwright, tmp = self._playwright, self._tmp
            self._playwright = self._tmp = self._owner = None
            try:
                playwright.stop()
            finally:
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)


_driver = _Driver()


def driver_start_seconds() -> float | None:
    """How long starting the Playwright driver took (None before the first start)."""
    return _driver.start_seconds


@contextmanager
def launch_browser(**launch_kwargs: Any) -> Iterator[Browser]:
    """A headless Debian Chromium (``CHROMIUM`` with ``CHROMIUM_ARGS``, fresh profile in a private temp
    folder), closed and cleaned up on exit. Skips (fails under CI) when the browser is not installed.
    ``launch_kwargs`` go to Playwright's ``chromium.launch`` (``args`` are appended to ``CHROMIUM_ARGS``)."""
    require_browser()
    extra_args = list(launch_kwargs.pop("args", ()))
    playwright = _driver.acquire()
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args], **launch_kwargs
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        _driver.release()


def context_options(kind: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """Options for ``browser.new_context``: zh-CN, Asia/Shanghai, and ``"desktop"`` (default), ``"phone"``,
    or a dict (merged over the desktop defaults, e.g. ``{**PHONE, "locale": "en-US"}``)."""
    options: dict[str, Any] = {"locale": LOCALE, "timezone_id": TIMEZONE, **DESKTOP}
    if kind is None or kind == "desktop":
        pass
    elif kind == "phone":
        options.update(PHONE)
    elif isinstance(kind, dict):
        options.update(kind)
    else:
        raise ValueError(f"unknown page kind {kind!r}: use 'desktop', 'phone' or a dict of context options")
    return options


def new_context(browser: Browser, kind: str | dict[str, Any] | None = None) -> BrowserContext:
    context = browser.new_context(**context_options(kind))
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    return context


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of ``page`` in ``SCREENSHOT_DIR`` (``name`` is made file-name safe)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:150] + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def refreshing_docs() -> bool:
    """Whether this run refreshes the README's pictures (``FE_REFRESH_DOCS=1``, set by scripts/screenshots.sh)."""
    return os.environ.get(REFRESH_DOCS_ENV, "") == "1"


def keep_screenshot(page: Page, name: str) -> Path:
    """A screenshot worth looking at: into ``docs/`` when refreshing the README's pictures, else into
    ``SCREENSHOT_DIR`` (a temporary folder), so that running the tests never changes a tracked file."""
    if not refreshing_docs():
        return save_screenshot(page, name)
    DOCS_DIR.mkdir(exist_ok=True)
    path = DOCS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class ConsoleLog:
    """What the pages of one browser context reported: console errors, uncaught page errors, and the
    Content-Security-Policy violations among them (Chromium reports each one as a console error)."""

    CSP_MARKER = "Content Security Policy"

    def __init__(self, context: BrowserContext) -> None:
        self.errors: list[str] = []
        self.page_errors: list[str] = []
        context.on("page", self._watch)
        for page in context.pages:
            self._watch(page)

    def _watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    @property
    def csp_violations(self) -> list[str]:
        """The console errors that are CSP violations (a blocked script, style, image, frame or connection)."""
        return [e for e in self.errors if self.CSP_MARKER in e]

    def assert_clean(self) -> None:
        """Fail on any CSP violation or uncaught script error (HTTP errors a page handles are fine)."""
        assert not self.csp_violations and not self.page_errors, "\n".join(self.csp_violations + self.page_errors)


def platform_fonts(page: Page, selector: str) -> dict[str, int]:
    """The fonts Chromium actually used to draw the text of the first element matching ``selector``, as
    {family name: glyph count} (CDP ``CSS.getPlatformFontsForNode``). Text drawn as "tofu" boxes shows up
    under a font that lacks the characters, e.g. only ``DejaVu Sans`` for Chinese text."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        if not node:
            raise AssertionError(f"no element matches {selector!r}")
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def _failed(request: pytest.FixtureRequest, failed_before: int) -> bool:
    # tests/conftest.py keeps each phase's report on the item; the session's failure count is a fallback.
    if any(getattr(getattr(request.node, f"_fe_report_{w}", None), "failed", False) for w in ("setup", "call")):
        return True
    return request.session.testsfailed > failed_before


@contextmanager
def _page(browser: Browser, request: pytest.FixtureRequest, kind: str | dict[str, Any] | None) -> Iterator[Page]:
    failed_before = request.session.testsfailed
    context = new_context(browser, kind)
    try:
        page = context.new_page()
        console: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type in {"error", "warning"}:
                console.append(f"console.{message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        yield page
        if _failed(request, failed_before):
            lines = [f"=== browser page at failure: {page.url}"]
            try:
                lines.append(f"screenshot: {save_screenshot(page, request.node.nodeid)}")
            except Exception as e:  # noqa: BLE001 - the test's own failure matters more
                lines.append(f"screenshot failed: {e!r}")
            lines += console or ["(no console errors)"]
            print("\n".join(lines))
    finally:
        context.close()


class _SharedBrowser:
    """The session's browser. Each test module importing the ``browser`` fixture gets its own
    session-scoped fixture definition from pytest; they all share this one Chromium (refcounted)."""

    def __init__(self) -> None:
        self._users = 0
        self._cm: Any = None
        self._browser: Browser | None = None

    def acquire(self) -> Browser:
        if self._browser is None:
            cm = launch_browser()
            self._browser = cm.__enter__()
            self._cm = cm
        self._users += 1
        return self._browser

    def release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._cm is not None:
            cm, self._cm, self._browser = self._cm, None, None
            cm.__exit__(None, None, None)


_shared_browser = _SharedBrowser()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the test session."""
    b = _shared_browser.acquire()
    try:
        yield b
    finally:
        _shared_browser.release()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh zh-CN context (desktop size unless parametrized indirectly with "phone" or a
    dict of context options); screenshot and console errors reported if the test fails."""
    with _page(browser, request, getattr(request, "param", None)) as p:
        yield p


@pytest.fixture
def phone_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """Like ``page``, with a phone viewport (390x844, mobile, touch)."""
    with _page(browser, request, "phone") as p:
        yield p
