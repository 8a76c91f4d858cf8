"""The officer's door code (亮码检查, issue 16 item 3) over the API on both backends: who may ask for one, and the public
check page's answer to a real, forged, tampered, expired, superseded, ended and wrongly clocked code."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from server.console import badges
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.conftest import GOOD, PLAIN, Api
from tests.server.test_scans_api import end, scan


def badge(api: Api, inspection_id: str, officer: str = "OFF-SAMR-1", expect: int = 201) -> dict[str, Any]:  # noqa: F811
    r = api.as_(officer).post(f"/api/v1/inspections/{inspection_id}/badge")
    assert r.status_code == expect, r.text
    return r.json()


def check(api: Api, code: str, lang: str = "zh") -> Any:  # noqa: F811
    """The public page, with no session at all."""
    api.client.cookies.clear()
    return api.client.get(f"/check/{code}", params={"lang": lang} if lang != "zh" else {})


def test_an_officer_shows_a_code_and_the_enterprise_checks_it(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN, reason="食品安全日常检查")
    joined = scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    assert joined["outcome"] == "join"
    b = badge(api, d["inspection_id"])
    assert re.fullmatch(r"B1\.[A-Z2-7]{16}\.[0-9]{10}\.[A-Z2-7]{24}", b["code"])
    assert b["url"].endswith(f"/check/{b['code']}") and b["qr_data_uri"].startswith("data:image/svg+xml")
    assert b["expires_ms"] - b["issued_ms"] <= badges.LIFETIME_MS and b["lifetime_s"] == 300
    page = check(api, b["code"])
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["x-robots-tag"] == "noindex"
    text = page.text
    for words in ("亮码有效", "海淀某餐饮公司", "OFF-SAMR-1", "C-SAMR-1", "市场监管局", "消防救援支队", "C-FIRE-1", "食品安全", "常规检查", "不在无事不扰名单上", "食品安全日常检查", "有效"):
        assert words in text, words
    en = check(api, b["code"], "en")
    assert en.status_code == 200 and "Code valid" in en.text and "Market regulation" in en.text and "Fire rescue" in en.text
    again = check(api, b["code"])  # the enterprise may look again (a colleague, a reload) within the lifetime
    assert again.status_code == 200 and f'data-seen="/check/{b["code"]}/seen"' in again.text and "/static/check.js" in again.text
    mine = api.as_("OFF-SAMR-1").get(f"/api/v1/inspections/{d['inspection_id']}/badge").json()
    assert mine["code"] == b["code"] and mine["checked_ms"] is None  # opening the page is not yet a person's check
    api.client.cookies.clear()
    assert api.client.post(f"/check/{b['code']}/seen", headers={"X-Check-Seen": "1"}).status_code == 204  # what check.js sends
    mine = api.as_("OFF-SAMR-1").get(f"/api/v1/inspections/{d['inspection_id']}/badge").json()
    assert mine["checked_ms"] is not None  # the officer's page can say it was checked


def test_the_page_states_the_exception_and_the_no_disturb_list(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "12345-2026-001"})
    assert d["outcome"] == "allowed"
    page = check(api, badge(api, d["inspection_id"])["code"])
    assert page.status_code == 200
    assert "贵单位在无事不扰名单上" in page.text and "投诉举报 12345-2026-001" in page.text
    en = check(api, badge(api, d["inspection_id"])["code"], "en")
    assert "complaint or report 12345-2026-001" in en.text and "is on the no-disturb list" in en.text


def test_only_the_inspections_own_officers_get_a_code(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    r = api.as_("OFF-FIRE-1").post(f"/api/v1/inspections/{d['inspection_id']}/badge")  # another agency's officer
    assert r.status_code == 403 and "只有参加本次检查的执法人员" in r.json()["detail"]
    r = api.as_("OFF-SAMR-2").post(f"/api/v1/inspections/{d['inspection_id']}/badge")  # same agency, not taking part
    assert r.status_code == 403
    for who in ("sup", "admin-SAMR", "ent-plain"):
        assert api.as_(who).post(f"/api/v1/inspections/{d['inspection_id']}/badge").status_code == 403
    api.client.cookies.clear()
    assert api.client.post(f"/api/v1/inspections/{d['inspection_id']}/badge").status_code == 401
    r = api.as_("OFF-SAMR-1").post("/api/v1/inspections/made-up-inspection/badge")
    assert r.status_code == 404 and "不存在" in r.json()["detail"]


def test_an_ended_inspection_gets_no_code_and_its_codes_die(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    end(api, d["inspection_id"], "OFF-SAMR-1")
    r = api.as_("OFF-SAMR-1").post(f"/api/v1/inspections/{d['inspection_id']}/badge")
    assert r.status_code == 409 and "已结束" in r.json()["detail"]
    page = check(api, code)
    assert page.status_code == 409 and "检查已结束" in page.text and 'data-kind="ended"' in page.text
    assert check(api, code, "en").status_code == 409 and "has ended" in check(api, code, "en").text


def test_a_newer_code_supersedes_the_older(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    old = badge(api, d["inspection_id"])["code"]
    new = badge(api, d["inspection_id"])["code"]
    assert old != new
    page = check(api, old)
    assert page.status_code == 409 and "取代" in page.text and 'data-kind="superseded"' in page.text
    assert check(api, new).status_code == 200


@pytest.mark.parametrize("mutate", ["tag", "id", "expiry", "version", "lowercase", "truncate", "garbage", "long"])
def test_forged_and_tampered_codes_are_refused(api: Api, mutate: str) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    version, bid, exp, tag = code.split(".")
    flip = lambda s: ("B" if s[0] != "B" else "C") + s[1:]  # noqa: E731
    forged = {
        "tag": f"{version}.{bid}.{exp}.{flip(tag)}", "id": f"{version}.{flip(bid)}.{exp}.{tag}",
        "expiry": f"{version}.{bid}.{int(exp) + 86_400}.{tag}",  # a longer life, same tag
        "version": f"B2.{bid}.{exp}.{tag}", "lowercase": code.lower(), "truncate": code[:-1], "garbage": "%E4%BA%AE<script>", "long": "B1." + "A" * 190,
    }[mutate]  # fmt: skip
    page = check(api, forged)
    assert page.status_code == 400, page.text
    assert "亮码无效" in page.text and 'data-kind="forged"' in page.text and "<script>" not in page.text.split("<main", 1)[1]
    assert "Invalid code" in check(api, forged, "en").text


def test_a_code_signed_with_another_key_is_forged(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    _, bid, exp, _ = code.split(".")
    other = badges.make_code(b"\x01" * 32, bid, int(exp) * 1000)
    assert check(api, other).status_code == 400
    unknown = badges.make_code(badges.load_key(api.client.app.state.settings.key_base), "A" * 16, int(exp) * 1000)
    page = check(api, unknown)  # our key, but never issued
    assert page.status_code == 400 and "没有签发过" in page.text


def test_an_expired_code_and_a_wrong_clock(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + badges.LIFETIME_MS / 1000 + 5)  # the check comes too late
    page = check(api, code)
    assert page.status_code == 410 and "已过期" in page.text and 'data-kind="expired"' in page.text
    assert "has expired" in check(api, code, "en").text
    # a server whose clock runs an hour fast issues a code; a server with the right clock refuses it
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    fast = badge(api, d["inspection_id"])["code"]
    monkeypatch.setattr(time, "time", real)
    page = check(api, fast)
    assert page.status_code == 409 and "时钟" in page.text and 'data-kind="clock"' in page.text


def test_codes_are_rate_limited_per_officer(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    for _ in range(badges.RATE_PER_MINUTE):
        badge(api, d["inspection_id"])
    r = api.as_("OFF-SAMR-1").post(f"/api/v1/inspections/{d['inspection_id']}/badge")
    assert r.status_code == 429 and "过于频繁" in r.json()["detail"] and 1 <= int(r.headers["retry-after"]) <= 60
    # the code shown last is still good
    assert api.as_("OFF-SAMR-1").get(f"/api/v1/inspections/{d['inspection_id']}/badge").status_code == 200


def test_a_revoked_credential_gets_no_code(api: Api) -> None:  # noqa: F811
    from server import db as dbmod
    from server.storage.engine import sql

    d = scan(api, "OFF-SAMR-1", PLAIN)
    code = badge(api, d["inspection_id"])["code"]
    with dbmod.writing(api.client.app.state.settings.db) as tx:
        tx.run(sql("UPDATE officers SET revoked_ms = :now WHERE officer_id = 'OFF-SAMR-1'"), now=int(time.time() * 1000) - 1000)
    r = api.as_("OFF-SAMR-1").post(f"/api/v1/inspections/{d['inspection_id']}/badge")
    assert r.status_code == 409 and "执法证" in r.json()["detail"]
    page = check(api, code)  # the code shown before says the credential is revoked, in red, and is not "valid"
    assert page.status_code == 200 and "已吊销" in page.text and 'data-ok="no"' in page.text


@pytest.mark.parametrize("path", ["/check/" + "B" * 5000, "/check/B1.%00.x", "/check/%F0%9F%98%80", "/check/B1..."])
def test_hostile_check_addresses_get_a_4xx(api: Api, path: str) -> None:  # noqa: F811
    api.client.cookies.clear()
    r = api.client.get(path)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert api.client.get("/check/B1.AAAAAAAAAAAAAAAA.1796000000.AAAAAAAAAAAAAAAAAAAAAAAA", params={"lang": "fr"}).status_code == 400


def test_a_partner_leaving_does_not_end_the_code_of_the_officer_still_there(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", PLAIN)
    scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    fire_code = badge(api, d["inspection_id"], "OFF-FIRE-1")["code"]
    samr_code = badge(api, d["inspection_id"])["code"]
    end(api, d["inspection_id"], "OFF-FIRE-1")
    assert check(api, fire_code).status_code == 409  # the fire officer left: their code is dead
    page = check(api, samr_code)
    assert page.status_code == 200 and "已离开" in page.text  # the page says who left


def test_an_urgent_basis_awaiting_review_says_so(api: Api) -> None:  # noqa: F811
    d = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "major_risk", "reference": "燃气泄漏-现场"})
    assert d["outcome"] == "allowed" and d["pending_review"]
    page = check(api, badge(api, d["inspection_id"])["code"])
    assert page.status_code == 200 and "重大风险 燃气泄漏-现场" in page.text and "待监督机构复核" in page.text
    assert "awaiting the supervisors" in check(api, badge(api, d["inspection_id"])["code"], "en").text


def test_two_codes_asked_for_at_once_leave_one_live(api: Api, db_url: str) -> None:  # noqa: F811
    """Two requests of one officer at once (two taps, two API processes): the second waits for the first, supersedes
    its code, and only one code stays live; without the officer's lock both would stay live on PostgreSQL."""
    from server.storage import badges as rows
    from server.storage.engine import storage_for
    from tests.support.overlap import overlapping_writes

    d = scan(api, "OFF-SAMR-1", PLAIN)
    key = badges.load_key(api.client.app.state.settings.key_base)
    now = int(time.time() * 1000)
    store = storage_for(db_url)
    issue = lambda tx: badges.issue(tx, key, d["inspection_id"], "OFF-SAMR-1", now)  # noqa: E731
    first, second = overlapping_writes(store, issue, issue)
    assert (first.superseded, second.superseded) == (0, 1)
    live = store.read(lambda tx: rows.latest_of_part(tx, d["inspection_id"], "OFF-SAMR-1"))
    assert live is not None and live.superseded_ms is None and second.code.split(".")[1] == live.badge_id
    assert check(api, first.code).status_code == 409 and check(api, second.code).status_code == 200
