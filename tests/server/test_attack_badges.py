"""The officer's door code, exception choices and "my inspections" (issue 16) attacked, on both backends: a code
with a character added, another officer's code fetched, a code after its officer left and came back, a struck-off
officer browsing the register of complaints, and pages of "my inspections" asked for out of range."""

from __future__ import annotations

import time

import pytest

from server import db as dbmod
from server.storage.engine import sql
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import GOOD, PLAIN, Api
from tests.server.test_badges import badge, check
from tests.server.test_scans_api import end, scan

_REVOKE = sql("UPDATE officers SET revoked_ms = :now WHERE officer_id = :officer")


@pytest.mark.parametrize("extra", ["%0A", "%0D%0A", "%20", ".", "%00", "%E2%80%8B"])
def test_a_code_with_a_character_added_is_altered(api: Api, extra: str) -> None:  # noqa: F811
    """docs/badge.md: a code altered in any character is 400; a trailing newline used to pass the pattern's ``$``."""
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    assert check(api, code).status_code == 200
    page = check(api, code + extra)
    assert page.status_code == 400, (extra, page.status_code)


def test_an_officer_gets_only_their_own_code(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    scan(api, "OFF-FIRE-1", PLAIN, field="fire")  # a partner in the same inspection
    mine = badge(api, d["inspection_id"])["code"]
    r = api.as_("OFF-FIRE-1").get(f"/api/v1/inspections/{d['inspection_id']}/badge")
    assert r.status_code == 404 and mine not in r.text  # the partner has no code of their own yet: not A's
    theirs = badge(api, d["inspection_id"], "OFF-FIRE-1")["code"]
    assert theirs != mine and check(api, mine).status_code == 200  # B's code does not supersede A's
    for who in ("OFF-SAMR-2", "admin-SAMR", "sup", "ent-plain"):
        r = api.as_(who).get(f"/api/v1/inspections/{d['inspection_id']}/badge")
        assert r.status_code in (403, 404) and mine not in r.text and theirs not in r.text, who
    page = check(api, mine)  # the page says who showed it: the enterprise compares with the person at the door
    assert page.status_code == 200 and "OFF-SAMR-1" in page.text


def test_a_code_kept_from_an_inspection_the_officer_left_stays_dead(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    old = badge(api, d["inspection_id"])["code"]
    end(api, d["inspection_id"], "OFF-SAMR-1")
    again = scan(api, "OFF-SAMR-1", PLAIN, exception_basis={"kind": "complaint", "reference": "12345-2026-001"})
    assert check(api, old).status_code == 409  # whether or not the new scan opened a new inspection
    if again.get("inspection_id"):
        assert check(api, badge(api, again["inspection_id"])["code"]).status_code == 200
    assert check(api, old).status_code == 409


def test_a_struck_off_officer_does_not_browse_the_complaints(api: Api) -> None:  # noqa: F811
    """The exception choices name the enterprise's hotline tickets: they are for an officer who may inspect now."""
    scan(api, "OFF-SAMR-1", GOOD)
    url = "/api/v1/exception-bases/choices"
    r = api.as_("OFF-SAMR-1").get(url, params={"credit_code": GOOD, "field": "food"})
    assert r.status_code == 200 and "12345-2026-001" in r.text
    with dbmod.writing(api.client.app.state.settings.db) as tx:
        tx.run(_REVOKE, now=int(time.time() * 1000) - 1000, officer="OFF-SAMR-1")
    r = api.as_("OFF-SAMR-1").get(url, params={"credit_code": GOOD, "field": "food"})
    assert r.status_code == 403 and "12345-2026-001" not in r.text, r.text


def test_choices_refuse_an_enterprise_not_scanned_and_odd_inputs(api: Api) -> None:  # noqa: F811
    url = "/api/v1/exception-bases/choices"
    r = api.as_("OFF-SAMR-1").get(url, params={"credit_code": GOOD, "field": "food"})
    assert r.status_code == 403 and "12345" not in r.text
    for params in ({"credit_code": GOOD, "field": "fire"}, {"credit_code": "%", "field": "food"}, {"credit_code": GOOD, "field": "food", "lang": "fr"}, {"field": "food"}):
        assert api.as_("OFF-SAMR-1").get(url, params=params).status_code in (400, 403), params
    for who in ("sup", "admin-SAMR", "ent-plain"):
        assert api.as_(who).get(url, params={"credit_code": GOOD, "field": "food"}).status_code == 403, who


@pytest.mark.parametrize(
    ("query", "want"),
    [("page=0", 400), ("page=-1", 400), ("page=10001", 400), ("per_page=51", 400), ("per_page=0", 400), ("days_ago=-1", 400), ("days_ago=367", 400), ("page=10000&per_page=50", 200), ("page=abc", 400)],
)
def test_my_inspections_out_of_range(api: Api, query: str, want: int) -> None:  # noqa: F811
    scan(api, "OFF-SAMR-1", PLAIN)
    r = api.as_("OFF-SAMR-1").get(f"/api/v1/inspections/mine?{query}")
    assert r.status_code == want, (query, r.text[:200])
    if want == 200:
        assert r.json()["items"] == []


def test_my_inspections_are_only_mine(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    assert api.as_("OFF-SAMR-2").get("/api/v1/inspections/mine").json()["total"] == 0
    assert d["inspection_id"] not in api.as_("OFF-FIRE-1").get("/api/v1/inspections/mine").text
    assert api.as_("OFF-SAMR-1").get("/api/v1/inspections/mine?officer_id=OFF-SAMR-2").json()["total"] == 1
    for who in ("sup", "admin-SAMR", "ent-plain"):
        assert api.as_(who).get("/api/v1/inspections/mine").status_code == 403, who


def test_a_link_preview_does_not_mark_the_code_checked(api: Api) -> None:  # noqa: F811
    """A messaging app's link preview fetches /check/<code> (a bare GET, no script run): the officer's page must not
    say 企业已扫码核验. Only the page's own script marks it, by a POST with its header; a cross-site form (no header),
    a forged code or a code of another inspection marks nothing, and the first check's time stays the first."""
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    mine = f"/api/v1/inspections/{d['inspection_id']}/badge"
    api.client.cookies.clear()
    for agent in ("WhatsApp/2.23.20.0", "TelegramBot (like TwitterBot)", "Mozilla/5.0 MicroMessenger/8.0"):
        assert api.client.get(f"/check/{code}", headers={"User-Agent": agent}).status_code == 200
        assert api.client.head(f"/check/{code}", headers={"User-Agent": agent}).status_code in (200, 405)
    assert api.client.post(f"/check/{code}/seen").status_code == 400  # a cross-site form cannot send the header
    assert api.client.post(f"/check/{code}/seen", headers={"X-Check-Seen": "yes"}).status_code == 400
    assert api.client.post(f"/check/{code[:-1]}A/seen" if not code.endswith("A") else f"/check/{code[:-1]}B/seen", headers={"X-Check-Seen": "1"}).status_code == 400
    assert api.client.get(f"/check/{code}/seen").status_code in (404, 405)
    assert api.as_("OFF-SAMR-1").get(mine).json()["checked_ms"] is None
    api.client.cookies.clear()
    assert api.client.post(f"/check/{code}/seen", headers={"X-Check-Seen": "1"}).status_code == 204
    first = api.as_("OFF-SAMR-1").get(mine).json()["checked_ms"]
    assert first is not None
    time.sleep(0.01)
    api.client.cookies.clear()
    assert api.client.post(f"/check/{code}/seen", headers={"X-Check-Seen": "1"}).status_code == 204  # a reload
    assert api.as_("OFF-SAMR-1").get(mine).json()["checked_ms"] == first


_FIRST_CHECKED = sql("SELECT badge_id, first_checked_ms FROM badges ORDER BY issued_ms, badge_id")


def _checked(api: Api) -> list[int | None]:  # noqa: F811
    with dbmod.reading(api.client.app.state.settings.db) as tx:
        return [row[1] for row in tx.all(_FIRST_CHECKED)]


def _seen(api: Api, code: str, method: str = "POST") -> int:  # noqa: F811
    api.client.cookies.clear()
    return api.client.request(method, f"/check/{code}/seen", headers={"X-Check-Seen": "1"}).status_code


def test_a_code_the_page_refuses_is_not_marked_checked(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """check.js's POST with a replaced, an expired or an ended code is refused as the page refuses it (409, 410,
    409), and marks nothing: neither that code nor the officer's newer one; other methods on /seen mark nothing."""
    d = scan(api, "OFF-SAMR-1", PLAIN)
    old = badge(api, d["inspection_id"])["code"]
    new = badge(api, d["inspection_id"])["code"]
    assert _seen(api, old) == 409 and check(api, old).status_code == 409
    for method in ("PUT", "PATCH", "DELETE", "GET", "HEAD"):
        assert _seen(api, new, method) in (404, 405), method
    assert _checked(api) == [None, None]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 5 * 60 + 5)  # the code's five minutes are over
    assert _seen(api, new) == 410
    monkeypatch.setattr(time, "time", real)
    assert _checked(api) == [None, None]
    end(api, d["inspection_id"], "OFF-SAMR-1")
    assert _seen(api, new) == 409 and _checked(api) == [None, None]


def test_another_site_cannot_mark_a_code_checked(api: Api) -> None:  # noqa: F811
    """A hostile page's fetch with the header needs the browser's preflight: the server allows no other origin, so
    the browser never sends the POST (and a POST without the header is 400)."""
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    api.client.cookies.clear()
    preflight = api.client.options(
        f"/check/{code}/seen", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-check-seen"}
    )
    assert "access-control-allow-origin" not in preflight.headers and "access-control-allow-headers" not in preflight.headers
    r = api.client.post(f"/check/{code}/seen", headers={"Origin": "https://evil.example", "Content-Type": "text/plain"}, content=b"X-Check-Seen: 1")
    assert r.status_code == 400 and _checked(api) == [None]
