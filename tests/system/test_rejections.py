"""Messages that must never be stored or receipted, and forged receipts that must never drop an event.

The server's refusals (kept aside with their reasons, duplicates, sequence conflicts) run on both backends;
the forged receipt and the full disk are the agent's own checks and run on SQLite only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol import topics
from protocol.codec import encode, open_server_message, seal
from protocol.messages import Envelope, EnterpriseScanned, Receipt, ReceiptItem
from protocol.signing import SigningKey, VerifyKey
from server.evidence.keys import load_or_create_server_key
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import DeviceRun, assert_exactly_once, rejected_reasons, server_events

pytestmark = pytest.mark.system


class Peer:
    """A raw MQTT client playing an honest or a malicious device."""

    def __init__(self, stack: Stack, client_id: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, bytes(m.payload)))
        if stack.secure:  # the server's own checks, behind a broker that would let anything through
            self.client.username_pw_set(*stack.superuser())
        self.client.connect(stack.broker.host, stack.broker.port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def peer(stack: Stack, client_id: str) -> Iterator[Peer]:
    p = Peer(stack, client_id)
    try:
        yield p
    finally:
        p.close()


def event(device_id: str, seq: int, event_id: str | None = None) -> EnterpriseScanned:
    return EnterpriseScanned(
        event_id=event_id or str(uuid.uuid4()),
        device_id=device_id,
        seq=seq,
        device_time_ms=int(time.time() * 1000),
        clock_error_ms=100,
        officer_id="OFF-9",
        code_text="FE1:91110108MA01ABCD0X",
    )


def device_key(dev: DeviceRun) -> SigningKey:
    return SigningKey.load(dev.bundle / "device.key")


def receipts_for(p: Peer, stack: Stack) -> list[Receipt]:
    key = VerifyKey(load_or_create_server_key(stack.server.server_key_path).public_bytes)
    out = []
    for _, payload in list(p.received):
        msg = open_server_message(payload, key)
        if isinstance(msg, Receipt):
            out.append(msg)
    return out


def test_bad_messages_are_kept_aside_with_reasons_and_ingest_goes_on(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    a, b = stack.add_devices(2)
    key_a = device_key(a)
    with peer(stack, "attacker") as p:
        p.subscribe(topics.device_down(a.device_id))
        up_a = topics.device_up(a.device_id)
        # 1. signed by a key that is not the device's
        p.publish(up_a, seal(event(a.device_id, 1), SigningKey.generate()))
        # 2. device A's genuine message published on device B's topic
        p.publish(topics.device_up(b.device_id), seal(event(a.device_id, 1), key_a))
        # 3. garbage, 4. an envelope around a body of the wrong shape, 5. an unknown device, 6. oversized
        p.publish(up_a, b"\x00not json at all")
        body = b'{"type":"enterprise_scanned","seq":"one"}'
        p.publish(up_a, encode(Envelope(body=body, sig=key_a.sign(body))))
        p.publish(topics.device_up("GHOST-1"), seal(event("GHOST-1", 1), SigningKey.generate()))
        p.publish(up_a, b"{" + b" " * (70 * 1024) + b"}")
        # then an honest event: the ingest went on
        good = event(a.device_id, 1)
        p.publish(up_a, seal(good, key_a))
        wait_for(lambda: server_events(stack.server.db, a.device_id), timeout=20)
        assert rejected_reasons(stack.server.db) == ["bad_signature", "topic_mismatch", "undecodable", "schema", "unknown_device", "oversized"]
        assert server_events(stack.server.db, a.device_id) == [(good.event_id, 1)]
        assert server_events(stack.server.db, b.device_id) == []
        wait_for(lambda: receipts_for(p, stack), timeout=10)
        receipted = [i.event_id for r in receipts_for(p, stack) for i in r.items]
        assert receipted == [good.event_id]  # nothing rejected was ever receipted
    assert stack.server.metric("fe_messages_rejected_total", 'reason="bad_signature"') == 1
    assert stack.server.metric("fe_messages_rejected_total", 'reason="topic_mismatch"') == 1


def test_one_event_resent_100_times_is_stored_once(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    (a,) = stack.add_devices(1)
    payload = seal(event(a.device_id, 1), device_key(a))
    with peer(stack, a.device_id) as p:
        p.subscribe(topics.device_down(a.device_id))
        for _ in range(100):
            p.publish(topics.device_up(a.device_id), payload)
        wait_for(lambda: stack.server.metric("fe_events_stored_total") + stack.server.metric("fe_events_duplicate_total") == 100, timeout=20)
        assert len(server_events(stack.server.db, a.device_id)) == 1
        assert stack.server.metric("fe_events_duplicate_total") == 99
        # every copy was answered (copies within one batch share a receipt item)
        wait_for(lambda: receipts_for(p, stack), timeout=10)
        assert {i.status for r in receipts_for(p, stack) for i in r.items} <= {"stored", "duplicate"}


def test_seq_reused_for_different_content_is_rejected(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    (a,) = stack.add_devices(1)
    key = device_key(a)
    with peer(stack, a.device_id) as p:
        first = event(a.device_id, 1)
        p.publish(topics.device_up(a.device_id), seal(first, key))
        p.publish(topics.device_up(a.device_id), seal(event(a.device_id, 1), key))
        wait_for(lambda: rejected_reasons(stack.server.db), timeout=20)
    assert rejected_reasons(stack.server.db) == ["seq_conflict"]
    assert server_events(stack.server.db, a.device_id) == [(first.event_id, 1)]


def test_forged_receipt_never_drops_an_event(stack: Stack) -> None:
    """The agent's check (SQLite only: the server just stores the event once the forgery is ignored)."""
    stack.server.start_and_wait()
    stack.server.stop()  # no genuine receipts for now
    (dev,) = stack.add_devices(1)
    dev.start()
    code, accepted = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "FE1:91110108MA01ABCD0X"}, str(uuid.uuid4()))
    assert code == 202
    forged = Receipt(
        message_id=str(uuid.uuid4()),
        device_id=dev.device_id,
        server_time_ms=int(time.time() * 1000),
        items=[ReceiptItem(event_id=accepted["event_id"], seq=accepted["seq"], status="stored")],
    )
    with peer(stack, "forger") as p:
        p.publish(topics.device_down(dev.device_id), seal(forged, SigningKey.generate()))
        wait_for(lambda: dev.status()["forged_receipts"] >= 1, timeout=20)
    assert dev.status()["outbox_depth"] == 1  # still kept
    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, [dev])


def test_agent_disk_full(stack: Stack) -> None:
    """The agent's SQLite outbox on a full partition (SQLite only: the server's database plays no part)."""
    stack.server.start_and_wait()
    stack.server.stop()
    # 24 pages of 4 KiB: the database file cannot grow past ~96 KiB, as on a full partition.
    (dev,) = stack.add_devices(1, outbox__sqlite_max_page_count=24)
    dev.start()
    outcomes = []
    for _ in range(2000):
        code, body = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "FE1:91110108MA01ABCD0X"}, str(uuid.uuid4()))
        outcomes.append(code)
        if code != 202:
            break
    assert outcomes[-1] == 507, outcomes[-5:]
    assert body["error"] == "disk_full" and "full" in body["message"]
    assert outcomes.count(202) > 10
    assert dev.outbox_integrity() == "ok"
    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, [dev])
    code, _ = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "FE1:91110108MA01ABCD0X"}, str(uuid.uuid4()))
    assert code == 202  # room again once the receipts freed it
