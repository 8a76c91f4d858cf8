"""The HTTP API over a real database (ingest disabled; events stored with store_batch)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol import topics
from protocol.codec import seal
from protocol.messages import EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from server.app import create_app
from server.rules.codes import CreditCodeInvalid, EnterpriseUnknown, NotResponsible, NothingToRevoke
from server.errors import derived_statuses
from server.settings import ServerSettings
from server.ingest.store import DeviceKeys, Incoming
from server.ingest.batch import store_batch
from tests.server.conftest import Api, seed_users

KEY = SigningKey.from_seed(bytes(range(32)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Api]:
    path = tmp_path / "s.db"
    app = create_app(ServerSettings(db_path=path, mqtt_enabled=False, jobs_enabled=False))
    con = dbmod.connect(path)
    con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'ZFY', 'body_recorder', 'A', ?, 0)", (KEY.public_hex,))
    msgs = [
        EnterpriseScanned(event_id=str(uuid.uuid4()), device_id="BR-1", seq=s, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O", code_text="c")
        for s in (1, 2, 5)
    ]
    store_batch(con, [Incoming(topics.device_up("BR-1"), seal(m, KEY), 0) for m in msgs] + [Incoming("x", b"junk", 0)], DeviceKeys(con))
    seed_users(con, [])
    con.close()
    with TestClient(app) as c:
        yield Api(c)


def test_health_and_metrics(client: Api) -> None:
    h = client.get("/health")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["events_stored"] == 3
    m = client.get("/metrics")
    assert m.status_code == 200 and "fe_events_stored_total" in m.text and "fe_ingest_lag_seconds_bucket" in m.text


def test_devices_with_gaps(client: Api) -> None:
    (dev,) = client.get("/api/v1/devices").json()
    assert dev["device_id"] == "BR-1" and dev["stored_count"] == 3 and dev["max_seq"] == 5
    one = client.get("/api/v1/devices/BR-1").json()
    assert one["gaps"] == [{"seq_from": 3, "seq_to": 4, "missing": 2}]
    assert client.get("/api/v1/devices/BR-1/gaps").json() == one["gaps"]
    assert client.get("/api/v1/overview").json()["devices_with_gaps"] == 1


def test_events_and_rejected(client: Api) -> None:
    events = client.get("/api/v1/events", params={"device_id": "BR-1", "limit": 2}).json()
    assert [e["seq"] for e in events] == [5, 2]
    assert events[0]["body"]["type"] == "enterprise_scanned"
    (rej,) = client.get("/api/v1/rejected").json()
    assert rej["reason_code"] == "undecodable" and rej["size"] == 4 and rej["kept"] == 4 and len(rej["sha256"]) == 64
    assert client.get("/api/v1/rejected/counts").json() == [{"reason_code": "undecodable", "count": 1, "last_ms": rej["received_ms"]}]
    assert client.get("/api/v1/overview").json()["rejected"] == 1


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/api/v1/devices/NOPE", 404, "not registered"),
        ("/api/v1/devices/NOPE/gaps", 404, "not registered"),
        ("/api/v1/events?limit=0", 400, "limit"),
        ("/api/v1/events?limit=abc", 400, "limit"),
        ("/api/v1/rejected?limit=100000", 400, "limit"),
        ("/?lang=fr", 400, "lang"),
    ],
)
def test_bad_requests_get_a_reason(client: Api, url: str, status: int, words: str) -> None:  
    r = client.get(url)
    assert r.status_code == status
    assert words in r.text


def test_dashboard_is_chinese_first_with_english(client: Api) -> None:
    zh = client.get("/")
    assert zh.status_code == 200 and 'lang="zh-CN"' in zh.text and "执法监督平台" in zh.text
    en = client.get("/?lang=en")
    assert 'lang="en"' in en.text and "Enforcement supervision" in en.text


def test_openapi_schema(client: Api) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert {"/health", "/api/v1/devices", "/api/v1/devices/{device_id}", "/api/v1/events", "/api/v1/rejected"} <= set(paths)


def test_pages_send_strangers_to_sign_in(client: Api) -> None:
    r = client.client.get("/", follow_redirects=False)
    assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("/login")
    login = client.client.get("/login?lang=en")
    assert login.status_code == 200 and "Sign in" in login.text
    assert client.client.get("/api/v1/stream").status_code == 401
    live = client.get("/api/v1/live").json()
    assert set(live) == {"now_ms", "under_way", "alerts", "fleet", "today"}
    csv = client.get("/api/v1/stats.csv")
    assert csv.status_code == 200 and csv.text.startswith("\ufeff") and "attachment" in csv.headers["content-disposition"]


@pytest.mark.parametrize(
    ("user", "url", "status"),
    [
        (None, "/api/v1/stats.csv", 401),
        (None, "/api/v1/enterprises/91110108MA0000001D/qr.png", 401),
        (None, "/metrics?x=1", 200),
        ("sup", "/api/v1/enterprises/91110108MA0000001X/qr.png", 400),
        ("sup", "/api/v1/enterprises/91110108MA0000001D/qr.svg", 404),
        ("sup", "/api/v1/stats.csv?days=0", 400),
        ("sup", "/api/v1/enterprises/12345/qr.txt", 400),
    ],
)
def test_errors_are_json_whatever_the_route_serves(client: Api, user: str | None, url: str, status: int) -> None:
    """A PNG or CSV route's 401/403/404 was labelled image/png or "text/csv; charset=utf-8; charset=utf-8"."""
    r = client.client.get(url) if user is None else client.as_(user).get(url)
    assert r.status_code == status, r.text
    if status >= 400:
        assert r.headers["content-type"] == "application/json" and r.json()["status_code"] == status and r.json()["detail"]


def test_each_route_documents_the_answers_its_signature_implies(client: Api) -> None:
    """Before: no route listed 401, 403, 404, 409 or 413."""
    paths = client.get("/schema/openapi.json").json()["paths"]
    answers = {(m.upper(), p): set(op["responses"]) for p, ops in paths.items() for m, op in ops.items()}
    assert answers[("GET", "/api/v1/devices/{device_id}")] == {"200", "400", "401", "403", "404"}
    assert answers[("GET", "/api/v1/overview")] == {"200", "401", "403"}
    assert answers[("POST", "/api/v1/inspections/{inspection_id}/end")] >= {"400", "401", "403", "404", "409", "413"}
    assert answers[("GET", "/health")] == {"200", "503"}
    assert answers[("GET", "/ping")] == {"200"}
    error = paths["/api/v1/overview"]["get"]["responses"]["401"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}


def test_the_answers_a_signature_implies() -> None:
    assert derived_statuses({"state"}, set()) == set()
    assert derived_statuses({"state", "principal"}, set()) == {401, 403}
    assert derived_statuses({"state"}, set(), guarded=True) == {401, 403}  # a role guard, the principal unused
    assert derived_statuses({"state", "limit"}, set()) == {400}
    assert derived_statuses({"state", "principal", "data", "code"}, {"code"}) == {400, 401, 403, 404, 413}
    assert (CreditCodeInvalid.status_code, EnterpriseUnknown.status_code, NotResponsible.status_code, NothingToRevoke.status_code) == (400, 404, 403, 409)
