"""Wrong device clocks, end to end: a real agent with a skewed clock, a real Mosquitto, a real server.

Events of a device whose clock is two days ahead are stored (never dropped), flagged suspect, and raise ONE
alert; the time exchange measures the device's offset; a receipt that waited in the broker session never
sets it; the server answers only authentic time requests. The flags and the alert run on both backends; the
time exchange is the agent's and the server's key, on SQLite.
"""

from __future__ import annotations

import sys
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.clock import SKEW_ENV
from protocol import topics
from protocol.codec import open_server_message, seal
from protocol.messages import TimeRequest, TimeResponse
from protocol.signing import SigningKey, VerifyKey
from server.evidence.keys import load_or_create_server_key
from server.storage.engine import sql
from tests.server.conftest import seed_users
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import DeviceRun, Proc, _env, assert_exactly_once, read_all, server_events, write

pytestmark = pytest.mark.system

DAY_MS = 86_400_000
#: How close the measured offset must be to the injected skew (loopback round trips take milliseconds).
OFFSET_TOLERANCE_MS = 1_000


def start_with_skew(dev: DeviceRun, skew_ms: int) -> None:
    """Run the device's agent with its clock shifted by ``skew_ms`` (as faketime would)."""
    argv = [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(dev.config_path)]
    dev.proc = Proc(dev.device_id, argv, dev.bundle / "agent.log", _env({SKEW_ENV: str(skew_ms)}))
    dev.start()


_SUSPECTS = sql("SELECT e.seq, c.reason FROM events e LEFT JOIN clock_suspects c USING (event_id) WHERE e.device_id = :device_id ORDER BY e.seq")


def suspects(db: str, device_id: str) -> dict[int, str | None]:
    return dict(read_all(db, _SUSPECTS, device_id=device_id))


def test_a_clock_two_days_ahead_is_flagged_with_one_alert_and_measured(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    write(stack.server.db, lambda tx: seed_users(tx, []))  # the supervisor who reads the alerts
    (dev,) = stack.add_devices(1)
    start_with_skew(dev, 2 * DAY_MS)
    for n in range(5):
        code, _ = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": f"c{n}"}, event_id=f"skewed-{n:04d}-{uuid.uuid4().hex[:8]}")
        assert code == 202
    assert_exactly_once(stack.server.db, [dev])  # stored, never dropped, whatever their time
    assert suspects(stack.server.db, dev.device_id) == dict.fromkeys(range(1, 6), "future")
    alerts = stack.server.api("/api/v1/alerts?kind=clock_suspect")
    assert [(a["device_id"], a["severity"]) for a in alerts] == [(dev.device_id, "warning")]
    assert "48.0 h" in alerts[0]["message_en"] and "时钟" in alerts[0]["message_zh"]
    events = stack.server.api(f"/api/v1/events?device_id={dev.device_id}")
    assert {e["clock_suspect"] for e in events} == {"future"}
    # The time exchange: server time minus device time is about -2 days.
    st = wait_for(lambda: (s := dev.status())["clock_synced_ms"] and s, timeout=20, message=lambda: dev.proc.log_tail() if dev.proc else "")
    assert abs(st["clock_offset_ms"] + 2 * DAY_MS) < OFFSET_TOLERANCE_MS, st
    assert 0 < st["clock_offset_error_ms"] < OFFSET_TOLERANCE_MS
    assert [a for a in st["alarms"] if "clock_off" in a], st["alarms"]  # the agent says so itself too
    # Its heartbeat reports that offset, and the server flags it too: still one alert.
    assert dev.submit("device_status", {"outbox_depth": 0, "oldest_unsent_age_s": 0.0, "free_storage_bytes": 1, "clock_offset_ms": st["clock_offset_ms"]})[0] == 202
    wait_for(lambda: len(server_events(stack.server.db, dev.device_id)) == 6, timeout=20)
    assert len(stack.server.api("/api/v1/alerts?kind=clock_suspect")) == 1


def test_a_receipt_that_waited_in_the_broker_does_not_set_the_clock(stack: Stack) -> None:
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    dev.start()
    wait_for(lambda: dev.status()["clock_synced_ms"], timeout=20)
    stack.server.stop()
    # An event made while the server is down; the broker holds it for the server's session.
    code, _ = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "late"}, event_id=f"late-{uuid.uuid4().hex}")
    assert code == 202

    def all_acked() -> bool:  # presence, time requests and the event: the broker holds them all
        s = dev.status()
        return s["published"] >= 1 and s["broker_acked"] >= 1 + s["published"] + s["resent"] + s["time_requests"]

    wait_for(all_acked, timeout=20)
    dev.proc.kill()  # type: ignore[union-attr]  # the device goes offline before any receipt
    stack.server.start_and_wait()
    wait_for(lambda: stack.server.metric("fe_receipts_published_total") >= 1, timeout=20)
    stack.server.stop()  # the receipt waits in the device's session; no server answers time requests now
    time.sleep(3)  # the fault under test: the receipt waits in the broker (up to 7 days in the field)
    start_with_skew(dev, 0)
    wait_for(lambda: dev.outbox_state()[0] == 0, timeout=20, message=lambda: dev.proc.log_tail() if dev.proc else "")
    st = dev.status()
    assert st["receipted_total"] == 1
    # Made 3 s before it was read, the receipt would have said about -3000 ms: it says nothing about the clock.
    assert st["clock_offset_ms"] is None and st["clock_synced_ms"] is None, st
    stack.server.start_and_wait()
    st = wait_for(lambda: (s := dev.status())["clock_synced_ms"] and s, timeout=30)
    # the exchange: about 0, within the round trip's own error bound (a loaded machine may take a while to answer)
    assert abs(st["clock_offset_ms"]) <= max(500, st["clock_offset_error_ms"] + 100), st
    assert_exactly_once(stack.server.db, [dev])


def test_only_authentic_time_requests_are_answered(stack: Stack) -> None:
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    device_key = SigningKey.load(dev.bundle / "device.key")
    server_key = load_or_create_server_key(stack.server.server_key_path)
    answers: list[bytes] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=dev.device_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = lambda c, u, m: answers.append(bytes(m.payload))
    if stack.secure:  # the device's own account: its own topics only
        import tomllib

        mqtt_cfg = tomllib.loads(dev.config_path.read_text())["mqtt"]
        client.username_pw_set(mqtt_cfg["username"], mqtt_cfg["password"])
    client.connect(stack.broker.host, stack.broker.port)
    client.loop_start()
    try:
        client.subscribe(topics.device_down(dev.device_id), qos=1)

        def ask(key: SigningKey, device_id: str = dev.device_id) -> TimeRequest:
            req = TimeRequest(device_id=device_id, nonce=uuid.uuid4().hex, device_time_ms=int(time.time() * 1000))
            client.publish(topics.device_time(dev.device_id), seal(req, key), qos=1).wait_for_publish(timeout=10)
            return req

        server_public = VerifyKey.from_hex(server_key.public_hex)

        def nonces() -> list[str]:
            return [m.nonce for a in list(answers) if isinstance(m := open_server_message(a, server_public), TimeResponse)]

        # Requests are answered in the order they arrive, so once the good one's answer is in, any answer to
        # the two before it would be too.
        ask(SigningKey.generate())  # not the device's key
        ask(device_key, device_id="BR-99999")  # signed by the device, but naming another device
        good = ask(device_key)
        wait_for(lambda: nonces(), timeout=10)
        assert nonces() == [good.nonce]
        (answer,) = [open_server_message(a, server_public) for a in answers]
        assert isinstance(answer, TimeResponse) and answer.request_device_time_ms == good.device_time_ms and answer.device_id == dev.device_id
        assert answer.received_ms <= answer.server_time_ms and abs(answer.server_time_ms - time.time() * 1000) < 5_000
        # A flood costs the server at most one answer a second.
        flood = {ask(device_key).nonce for _ in range(5)}

        def probe_answered() -> bool:
            return bool(set(nonces()) - flood - {good.nonce}) or (ask(device_key) and False)

        wait_for(probe_answered, timeout=15, interval=0.3)
        assert len(set(nonces()) & flood) <= 1
        assert server_events(stack.server.db, dev.device_id) == []  # nothing of it is stored
    finally:
        client.disconnect()
        client.loop_stop()
