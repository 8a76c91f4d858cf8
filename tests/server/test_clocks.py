"""Device clocks (server/ingest/clocks.py) on both backends: suspect events are stored and flagged, one alert per device."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from litestar.testing import TestClient

from protocol import topics
from protocol.codec import open_server_message, seal
from protocol.messages import DeviceStatus, EnterpriseScanned, TimeRequest, TimeResponse
from protocol.signing import SigningKey, VerifyKey
from server.ingest import clocks
from server.app import create_app
from server.ingest.batch import store_batch
from server.settings import ServerSettings
from server.storage.engine import Tx, sql, storage_for
from server.ingest.store import DeviceKeys, Incoming
from tests.server.conftest import Api

KEY = SigningKey.from_seed(bytes(range(32)))
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NOW_MS = int(time.time() * 1000)
REGISTERED_MS = NOW_MS - 30 * DAY_MS
Y2100_MS = 4_102_444_800_000


_DEVICE = sql(
    "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'body_recorder', :agency, :key, :registered_ms)"
)


@pytest.fixture
def path(db_url: str) -> str:
    """A migrated database on each backend (a path or a URL) with BR-1 (SAMR) and BR-2 (FIRE) registered, one key."""
    storage_for(db_url).write(
        lambda tx: tx.many(_DEVICE, [{"device_id": d, "agency": a, "key": KEY.public_hex, "registered_ms": REGISTERED_MS} for d, a in (("BR-1", "SAMR"), ("BR-2", "FIRE"))])
    )
    return db_url


class Db:
    """The test's own statements on the database (named parameters, either backend)."""

    def __init__(self, db: str) -> None:
        self.db = db

    def all(self, text: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
        return storage_for(self.db).read(lambda tx: [tuple(r) for r in tx.all(sql(text), params)])

    def run(self, text: str, **params: object) -> None:
        storage_for(self.db).write(lambda tx: tx.run(sql(text), params))

    def write(self, fn: object) -> None:
        storage_for(self.db).write(fn)  # type: ignore[arg-type]


@pytest.fixture
def con(path: str) -> Db:
    return Db(path)


_seq: dict[str, int] = {}


def scanned(device_time_ms: int, *, error_ms: int = 50, device_id: str = "BR-1") -> EnterpriseScanned:
    _seq[device_id] = _seq.get(device_id, 0) + 1
    return EnterpriseScanned(
        event_id=str(uuid.uuid4()), device_id=device_id, seq=_seq[device_id], device_time_ms=device_time_ms, clock_error_ms=error_ms,
        clock_source="gnss", officer_id="O", code_text="c",
    )  # fmt: skip


def status(device_time_ms: int, offset_ms: int | None, *, error_ms: int = 50) -> DeviceStatus:
    _seq["BR-1"] = _seq.get("BR-1", 0) + 1
    return DeviceStatus(
        event_id=str(uuid.uuid4()), device_id="BR-1", seq=_seq["BR-1"], device_time_ms=device_time_ms, clock_error_ms=error_ms,
        outbox_depth=0, oldest_unsent_age_s=0.0, free_storage_bytes=1, clock_offset_ms=offset_ms,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_seq() -> None:
    _seq.clear()


def store(con: Db, *msgs: object, received_ms: int = NOW_MS) -> None:
    batch = [Incoming(topics.device_up(m.device_id), seal(m, KEY), received_ms) for m in msgs]  # type: ignore[attr-defined]
    out = store_batch(con.db, batch, DeviceKeys())
    assert out.stored == len(msgs), out.rejected  # never refused for its time


def flags(con: Db) -> dict[int, str | None]:
    return dict(con.all("SELECT e.seq, c.reason FROM events e LEFT JOIN clock_suspects c USING (event_id) WHERE e.device_id = 'BR-1' ORDER BY e.seq"))


def alerts(con: Db) -> list[tuple[str, str | None]]:
    return con.all("SELECT kind, device_id FROM alerts WHERE kind = 'clock_suspect' ORDER BY id")


# ---------------------------------------------------------------- the rule's boundaries


@pytest.mark.parametrize(
    ("device_time_ms", "error_ms", "offset_ms", "expected"),
    [
        (NOW_MS, 50, None, None),  # on time
        (NOW_MS - 3 * DAY_MS, 50, None, None),  # old but plausible: delivered late from the outbox
        (REGISTERED_MS - 50 - clocks.TOLERANCE_MS, 50, None, None),  # just within the claimed error of registration
        (REGISTERED_MS - 50 - clocks.TOLERANCE_MS - 1, 50, None, "before_registration"),
        (NOW_MS + 50 + clocks.TOLERANCE_MS, 50, None, None),  # ahead, but within error + tolerance
        (NOW_MS + 50 + clocks.TOLERANCE_MS + 1, 50, None, "future"),  # an event cannot come from the future
        (NOW_MS + 2 * DAY_MS, 50, None, "future"),  # faketime +2d
        (NOW_MS + 2 * DAY_MS, 3 * DAY_MS, None, None),  # ...unless the device says its clock may be that far off
        (Y2100_MS - 1, 10**15, None, None),
        (Y2100_MS, 10**15, None, "after_2100"),  # whatever error it claims
        (NOW_MS, 50, 50 + clocks.TOLERANCE_MS, None),  # its offset within error + tolerance
        (NOW_MS, 50, -(50 + clocks.TOLERANCE_MS + 1), "offset_exceeds_error"),  # its own measurement says it is off
        (NOW_MS - 2 * DAY_MS, 50, 2 * DAY_MS, "offset_exceeds_error"),  # a clock running behind: looks merely late otherwise
    ],
)
def test_the_rule(device_time_ms: int, error_ms: int, offset_ms: int | None, expected: str | None) -> None:
    verdict = clocks.judge(device_time_ms, error_ms, NOW_MS, REGISTERED_MS, offset_ms)
    assert (verdict and verdict[0]) == expected


# ---------------------------------------------------------------- stored, flagged, one alert


def test_skewed_events_are_stored_flagged_and_alerted_once(con: Db) -> None:
    store(con, scanned(NOW_MS))
    store(con, *(scanned(NOW_MS + 2 * DAY_MS) for _ in range(5)))
    store(con, scanned(NOW_MS + 2 * DAY_MS))
    assert flags(con) == {1: None, **{s: "future" for s in range(2, 8)}}
    assert alerts(con) == [("clock_suspect", "BR-1")]
    ((zh, en),) = con.all("SELECT message_zh, message_en FROM alerts WHERE kind = 'clock_suspect'")
    assert "BR-1" in zh and "时钟" in zh and "48.0 h" in en


def test_a_year_2100_event_is_flagged_whatever_error_it_claims(con: Db) -> None:
    store(con, scanned(Y2100_MS + 1, error_ms=10**17))
    assert flags(con) == {1: "after_2100"}
    assert len(alerts(con)) == 1


def test_late_delivery_is_not_suspect(con: Db) -> None:
    store(con, *(scanned(NOW_MS - 20 * HOUR_MS + i) for i in range(3)))
    assert set(flags(con).values()) == {None} and alerts(con) == []


def test_a_clock_behind_is_caught_by_the_devices_own_offset(con: Db) -> None:
    behind = NOW_MS - 2 * DAY_MS
    store(con, scanned(behind))  # nothing known yet: looks like a late delivery
    store(con, status(behind, 2 * DAY_MS))  # its time exchange says: the server is 2 days ahead
    store(con, scanned(behind + 1))  # and so is every later event
    assert flags(con) == {1: None, 2: "offset_exceeds_error", 3: "offset_exceeds_error"}
    assert len(alerts(con)) == 1
    store(con, status(NOW_MS, 10))  # the clock was fixed: the offset says so
    store(con, scanned(NOW_MS))
    assert flags(con)[4] is None and flags(con)[5] is None


def test_a_new_alert_only_after_a_day_or_after_recovery(con: Db) -> None:
    store(con, scanned(NOW_MS + DAY_MS), received_ms=NOW_MS)
    store(con, scanned(NOW_MS + DAY_MS), received_ms=NOW_MS + 1000)
    assert len(alerts(con)) == 1
    # fine for a short while, then suspect again: still the same episode
    store(con, scanned(NOW_MS + 2000), received_ms=NOW_MS + 2000)
    store(con, scanned(NOW_MS + DAY_MS), received_ms=NOW_MS + 3000)
    assert len(alerts(con)) == 1
    # fine for longer than RECOVERED_AFTER_MS: the next suspect event is a new problem
    t = NOW_MS + 4000
    store(con, scanned(t), received_ms=t)
    store(con, scanned(t + clocks.RECOVERED_AFTER_MS), received_ms=t + clocks.RECOVERED_AFTER_MS)
    store(con, scanned(t + 2 * DAY_MS), received_ms=t + clocks.RECOVERED_AFTER_MS + 1)
    assert len(alerts(con)) == 2


def test_a_day_later_the_still_suspect_device_is_alerted_again(con: Db) -> None:
    store(con, scanned(NOW_MS + 3 * DAY_MS))
    con.run("UPDATE device_clocks SET alerted_ms = alerted_ms - :ms", ms=clocks.REALERT_AFTER_MS)
    store(con, scanned(NOW_MS + 3 * DAY_MS))
    assert len(alerts(con)) == 2


def test_a_resend_does_not_alert_again(con: Db) -> None:
    e = scanned(NOW_MS + DAY_MS)
    store(con, e)
    out = store_batch(con.db, [Incoming(topics.device_up("BR-1"), seal(e, KEY), NOW_MS)], DeviceKeys())
    assert out.duplicates == 1 and len(alerts(con)) == 1


def test_devices_are_alerted_separately(con: Db) -> None:
    store(con, scanned(NOW_MS + DAY_MS), scanned(NOW_MS + DAY_MS, device_id="BR-2"))
    assert alerts(con) == [("clock_suspect", "BR-1"), ("clock_suspect", "BR-2")]


# ---------------------------------------------------------------- seen through the API


def test_the_flag_and_the_alert_through_the_api(path: str, con: Db, tmp_path: Path) -> None:
    from server.console.auth import add_user
    from tests.server.conftest import password, password_hash

    store(con, scanned(NOW_MS), scanned(NOW_MS + 2 * DAY_MS), scanned(NOW_MS + 2 * DAY_MS, device_id="BR-2"))

    def users(tx: Tx) -> None:
        add_user(tx, "sup", password("sup"), "supervisor", password_hash=password_hash("sup"))
        add_user(tx, "admin-SAMR", password("admin-SAMR"), "agency_admin", agency_id="SAMR", password_hash=password_hash("admin-SAMR"))

    con.write(users)
    with TestClient(create_app(ServerSettings(db_path=path, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False))) as c:
        api = Api(c)
        events = api.get("/api/v1/events", params={"device_id": "BR-1"}).json()
        assert {e["seq"]: e["clock_suspect"] for e in events} == {1: None, 2: "future"}
        assert [a["device_id"] for a in api.get("/api/v1/alerts", params={"kind": "clock_suspect"}).json()] == ["BR-2", "BR-1"]
        # the agency's administrator sees its own device's alert only
        mine = api.as_("admin-SAMR").get("/api/v1/alerts", params={"kind": "clock_suspect"}).json()
        assert [a["device_id"] for a in mine] == ["BR-1"]


# ---------------------------------------------------------------- the time exchange, server side


def time_request(device_id: str = "BR-1", key: SigningKey = KEY, fmt: str = "json") -> tuple[TimeRequest, bytes]:
    req = TimeRequest(device_id=device_id, nonce=uuid.uuid4().hex, device_time_ms=NOW_MS)
    return req, seal(req, key, fmt)  # type: ignore[arg-type]


def test_an_authentic_request_is_answered_at_once_in_its_format(path: str) -> None:
    server_key = SigningKey.generate()
    ts = clocks.TimeServer(path, server_key)
    req, payload = time_request(fmt="msgpack")
    out = ts.answer(topics.device_time("BR-1"), payload, NOW_MS + 5)
    assert out is not None and out[0] == topics.device_down("BR-1") and out[1][:1] != b"{"  # MessagePack, as asked
    answer = open_server_message(out[1], VerifyKey.from_hex(server_key.public_hex))
    assert isinstance(answer, TimeResponse)
    assert (answer.nonce, answer.request_device_time_ms, answer.received_ms, answer.device_id) == (req.nonce, NOW_MS, NOW_MS + 5, "BR-1")
    assert answer.server_time_ms >= answer.received_ms - 1000


@pytest.mark.parametrize(
    "make",
    [
        lambda: (topics.device_time("BR-1"), time_request(key=SigningKey.generate())[1]),  # forged
        lambda: (topics.device_time("BR-2"), time_request()[1]),  # BR-1's request on BR-2's topic (BR-2 shares the key here)
        lambda: (topics.device_time("NOPE"), time_request("NOPE")[1]),  # not registered
        lambda: (topics.device_time("BR-1"), b"{}"),  # not an envelope
        lambda: ("fe/v1/dev/BR-1/time/x", time_request()[1]),  # not a time topic
        lambda: (topics.device_time("BR-1"), seal(scanned(NOW_MS), KEY)),  # an event, not a time request
    ],
)
def test_anything_else_is_not_answered(path: str, make) -> None:  # type: ignore[no-untyped-def]
    ts = clocks.TimeServer(path, SigningKey.generate())
    assert ts.answer(*make(), NOW_MS) is None and ts.refused == 1


def test_a_revoked_device_is_not_answered_and_a_flood_is_answered_once_a_second(path: str, con: Db) -> None:
    ts = clocks.TimeServer(path, SigningKey.generate())
    answered = [ts.answer(topics.device_time("BR-1"), time_request()[1], NOW_MS) for _ in range(20)]
    assert sum(a is not None for a in answered) == 1 and ts.refused == 19
    con.run("UPDATE devices SET revoked_ms = 1 WHERE device_id = 'BR-2'")
    assert ts.answer(topics.device_time("BR-2"), time_request("BR-2")[1], NOW_MS) is None


def test_a_flag_goes_with_its_event_when_retention_removes_it(con: Db) -> None:
    store(con, status(NOW_MS + DAY_MS, None))
    con.run("DELETE FROM events WHERE seq = 1 AND device_id = 'BR-1'")  # as the retention job does (server/jobs/tasks.py)
    assert con.all("SELECT count(*) FROM clock_suspects") == [(0,)]
