"""Every kind of answer to a phone's scan, through the HTTP API over a real database, on both backends."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from protocol import enterprise_code
from protocol.signing import SigningKey
from server.app import create_app
from server.settings import ServerSettings
from tests.server.conftest import FRAGILE, GOOD, PLAIN, UNREGISTERED, Api


@pytest.fixture
def api(seeded_url: str, tmp_path: Path) -> Iterator[Api]:
    """The HTTP API over the seeded registers on each backend (no MQTT, no jobs), signed in as the supervisor."""
    settings = ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False)
    with TestClient(create_app(settings)) as c:
        yield Api(c)


def qr(api: Api, credit_code: str) -> str:  
    r = api.get(f"/api/v1/enterprises/{credit_code}/qr.txt")
    assert r.status_code == 200, r.text
    return r.text


def scan(api: Api, officer: str, credit_code: str, field: str = "food", **extra: Any) -> dict[str, Any]:  
    r = api.as_(officer).post("/api/v1/scans", json={"officer_id": officer, "code_text": qr(api, credit_code), "field": field, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def end(api: Api, inspection_id: str, officer: str, result: str = "no_violation") -> dict[str, Any]:  
    r = api.as_(officer).post(f"/api/v1/inspections/{inspection_id}/end", json={"officer_id": officer, "result": result})
    assert r.status_code == 200, r.text
    return r.json()


def test_allowed_opens_an_inspection(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", PLAIN)
    assert (d["outcome"], d["code"]) == ("allowed", "allowed")
    assert "可以对“海淀某餐饮公司”开展检查" in d["message_zh"] and d["message_en"].startswith("You may inspect")
    assert d["enterprise_name"] == "海淀某餐饮公司" and d["credit_code"] == PLAIN
    insp = api.get(f"/api/v1/inspections/{d['inspection_id']}").json()
    assert insp["status"] == "open" and insp["lead_agency_id"] == "SAMR" and [p["officer_id"] for p in insp["parts"]] == ["OFF-SAMR-1"]


def test_second_agency_joins_the_inspection_under_way(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", PLAIN)
    second = scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    assert (second["outcome"], second["code"]) == ("join", "join")
    assert second["inspection_id"] == first["inspection_id"] and second["joined_agency_id"] == "SAMR"
    assert "市场监管局正在对" in second["message_zh"] and "综合查一次" in second["message_zh"]
    insp = end(api, first["inspection_id"], "OFF-SAMR-1")
    assert insp["status"] == "open"  # the fire officer is still at work
    insp = end(api, first["inspection_id"], "OFF-FIRE-1", "rectification_ordered")
    assert insp["status"] == "ended" and {p["result"] for p in insp["parts"]} == {"no_violation", "rectification_ordered"}


def test_repeat_within_the_window_needs_an_exception(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", PLAIN)
    end(api, first["inspection_id"], "OFF-SAMR-1")
    again = scan(api, "OFF-FIRE-1", PLAIN, field="food")
    assert (again["outcome"], again["code"]) == ("repeat", "repeat")
    assert "市场监管局已于" in again["message_zh"] and "30 天内重复检查须说明例外依据" in again["message_zh"]
    other_field = scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    assert other_field["outcome"] == "allowed"  # a different matter is not a repeat
    # and it is the second visit in a day: a frequency warning
    assert [w["code"] for w in other_field["warnings"]] == ["frequency_day"]


def test_no_disturb_list_refuses_without_a_valid_exception(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD)
    assert (d["outcome"], d["code"]) == ("refused", "no_disturb")
    assert "无事不扰" in d["message_zh"] and "A级纳税信用" in d["message_zh"]
    assert d["inspection_id"] is None
    closed = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "12345-2026-002"})
    assert (closed["outcome"], closed["code"]) == ("refused", "exception_invalid") and "已办结" in closed["message_zh"]
    missing = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "NOPE"})
    assert missing["code"] == "exception_invalid" and "未登记" in missing["message_zh"]
    ok = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "12345-2026-001"})
    assert (ok["outcome"], ok["code"], ok["exception_used"]) == ("allowed", "allowed_exception", True)
    insp = api.get(f"/api/v1/inspections/{ok['inspection_id']}").json()
    assert (insp["exception_kind"], insp["exception_ref"]) == ("complaint", "12345-2026-001")


def test_random_draw_exception_is_checked_against_the_plan(api: Api) -> None:
    other_agency = scan(api, "OFF-FIRE-1", GOOD, exception_basis={"kind": "random_draw", "reference": "PLAN-2026-Q4"})
    assert other_agency["code"] == "exception_invalid" and "属于其他执法机关" in other_agency["message_zh"]
    drawn = scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "random_draw", "reference": "PLAN-2026-Q4"})
    assert drawn["code"] == "allowed_exception"


@pytest.mark.parametrize(
    ("officer", "field", "code", "words"),
    [
        ("NOBODY", "food", "credential_missing", "无有效执法证"),
        ("OFF-EXPIRED", "food", "credential_expired", "已于"),
        ("OFF-FUTURE", "food", "credential_not_yet_valid", "尚未生效"),
        ("OFF-REVOKED", "food", "credential_revoked", "已被吊销"),
        ("OFF-SAMR-1", "fire", "credential_field", "不涵盖执法领域“消防安全”"),
    ],
)
def test_credential_problems_refuse(api: Api, officer: str, field: str, code: str, words: str) -> None:  
    d = scan(api, officer, PLAIN, field=field)
    assert (d["outcome"], d["code"]) == ("refused", code)
    assert words in d["message_zh"] and d["message_en"]


def test_yearly_cap_of_the_band(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", FRAGILE)  # low risk, credit A: 1 a year
    end(api, first["inspection_id"], "OFF-SAMR-1")
    d = scan(api, "OFF-FIRE-1", FRAGILE, field="fire")
    assert (d["outcome"], d["code"]) == ("refused", "cap_reached")
    assert "上限 1 次" in d["message_zh"]


def test_codes_that_are_not_genuine_are_refused_with_their_reason(api: Api) -> None:
    genuine = qr(api, PLAIN)
    forged_key = enterprise_code.issue(PLAIN, SigningKey.generate(), "K1", dt.date.today())
    unknown_key = enterprise_code.issue(PLAIN, SigningKey.generate(), "K9", dt.date.today())
    altered = genuine.replace(PLAIN, FRAGILE)
    cases = [(forged_key, "code_altered"), (unknown_key, "code_unknown_key"), (altered, "code_altered"), ("https://example.com/x", "code_not_ours")]
    for text, code in cases:
        r = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"officer_id": "OFF-SAMR-1", "code_text": text, "field": "food"})
        assert r.status_code == 200 and (r.json()["outcome"], r.json()["code"]) == ("refused", code), (text, r.json())
    assert api.post(f"/api/v1/enterprises/{PLAIN}/qr/revoke", json={"reason": "贴纸遗失"}).json() == {"revoked": 1}
    r = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"officer_id": "OFF-SAMR-1", "code_text": genuine, "field": "food"}).json()
    assert r["code"] == "code_revoked" and "作废" in r["message_zh"]


def test_unregistered_enterprise_cannot_get_a_code(api: Api) -> None:
    r = api.get(f"/api/v1/enterprises/{UNREGISTERED}/qr.png")
    assert r.status_code == 404 and "registered" in r.text
    assert api.get("/api/v1/enterprises/12345/qr.svg").status_code == 400


def test_an_officer_back_at_a_joint_inspection_still_open_rejoins_and_can_end_again(api: Api) -> None:
    """An officer who ended their part scans again while another agency's part keeps the inspection open: they join
    it again (their part reopened), and their next end is accepted (it was refused as unknown before)."""
    first = scan(api, "OFF-SAMR-1", PLAIN)
    assert scan(api, "OFF-FIRE-1", PLAIN, field="fire")["outcome"] == "join"
    end(api, first["inspection_id"], "OFF-SAMR-1")
    again = scan(api, "OFF-SAMR-1", PLAIN)
    assert (again["outcome"], again["inspection_id"]) == ("join", first["inspection_id"])
    insp = api.get(f"/api/v1/inspections/{first['inspection_id']}").json()
    assert insp["status"] == "open" and [p["ended_ms"] for p in insp["parts"]] == [None, None]
    end(api, first["inspection_id"], "OFF-SAMR-1", "rectification_ordered")
    end(api, first["inspection_id"], "OFF-FIRE-1")
    insp = api.get(f"/api/v1/inspections/{first['inspection_id']}").json()
    assert insp["status"] == "ended" and sorted(p["result"] for p in insp["parts"]) == ["no_violation", "rectification_ordered"]
    assert scan(api, "OFF-SAMR-2", PLAIN)["outcome"] != "join"  # an ended inspection is never joined


def test_two_agencies_scanning_at_the_same_moment_share_one_inspection(api: Api) -> None:
    text = qr(api, PLAIN)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def go(officer: str, field: str) -> None:
        barrier.wait()
        results.append(api.as_(officer).post("/api/v1/scans", json={"officer_id": officer, "code_text": text, "field": field}).json())

    for officer in ("OFF-SAMR-1", "OFF-FIRE-1"):
        api.as_(officer).get("/api/v1/auth/me")  # sign in before the race
    threads = [threading.Thread(target=go, args=("OFF-SAMR-1", "food")), threading.Thread(target=go, args=("OFF-FIRE-1", "fire"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["outcome"] for r in results) == ["allowed", "join"]
    assert len({r["inspection_id"] for r in results}) == 1
    assert len(api.get("/api/v1/inspections", params={"credit_code": PLAIN}).json()) == 1


def test_same_scan_id_is_decided_once(api: Api) -> None:
    a = scan(api, "OFF-SAMR-1", PLAIN, scan_id="phone-retry-0001")
    b = scan(api, "OFF-SAMR-1", PLAIN, scan_id="phone-retry-0001")
    assert a == b
    assert len(api.get("/api/v1/inspections").json()) == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"officer_id": "OFF-SAMR-1", "field": "food"}, 400, "exactly one of code_text and photo_base64"),
        ({"officer_id": "OFF-SAMR-1", "field": "food", "code_text": "x", "photo_base64": "eA=="}, 400, "exactly one"),
        ({"officer_id": "OFF-SAMR-1", "field": "food", "photo_base64": "***"}, 400, "not valid base64"),
        ({"officer_id": "OFF-SAMR-1", "field": "food", "photo_base64": "aGVsbG8="}, 422, "not_an_image"),
        ({"officer_id": "OFF-SAMR-1", "code_text": "x"}, 400, "field"),
        ({"officer_id": "OFF-SAMR-1", "field": "food", "code_text": "x", "colour": "red"}, 400, "colour"),
        ({"officer_id": "OFF-SAMR-1", "field": "food", "code_text": "x", "exception_basis": {"kind": "whim", "reference": "r"}}, 400, "kind"),
    ],
)
def test_bad_scan_requests_get_a_reason(api: Api, body: dict[str, Any], status: int, words: str) -> None:  
    r = api.as_("OFF-SAMR-1").post("/api/v1/scans", json=body)
    assert r.status_code == status, r.text
    assert words in r.text


def test_ending_someone_elses_part_is_refused(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", PLAIN)
    r = api.as_("OFF-FIRE-1").post(f"/api/v1/inspections/{d['inspection_id']}/end", json={"officer_id": "OFF-FIRE-1", "result": "no_violation"})
    assert r.status_code == 409 and "no open part" in r.text
    assert api.as_("OFF-SAMR-1").post("/api/v1/inspections/nope/end", json={"officer_id": "OFF-SAMR-1", "result": "no_violation"}).status_code == 404
    bad = api.as_("OFF-SAMR-1").post(f"/api/v1/inspections/{d['inspection_id']}/end", json={"officer_id": "OFF-SAMR-1", "result": "fine"})
    assert bad.status_code == 400 and "result" in bad.text


def test_qr_images(api: Api) -> None:
    png = api.get(f"/api/v1/enterprises/{PLAIN}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = api.get(f"/api/v1/enterprises/{PLAIN}/qr.svg")
    assert svg.status_code == 200 and "海淀某餐饮公司" in svg.text and svg.text.startswith("<svg")


def test_photo_of_the_code_as_base64_and_as_an_upload(api: Api) -> None:
    import base64
    import io

    from PIL import Image, ImageFilter

    png = api.get(f"/api/v1/enterprises/{PLAIN}/qr.png").content
    # a phone photo: rotated, blurred, on a grey background, JPEG-compressed
    img = Image.open(io.BytesIO(png)).convert("L").rotate(12, expand=True, fillcolor=140).filter(ImageFilter.GaussianBlur(1))
    canvas = Image.new("L", (1600, 1200), 150)
    canvas.paste(img, (500, 300))
    jpeg = io.BytesIO()
    canvas.save(jpeg, format="JPEG", quality=60)
    d = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"officer_id": "OFF-SAMR-1", "field": "food", "photo_base64": base64.b64encode(jpeg.getvalue()).decode()})
    assert d.status_code == 200 and d.json()["outcome"] == "allowed", d.text
    up = api.as_("OFF-FIRE-1").post(
        "/api/v1/scans/photo",
        files={"photo": ("door.jpg", jpeg.getvalue(), "image/jpeg")},
        data={"officer_id": "OFF-FIRE-1", "field": "fire"},
    )
    assert up.status_code == 200 and up.json()["outcome"] == "join", up.text
    blank = io.BytesIO()
    Image.new("L", (300, 300), 255).save(blank, format="PNG")
    none = api.as_("OFF-FIRE-1").post("/api/v1/scans/photo", files={"photo": ("x.png", blank.getvalue(), "image/png")}, data={"officer_id": "OFF-FIRE-1", "field": "fire"})
    assert none.status_code == 422 and "no_code" in none.text
    no_file = api.as_("OFF-FIRE-1").post("/api/v1/scans/photo", data={"officer_id": "OFF-FIRE-1", "field": "fire"})
    assert no_file.status_code == 400


def test_a_code_with_other_scripts_digits_is_refused_not_a_server_error(api: Api) -> None:
    genuine = qr(api, PLAIN)
    arabic_indic = genuine.replace("2", "\u0662")  # looks like a digit to a regex's \d, is not ASCII
    r = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"code_text": arabic_indic, "field": "food"})
    assert r.status_code == 200 and (r.json()["outcome"], r.json()["code"]) == ("refused", "code_not_ours")
