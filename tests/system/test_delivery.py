"""Every accepted event reaches the server's database exactly once, through real faults.

Real Mosquitto, real `fe-server` and `fe-agent` processes, SIGKILL. Each test ends with
``assert_exactly_once``: accepted = stored, none twice, outboxes drained, every agent database intact.
The server's side of delivery (the happy path, the broker or the server killed, a backlog) runs on both
backends (``any_stack``); faults on the device's side or the link touch no server database and run on SQLite.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid

import pytest

from tests.support.backends import BACKENDS
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import DeviceRun, assert_exactly_once, server_events

pytestmark = pytest.mark.system

CODE = "91110108MA01ABCD0X"


def scan(dev: DeviceRun, n: int = 1) -> list[str]:
    """Submit n scans with our own event ids; returns the ids accepted."""
    ids = []
    for _ in range(n):
        eid = str(uuid.uuid4())
        code, body = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": f"FE1:{CODE}"}, eid)
        assert code == 202, body
        ids.append(eid)
    return ids


class Pump:
    """Submits events from a thread until stopped, recording every outcome (202 = accepted)."""

    def __init__(self, dev: DeviceRun) -> None:
        self.dev = dev
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            eid = str(uuid.uuid4())
            try:
                self.dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": f"FE1:{CODE}"}, eid)
            except (OSError, http.client.HTTPException):  # killed mid-answer: a reset or a cut-short body
                self.dev.submitted[eid] = -1  # in doubt: the agent may or may not have stored it
                self.errors += 1
                time.sleep(0.05)

    def __enter__(self) -> Pump:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def accepted(self) -> int:
        return sum(1 for c in list(self.dev.submitted.values()) if c == 202)


@pytest.mark.parametrize("backend", BACKENDS)
def test_happy_path_through_the_cli(stack_factory, backend: str) -> None:  # type: ignore[no-untyped-def]
    """On a database nobody has migrated yet: the server's first start does it (on PostgreSQL too)."""
    stack = stack_factory(persistence=True, backend=backend, empty=True)
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    dev.start()
    ids = scan(dev, 20)
    assert_exactly_once(stack.server.db, [dev])
    assert {e for e, _ in server_events(stack.server.db, dev.device_id)} == set(ids)
    st = dev.status()
    assert st["connected"] and st["outbox_depth"] == 0 and st["receipted_total"] == 20 and st["last_receipt_ms"]


def test_agent_sigkilled_mid_write(stack: Stack) -> None:
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    dev.start()
    for _round in range(3):
        with Pump(dev) as pump:
            wait_for(lambda: pump.accepted() > 50, timeout=20)
            dev.proc.kill()  # type: ignore[union-attr]
        dev.start()
    assert_exactly_once(stack.server.db, [dev])


def test_agent_sigkilled_after_publishing_before_the_receipt(stack: Stack) -> None:
    stack.server.start_and_wait()
    stack.server.stop()  # the server's persistent session stays on the broker; no receipts for now
    (dev,) = stack.add_devices(1)
    dev.start()
    scan(dev, 30)
    wait_for(lambda: dev.status()["broker_acked"] >= 30, timeout=20, message="broker did not acknowledge the events")
    assert dev.status()["outbox_depth"] == 30  # acknowledged by the broker, but not receipted: still kept
    dev.proc.kill()  # type: ignore[union-attr]
    stack.server.start_and_wait()
    dev.start()
    assert_exactly_once(stack.server.db, [dev])


def test_broker_sigkilled_with_acknowledged_unsaved_messages(any_stack: Stack) -> None:
    stack = any_stack
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    stack.server.start_and_wait()
    stack.server.stop()  # the broker now queues device events for the server's persistent session
    (dev,) = stack.add_devices(1)
    dev.start()
    scan(dev, 25)
    wait_for(lambda: dev.status()["broker_acked"] >= 25, timeout=20)
    stack.broker.kill()
    stack.broker.restart()

    # Show that the broker really lost them: the server's session (and its queued messages) is gone.
    probe = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fe-server", protocol=MQTTProtocolVersion.MQTTv5)
    seen: dict[str, object] = {}
    probe.on_connect = lambda c, u, flags, rc, p: seen.update(session_present=flags.session_present)
    probe.on_message = lambda c, u, m: seen.setdefault("messages", []).append(m.topic)  # type: ignore[union-attr]
    if stack.secure:  # the server's own account: its session is the one to look at
        from server.broker.access import SERVER_ACCOUNT, server_password

        probe.username_pw_set(SERVER_ACCOUNT, server_password(stack.server.broker_dir))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    probe.connect(stack.broker.host, stack.broker.port, clean_start=False, properties=props)
    probe.loop_start()
    wait_for(lambda: "session_present" in seen, timeout=10)
    probe.disconnect()
    probe.loop_stop()
    assert seen["session_present"] is False and "messages" not in seen

    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, [dev])  # the agent's resends recovered every event


def test_server_sigkilled_between_receiving_and_committing(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.set_fault_pause(30.0)
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    dev.start()
    scan(dev, 10)
    # The server has taken the messages off the broker and sits before its commit.
    wait_for(lambda: stack.server.metric("fe_messages_received_total") >= 1, timeout=20)
    assert stack.server.metric("fe_events_stored_total") == 0
    stack.server.kill()
    assert server_events(stack.server.db, dev.device_id) == []
    stack.server.set_fault_pause(0)
    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, [dev])


def test_network_cut_mid_stream(stack: Stack, proxy_factory) -> None:  # type: ignore[no-untyped-def]
    stack.server.start_and_wait()
    proxy = proxy_factory(stack.broker.host, stack.broker.port)
    (dev,) = stack.add_devices(1, mqtt_port=proxy.port)
    dev.start()
    wait_for(lambda: dev.status()["connected"], timeout=20)
    with Pump(dev) as pump:
        for _ in range(3):
            n = pump.accepted()
            wait_for(lambda n=n: pump.accepted() > n + 30, timeout=20)
            connects = dev.status()["connects"]
            assert proxy.cut() >= 1
            wait_for(lambda c=connects: dev.status()["connects"] > c, timeout=20, message="the agent did not reconnect")
    assert dev.status()["connects"] >= 4
    assert_exactly_once(stack.server.db, [dev])


def test_link_that_stalls_without_closing(stack: Stack, proxy_factory) -> None:  # type: ignore[no-untyped-def]
    stack.server.start_and_wait()
    proxy = proxy_factory(stack.broker.host, stack.broker.port)
    (dev,) = stack.add_devices(1, mqtt_port=proxy.port)
    dev.start()
    wait_for(lambda: dev.status()["connected"], timeout=20)
    scan(dev, 10)
    proxy.stall()
    ids = scan(dev, 20)  # accepted while the link hangs
    # keepalive 5 s: paho notices the silent link and drops it.
    wait_for(lambda: not dev.status()["connected"], timeout=20, message="the agent did not notice the stalled link")
    assert dev.status()["outbox_depth"] >= len(ids)
    proxy.resume()
    assert_exactly_once(stack.server.db, [dev])


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_down_while_5000_events_pile_up(stack_factory, backend: str) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(persistence=True, backend=backend)  # Mosquitto's default: 1,000 queued messages per client
    stack.server.start_and_wait()
    stack.server.stop()
    devs = stack.add_devices(2, delivery__receipt_window=3000)
    for d in devs:
        d.start()
    per_device = 2500

    def fill(dev: DeviceRun) -> None:
        for _ in range(per_device):
            eid = str(uuid.uuid4())
            code, body = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": f"FE1:{CODE}"}, eid)
            assert code == 202, body

    threads = [threading.Thread(target=fill, args=(d,)) for d in devs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.status()["outbox_depth"] for d in devs) == 2 * per_device
    wait_for(lambda: sum(d.status()["broker_acked"] for d in devs) >= 2 * per_device, timeout=60)
    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, devs, timeout=120)
    # The broker really dropped what exceeded its queue; the receipts made the agents resend it.
    assert "dropped" in stack.broker.log_text().lower()
