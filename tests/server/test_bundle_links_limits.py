"""Evidence bundles seen from the console: the alert page offers the export link only where the bundle API would
give the bundle (the same rule, server/evidence/bundle.may_export), and exports are limited per user per minute
(429 with Retry-After). Both backends."""

from __future__ import annotations

import re

from server.rules.alerts import raise_alert
from server.storage.engine import sql, storage_for
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import seed_inspection
from tests.server.conftest import NOW_MS, PLAIN, Api

_LAST_ALERT = sql("SELECT max(id) FROM alerts")
_JOIN = sql(
    "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, matter, joined_ms, ended_ms, result)"
    " VALUES (:id, 'OFF-FIRE-1', 'FIRE', 'fire', '', :at, :at, 'no_violation')"
)


def _alert(url: str, agency: str, inspection_id: str) -> int:
    """An alert of ``agency`` about the inspection (its ref), as the recording check raises one."""

    def write(tx):  # type: ignore[no-untyped-def]
        raise_alert(tx, "unrecorded_inspection", NOW_MS, "未全程记录", "Not recorded", agency_id=agency, credit_code=PLAIN, ref=inspection_id)
        return int(tx.scalar(_LAST_ALERT))

    return storage_for(url).write(write)


def _export_link(page: str) -> str | None:
    m = re.search(r'id="export-inspection" href="([^"]+)"', page)
    return m.group(1) if m else None


def test_the_alert_page_offers_an_export_only_where_the_bundle_api_gives_it(api: Api, seeded_url: str) -> None:  # noqa: F811
    seed_inspection(seeded_url, "INS-SAMR-ONLY")  # SAMR's inspection: FIRE took no part
    seed_inspection(seeded_url, "INS-JOINT")
    storage_for(seeded_url).write(lambda tx: tx.run(_JOIN, id="INS-JOINT", at=NOW_MS - 3600_000))  # FIRE joined this one
    theirs = _alert(seeded_url, "FIRE", "INS-SAMR-ONLY")  # FIRE's alert about an inspection it may not export
    joint = _alert(seeded_url, "FIRE", "INS-JOINT")
    fire = api.as_("admin-FIRE")
    for lang in ("zh", "en"):
        page = fire.get(f"/alerts/{theirs}?lang={lang}")
        assert page.status_code == 200 and 'id="parts"' in page.text  # the alert and its inspection are shown...
        assert _export_link(page.text) is None  # ...without a link that would be refused
    assert fire.get("/api/v1/evidence/bundles/inspection/INS-SAMR-ONLY").status_code == 403  # what the link would have met
    link = _export_link(fire.get(f"/alerts/{joint}").text)
    assert link == "/api/v1/evidence/bundles/inspection/INS-JOINT"
    assert fire.get(link).status_code == 200  # a link shown is one that works
    sup = _export_link(api.get(f"/alerts/{theirs}").text)  # a supervisor exports everything
    assert sup == "/api/v1/evidence/bundles/inspection/INS-SAMR-ONLY" and api.get(sup).status_code == 200
    assert api.as_("admin-SAMR").get(f"/alerts/{theirs}").status_code == 403  # another agency's alert: no page at all


def test_bundle_exports_are_limited_per_user_per_minute(api: Api, seeded_url: str) -> None:  # noqa: F811
    """Six a minute per user (settings.bundle_exports_per_minute): the seventh is 429 with Retry-After and a message in
    Chinese then English; refused requests (403, 404, 400) cost no count; another user has a count of their own."""
    seed_inspection(seeded_url, "INS-LIMIT")
    url = "/api/v1/evidence/bundles/inspection/INS-LIMIT"
    fire = api.as_("admin-FIRE")
    for _ in range(10):  # another agency's inspection, a made-up id, a malformed period: refused, not counted
        assert fire.get(url).status_code == 403
        assert api.get("/api/v1/evidence/bundles/inspection/NO-SUCH").status_code == 404
        assert api.get(f"/api/v1/evidence/bundles/enterprise/{PLAIN}", params={"from_ms": 5, "to_ms": 1}).status_code == 400
    for _ in range(6):  # a double click's second is just one more
        assert api.get(url).status_code == 200
    refused = api.get(url)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    detail = refused.json()["detail"]
    assert detail.index("过于频繁") < detail.index(" / ") < detail.index("too many") and "6" in detail
    assert api.get("/api/v1/evidence/bundles/case/CASE-2026-00001").status_code == 404  # not found before the limit
    assert api.get(f"/api/v1/evidence/bundles/enterprise/{PLAIN}", params={"from_ms": NOW_MS - 3600_000, "to_ms": NOW_MS}).status_code == 429  # every kind
    assert api.as_("admin-SAMR").get(url).status_code == 200  # another user's own count


def test_the_limit_counts_a_sliding_minute() -> None:
    from server.console.limits import PerUserRate
    from server.errors import TooManyRequests

    limit = PerUserRate(2, ("导出证据包", "evidence bundles exported"))
    limit.check("a", 0)
    limit.check("a", 30_000)
    try:
        limit.check("a", 40_000)
        raise AssertionError("a third in a minute")
    except TooManyRequests as e:
        assert e.headers == {"Retry-After": "20"}  # the first leaves the window at 60 s
    limit.check("b", 40_000)
    limit.check("a", 60_000)  # the first has left the window
    try:
        limit.check("a", 60_001)
        raise AssertionError("still two in the window")
    except TooManyRequests as e:
        assert e.headers == {"Retry-After": "30"}
