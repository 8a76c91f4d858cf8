"""Body limits: a phone's photo of several megabytes is scanned on every photo route; everything else keeps
the 1 MiB limit; whatever is too large gets a Chinese-first 413 that states the limit."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from server.console.limits import MAX_PHOTO_BYTES, MAX_REQUEST_BODY, MIB
from tests.server.conftest import PLAIN, Api
from tests.support.photos import camera_photo

OFFICER = "OFF-SAMR-1"
CHINESE_FIRST = re.compile(r"^[\u4e00-\u9fff]")
#: A real camera's JPEG: what the app-wide 1 MiB limit refused.
PHONE_PHOTO_MIN_BYTES = 5_000_000


def door_photo(api: Api) -> bytes:
    """A 12 MP, 5+ MB camera photo of the plain enterprise's door code."""
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    photo = camera_photo(text, min_bytes=PHONE_PHOTO_MIN_BYTES)
    assert len(photo) >= PHONE_PHOTO_MIN_BYTES
    return photo


def assert_chinese_413(r: object, limit_text: str) -> str:
    assert r.status_code == 413, r.text  # type: ignore[attr-defined]
    detail: str = r.json()["detail"]  # type: ignore[attr-defined]
    assert CHINESE_FIRST.match(detail), detail
    assert limit_text in detail and "/" in detail, detail  # the limit stated, English after the Chinese
    assert "Request Entity Too Large" not in detail
    return detail


def test_a_camera_photo_is_scanned_as_json_base64(api: Api) -> None:
    photo = door_photo(api)
    r = api.as_(OFFICER).post("/api/v1/scans", json={"field": "food", "photo_base64": base64.b64encode(photo).decode()})
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["credit_code"]) == ("allowed", PLAIN)


def test_a_camera_photo_is_scanned_as_a_multipart_upload(api: Api) -> None:
    photo = door_photo(api)
    r = api.as_(OFFICER).post("/api/v1/scans/photo", files={"photo": ("IMG_0001.jpg", photo, "image/jpeg")}, data={"field": "food"})
    assert r.status_code == 200, r.text
    assert (r.json()["outcome"], r.json()["credit_code"]) == ("allowed", PLAIN)


def test_a_camera_photo_opens_the_enterprise_page(api: Api) -> None:
    photo = door_photo(api)
    r = api.client.post("/api/v1/enterprise-view", json={"photo_base64": base64.b64encode(photo).decode()})
    assert r.status_code == 200, r.text
    assert r.json()["credit_code"] == PLAIN


@pytest.mark.parametrize(
    ("path", "user"), [("/api/v1/inspections/x/end", OFFICER), ("/api/v1/auth/login", OFFICER), ("/api/v1/enterprises/x/qr/revoke", "admin-SAMR")]
)  # each as a user the route's role guard lets in (a guard answers before the body is read)
def test_other_routes_keep_the_1_mib_limit_with_a_chinese_answer(api: Api, path: str, user: str) -> None:
    body = b'{"result": "' + b"x" * int(1.1 * MIB) + b'"}'
    assert len(body) > MAX_REQUEST_BODY
    r = api.as_(user).post(path, content=body, headers={"Content-Type": "application/json"})
    detail = assert_chinese_413(r, "1 MB")
    assert "请求内容太大" in detail


def test_a_16_mib_photo_is_refused_in_chinese_on_every_photo_route(api: Api) -> None:
    big = b"\xff\xd8\xff\xe0" + bytes(16 * MIB)  # a JPEG's start; the size is refused before anything is decoded
    officer = api.as_(OFFICER)
    multipart = officer.post("/api/v1/scans/photo", files={"photo": ("big.jpg", big, "image/jpeg")}, data={"field": "food"})
    as_json = officer.post("/api/v1/scans", json={"field": "food", "photo_base64": base64.b64encode(big).decode()})
    enterprise = api.client.post("/api/v1/enterprise-view", json={"photo_base64": base64.b64encode(big).decode()})
    for r in (multipart, as_json, enterprise):
        assert "照片太大" in assert_chinese_413(r, "15 MB")


def test_a_photo_just_over_the_limit_is_refused_even_within_the_forms_margin(api: Api) -> None:
    # The form's body limit leaves room for the other fields; the photo itself is still held to 15 MiB.
    over = b"\xff\xd8\xff\xe0" + bytes(MAX_PHOTO_BYTES)
    r = api.as_(OFFICER).post("/api/v1/scans/photo", files={"photo": ("over.jpg", over, "image/jpeg")}, data={"field": "food"})
    assert "照片太大" in assert_chinese_413(r, "15 MB")


def test_a_photo_route_still_needs_a_session_before_any_size_check(api: Api) -> None:
    photo = b"\xff\xd8\xff\xe0" + bytes(2 * MIB)
    r = api.client.post("/api/v1/scans/photo", files={"photo": ("p.jpg", photo, "image/jpeg")}, data={"field": "food"})
    assert r.status_code == 401, r.text


#: Two crafted 9,887-byte TIFFs on which Pillow raised TypeError while decoding: a 500 on every photo route.
CRASH_TIFFS = sorted((Path(__file__).parents[1] / "protocol" / "data").glob("crash-*.tif"))


@pytest.mark.parametrize("path", CRASH_TIFFS, ids=lambda p: p.name)
def test_a_crafted_image_is_a_422_on_every_photo_route(api: Api, path: Path) -> None:
    """Hostile bytes get the documented 'no enterprise code could be read' answer, with and without a session."""
    data = path.read_bytes()
    officer = api.as_(OFFICER)
    encoded = base64.b64encode(data).decode()
    answers = [
        api.client.post("/api/v1/enterprise-view", json={"photo_base64": encoded}),  # no sign-in needed
        officer.post("/api/v1/scans", json={"field": "food", "photo_base64": encoded}),
        officer.post("/api/v1/scans/photo", files={"photo": ("x.jpg", data, "image/jpeg")}, data={"field": "food"}),
    ]
    for r in answers:
        assert r.status_code == 422, r.text
        assert CHINESE_FIRST.match(r.json()["detail"]) and "not_an_image" in r.json()["detail"]
