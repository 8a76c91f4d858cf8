"""Security headers on every kind of answer; pages that run no inline script; the session cookie Secure over HTTPS."""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from server import db as dbmod
from server.app import create_app
from server.console.auth import add_user
from server.settings import ServerSettings
from server.storage.engine import Tx
from tests.server.conftest import PLAIN, Api, password, password_hash

#: The pages of the console, and who opens them (None: no session).
PAGES = [("/login", None), ("/login?lang=en", None), ("/enterprise", None), ("/", "sup"), ("/", "admin-SAMR"), ("/officer", "OFF-SAMR-1"), ("/enterprise", "ent-plain")]


def csp_directives(value: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    out: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_security_headers(r: object) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    csp = csp_directives(headers.get("content-security-policy", ""))
    assert csp.get("default-src") == ["'self'"], csp
    assert csp.get("script-src") == ["'self'"], csp  # no 'unsafe-inline', no 'unsafe-eval', no CDN
    assert csp.get("object-src") == ["'none'"] and csp.get("base-uri") == ["'none'"], csp
    assert csp.get("frame-ancestors") == ["'none'"] and csp.get("form-action") == ["'self'"], csp
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") in ("no-referrer", "same-origin")


class _Scripts(html.parser.HTMLParser):
    """Collects what would run in a page: inline scripts, event-handler attributes, javascript: links."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.sources: list[str] = []
        self.handlers: list[str] = []
        self._in_inline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.handlers += [f"{tag} {k}" for k, v in attrs if k.startswith("on") or (v or "").strip().lower().startswith("javascript:")]
        if tag == "script":
            if a.get("src"):
                self.sources.append(a["src"] or "")
            elif a.get("type") != "application/json":
                self._in_inline = True

    def handle_endtag(self, tag: str) -> None:
        self._in_inline = False

    def handle_data(self, data: str) -> None:
        if self._in_inline:
            self.inline.append(data)


def scripts_of(page: str) -> _Scripts:
    p = _Scripts()
    p.feed(page)
    return p


@pytest.mark.parametrize(("path", "user"), PAGES)
def test_pages_carry_the_headers_and_run_no_inline_script(api: Api, path: str, user: str | None) -> None:
    r = api.as_(user).get(path) if user else api.client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
    assert_security_headers(r)
    found = scripts_of(r.text)
    assert found.inline == [] and found.handlers == [], (path, found.inline, found.handlers)
    assert found.sources, path
    for src in found.sources:  # every script is this server's own file, and is there
        assert src.startswith("/static/"), src
        js = api.client.get(src)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"], src
        assert_security_headers(js)


def test_api_answers_errors_and_files_carry_the_headers(api: Api) -> None:
    answers = [
        api.get("/api/v1/auth/me"),  # JSON
        api.client.get("/health"),
        api.client.get("/api/v1/inspections"),  # 401
        api.as_("OFF-SAMR-1").get("/api/v1/alerts"),  # 403
        api.client.get("/no/such/page"),  # 404 outside every route
        api.client.get("/static/no-such-file.js"),  # 404 from the static files
        api.client.get("/static/console.css"),
        api.client.get("/schema"),
        api.client.get("/schema/openapi.json"),
        api.get(f"/api/v1/enterprises/{PLAIN}/qr.png"),
        api.as_("OFF-SAMR-1").post("/api/v1/inspections/x/end", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}),  # 413
    ]
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 404, 404, 200, 200, 200, 200, 413]
    for r in answers:
        assert_security_headers(r)


def test_a_hostile_officer_id_cannot_break_out_of_the_page_data(seeded_db: Path) -> None:
    hostile = '</script><script>alert(1)</script><!--'
    con = dbmod.connect(seeded_db)
    try:
        add_user(Tx(con), "mallory", password("mallory"), "officer", agency_id="SAMR", officer_id=hostile, password_hash=password_hash("mallory"))
    finally:
        con.close()
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False))) as client:
        page = Api(client, "mallory").get("/officer").text
    found = scripts_of(page)
    assert found.inline == [] and "alert(1)" not in "".join(found.sources), found.inline
    assert "<script>alert(1)" not in page


@pytest.fixture
def https_client(seeded_db: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The app as reached over HTTPS (e.g. behind a TLS proxy the server trusts)."""
    with TestClient(create_app(ServerSettings(db_path=seeded_db, mqtt_enabled=False, jobs_enabled=False)), base_url="https://fe.example") as c:
        yield c


def _login_cookie(client: TestClient) -> str:  # type: ignore[type-arg]
    r = client.post("/api/v1/auth/login", json={"username": "sup", "password": password("sup")})
    assert r.status_code == 200, r.text
    assert_security_headers(r)
    return r.headers["set-cookie"].lower()


def test_the_session_cookie_is_secure_over_https(https_client: TestClient) -> None:  # type: ignore[type-arg]
    cookie = _login_cookie(https_client)
    assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_the_session_cookie_works_over_plain_http_on_a_closed_network(api: Api) -> None:
    # Over plain HTTP a Secure cookie would never be sent back: sign-in would silently fail.
    cookie = _login_cookie(api.client)
    assert "; secure" not in cookie and "httponly" in cookie
