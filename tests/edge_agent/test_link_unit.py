"""The link's delivery loop without a broker: built paho messages and reason codes fed to its callbacks.

A real outbox on SQLite holds real sealed events; the paho client is built by ``Link`` but never connects: its
``publish`` and ``subscribe`` are replaced on the instance by a recorder (tests/support/mqtt_messages.py). The
sender loop is driven through its own steps (``_drain_inbox``, ``_fill_window``), or run as its thread and waited
on with a deadline. The time exchange and denial alarms are tested in test_link_time.py.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edge_agent.link import Link
from edge_agent.outbox import Accepted, Draft, Outbox
from firmware_configs import model_files
from protocol import topics
from protocol.codec import seal, seal_with_body
from protocol.config import Identity, load_device_config
from protocol.messages import DeviceStatus, Receipt, ReceiptItem, Rejection, RejectionItem
from protocol.signing import SigningKey
from tests.support.mqtt_messages import BAD_CREDENTIALS, NOT_AUTHORIZED, Recorder, connack, connect_flags, disconnect_reason, message, puback
from tests.support.waiting import wait_for

SERVER = SigningKey.generate()
DEVICE = SigningKey.generate()
UP = topics.device_up("BR-1")
DOWN = topics.device_down("BR-1")
PRESENCE = topics.device_presence("BR-1")
#: How long a test waits for the sender thread before failing (it takes milliseconds when things work).
DEADLINE_S = 10.0
#: The most rejections the status keeps (edge_agent/link.py keeps the newest this many).
REJECTIONS_KEPT = 100


def draft(n: int) -> Draft:
    """A DeviceStatus event, sealed with the device's key once the outbox numbers it (as edge_agent/agent.py does)."""
    template = DeviceStatus(
        event_id=str(uuid.uuid4()), device_id="BR-1", seq=1, device_time_ms=int(time.time() * 1000), clock_error_ms=5,
        outbox_depth=n, oldest_unsent_age_s=0.0, free_storage_bytes=10**9,
    )  # fmt: skip

    def build(seq: int, prev_hash: str | None) -> tuple[str, bytes, str]:
        payload, body = seal_with_body(msgspec.structs.replace(template, seq=seq, prev_hash=prev_hash), DEVICE)
        return "device_status", payload, hashlib.sha256(body).hexdigest()

    return Draft(event_id=template.event_id, low_priority=False, build=build)


class Harness:
    """A Link over a real outbox, its paho client's outputs recorded."""

    def __init__(self, link: Link, recorder: Recorder) -> None:
        self.link = link
        self.rec = recorder
        self._mids = iter(range(1, 65536))

    def accept(self, n: int) -> list[Accepted]:
        """n events accepted into the outbox (as the local API does)."""
        out = self.link.outbox.append([draft(i) for i in range(n)])
        assert all(isinstance(a, Accepted) for a in out)
        return out  # type: ignore[return-value]

    def connect(self) -> None:
        """The broker accepted the connection; the sender takes note and fills its window."""
        self.link._on_connect(self.link._client, None, connect_flags(), connack(), None)
        self.link._drain_inbox()
        self.link._fill_window()

    def receive(self, payload: bytes, topic: str = DOWN) -> None:
        """A message from the broker, handed over as paho's thread would, then taken by the sender."""
        self.link._on_message(self.link._client, None, message(topic, payload, mid=next(self._mids)))
        self.link._drain_inbox()

    def receipt(self, accepted: list[Accepted], *, key: SigningKey = SERVER, device_id: str = "BR-1") -> bytes:
        """A sealed receipt naming these events."""
        items = [ReceiptItem(event_id=a.event_id, seq=a.seq, status="stored", log_index=i) for i, a in enumerate(accepted)]
        return seal(Receipt(message_id=str(uuid.uuid4()), device_id=device_id, server_time_ms=int(time.time() * 1000), items=items), key)

    def outbox_seqs(self) -> list[int]:
        """Sequence numbers still in the outbox."""
        return [r.seq for r in self.link.outbox.next_after(0, 10_000)]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    """A Link for BR-1 (never connected) over a fresh outbox."""
    base = load_device_config(model_files()["body_recorder"])
    cfg = msgspec.structs.replace(base, identity=Identity(device_id="BR-1", agency_id="A", private_key_file="device.key", server_public_key=SERVER.public_hex))
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=10**6, low_priority_max_bytes=10**6, max_page_count=0)
    link = Link(cfg, outbox, key=DEVICE)
    harness = Harness(link, Recorder().install(link._client))
    yield harness
    link._stop.set()
    link._wake.set()
    if link._thread.is_alive():
        link._thread.join(DEADLINE_S)
    outbox.close()


def test_connecting_subscribes_to_the_down_topic_and_says_online(h: Harness) -> None:
    h.link._on_connect(h.link._client, None, connect_flags(), connack(), None)
    assert h.rec.subscribed == [(DOWN, 1)]
    (p,) = h.rec.published
    assert (p.topic, p.payload, p.qos, p.retain) == (PRESENCE, b"online", 1, True)
    h.link._drain_inbox()
    assert h.link.stats.connected and h.link.stats.connects == 1


def test_a_refused_connection_subscribes_to_nothing_and_sends_nothing(h: Harness) -> None:
    h.accept(2)
    for code in (BAD_CREDENTIALS, NOT_AUTHORIZED):
        h.link._on_connect(h.link._client, None, connect_flags(), connack(code), None)
    h.link._drain_inbox()
    assert h.rec.subscribed == [] and h.rec.published == []
    assert not h.link.stats.connected and h.link.stats.connects == 0


def test_a_refused_login_raises_one_alarm_per_reason_until_a_login_is_accepted(h: Harness) -> None:
    alarms: list[str] = []
    h.link._on_alarm = alarms.append
    for code in (BAD_CREDENTIALS, BAD_CREDENTIALS, NOT_AUTHORIZED, BAD_CREDENTIALS):  # paho keeps retrying
        h.link._on_connect(h.link._client, None, connect_flags(), connack(code), None)
    assert [json.loads(a)["alarm"] for a in alarms] == ["connect_refused", "connect_refused"]
    assert h.link.stats.last_refusal is not None and h.link.stats.last_refusal["reason_code"] == BAD_CREDENTIALS
    h.link._on_connect(h.link._client, None, connect_flags(), connack(), None)
    assert h.link.stats.last_refusal is None
    h.link._on_connect(h.link._client, None, connect_flags(), connack(BAD_CREDENTIALS), None)  # revoked later: news again
    assert len(alarms) == 3


def test_the_window_publishes_the_outbox_in_sequence_order_at_qos_1(h: Harness) -> None:
    accepted = h.accept(3)
    h.connect()
    sent = h.rec.on(UP)
    assert [p.payload for p in sent] == [r.payload for r in h.link.outbox.next_after(0, 10)]
    assert all(p.qos == 1 and not p.retain for p in sent)
    assert h.link.inflight == 3 and h.link.stats.published == 3
    assert [a.seq for a in accepted] == h.outbox_seqs()  # published is not delivered: every row stays


def test_a_receipt_signed_by_the_server_removes_its_rows_and_in_flight_entries_only(h: Harness) -> None:
    first, second, third = h.accept(3)
    h.connect()
    h.receive(h.receipt([first, second]))
    assert h.outbox_seqs() == [third.seq] and h.link.inflight == 1
    assert (h.link.stats.receipts, h.link.stats.receipted_events, h.link.stats.forged_receipts) == (1, 2, 0)
    assert h.link.stats.last_receipt_ms is not None
    wrong_id = Accepted(seq=third.seq, event_id=str(uuid.uuid4()))  # right seq, another event: not this row
    h.receive(h.receipt([wrong_id]))
    assert h.outbox_seqs() == [third.seq] and h.link.inflight == 1 and h.link.stats.receipted_events == 2


def test_the_sender_thread_delivers_and_empties_the_outbox_on_receipts(h: Harness) -> None:
    accepted = h.accept(5)
    h.link._thread.start()
    h.link._on_connect(h.link._client, None, connect_flags(), connack(), None)
    wait_for(lambda: len(h.rec.on(UP)) == 5, DEADLINE_S, message="the sender did not publish the outbox")
    h.link._on_message(h.link._client, None, message(DOWN, h.receipt(accepted)))
    wait_for(lambda: h.link.outbox.depth == 0 and h.link.inflight == 0, DEADLINE_S, message="the receipt did not empty the outbox")
    assert h.link.stats.receipted_events == 5 and len(h.rec.on(UP)) == 5  # nothing resent meanwhile


def test_a_forged_receipt_removes_nothing_and_is_counted(h: Harness) -> None:
    accepted = h.accept(3)
    h.connect()
    h.receive(h.receipt(accepted, key=SigningKey.generate()))  # someone with broker access, not the server
    h.receive(b'{"body": "e30=", "sig": "AAAA"}')  # an envelope whose signature is junk
    assert h.outbox_seqs() == [a.seq for a in accepted] and h.link.inflight == 3
    assert (h.link.stats.forged_receipts, h.link.stats.receipts, h.link.stats.receipted_events) == (2, 0, 0)


def test_a_receipt_addressed_to_another_device_is_refused(h: Harness) -> None:
    accepted = h.accept(2)
    h.connect()
    h.receive(h.receipt(accepted, device_id="BR-2"))  # signed by the server, but for BR-2 (a misrouted or replayed one)
    assert h.outbox_seqs() == [a.seq for a in accepted] and h.link.inflight == 2
    assert (h.link.stats.forged_receipts, h.link.stats.receipts) == (1, 0)


def test_a_denied_publish_is_counted_and_a_puback_is_not_proof_of_storage(h: Harness) -> None:
    first, second = h.accept(2)
    h.connect()
    denied, acked = h.rec.on(UP)
    h.link._on_publish(h.link._client, None, denied.mid, puback(NOT_AUTHORIZED), None)  # the broker's ACL refused it
    h.link._on_publish(h.link._client, None, acked.mid, puback(), None)
    s = h.link.stats
    assert (s.publish_denied, s.broker_acked) == (1, 1)
    assert s.last_denial is not None and (s.last_denial["topic"], s.last_denial["reason_code"]) == (UP, NOT_AUTHORIZED)
    assert h.outbox_seqs() == [first.seq, second.seq] and h.link.inflight == 2  # both wait for the server's receipt


def test_a_reconnect_sends_every_unreceipted_event_again_oldest_first(h: Harness) -> None:
    first, second, third = h.accept(3)
    h.connect()
    p1, p2, p3 = (p.payload for p in h.rec.on(UP))
    h.receive(h.receipt([second]))
    h.link._on_disconnect(h.link._client, None, None, disconnect_reason(), None)
    h.link._drain_inbox()
    assert not h.link.stats.connected
    h.connect()  # what was in flight may be lost with the old connection
    assert [p.payload for p in h.rec.on(UP)] == [p1, p2, p3, p1, p3]
    assert h.link.stats.connects == 2 and h.link.inflight == 2 and h.outbox_seqs() == [first.seq, third.seq]


def test_rejections_are_recorded_newest_kept_and_bounded(h: Harness) -> None:
    def rejection(seqs: range, key: SigningKey = SERVER) -> bytes:
        items = [RejectionItem(event_id=f"ev-{s}", seq=s, reason_code="schema", reason=f"seq {s} does not match the schema") for s in seqs]
        return seal(Rejection(message_id=str(uuid.uuid4()), device_id="BR-1", server_time_ms=int(time.time() * 1000), items=items), key)

    h.receive(rejection(range(1, 61)))
    assert [r["seq"] for r in h.link.stats.rejections] == list(range(1, 61))
    assert h.link.stats.rejections[0] == {"event_id": "ev-1", "seq": 1, "reason_code": "schema", "reason": "seq 1 does not match the schema"}
    h.receive(rejection(range(61, 211)))  # one message of 150 items, more than the bound by itself
    assert [r["seq"] for r in h.link.stats.rejections] == list(range(211 - REJECTIONS_KEPT, 211))
    h.receive(rejection(range(1000, 1001), key=SigningKey.generate()))  # a forged one is not recorded
    assert h.link.stats.rejections[-1]["seq"] == 210 and h.link.stats.forged_receipts == 1
