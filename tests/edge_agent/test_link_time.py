"""The link's side of the time exchange and of broker denials, fed real server messages without a broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.clock import now_ms
from edge_agent.link import Link
from edge_agent.outbox import Outbox
from protocol.codec import seal
from firmware_configs import model_files
from protocol.config import Identity, load_device_config
from protocol.messages import Receipt, ReceiptItem, TimeResponse
from protocol.signing import SigningKey
from protocol.timesync import MAX_ROUND_TRIP_MS

SERVER = SigningKey.generate()
DEVICE = SigningKey.generate()


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    base = load_device_config(model_files()["body_recorder"])
    cfg = msgspec.structs.replace(base, identity=Identity(device_id="BR-1", agency_id="A", private_key_file="device.key", server_public_key=SERVER.public_hex))
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=10**6, low_priority_max_bytes=10**6, max_page_count=0)
    alarms: list[str] = []
    lk = Link(cfg, outbox, key=DEVICE, on_alarm=alarms.append)
    lk._client.publish = lambda *a, **kw: SimpleNamespace(mid=1, rc=0)  # type: ignore[method-assign]  # no broker here
    lk.alarms = alarms  # type: ignore[attr-defined]
    yield lk
    outbox.close()


def answer(link: Link, *, t1: int, nonce: str, server_ms: int, **kw: object) -> bytes:
    msg = TimeResponse(message_id=str(uuid.uuid4()), device_id=link.device_id, server_time_ms=server_ms, nonce=nonce, request_device_time_ms=t1, received_ms=server_ms, **kw)  # type: ignore[arg-type]
    return seal(msg, SERVER)


def ask(link: Link) -> tuple[str, int]:
    link._next_time_sync = 0.0
    link._sync_time_if_due()
    assert link._time_request is not None
    return link._time_request


def test_the_answer_to_the_latest_request_sets_the_offset_once(link: Link) -> None:
    nonce, t1 = ask(link)
    reply = answer(link, t1=t1, nonce=nonce, server_ms=now_ms() + 60_000)
    link._handle_server_message(reply)
    assert link.stats.clock_offset_ms is not None and abs(link.stats.clock_offset_ms - 60_000) < 1_000
    first = link.stats.clock_offset_ms
    link._handle_server_message(answer(link, t1=t1, nonce=nonce, server_ms=now_ms() - 60_000))  # a replay of the nonce
    assert link.stats.clock_offset_ms == first and link.stats.time_answers_ignored == 1


def test_a_clock_off_beyond_its_stated_error_is_alarmed_once_until_it_is_right(link: Link) -> None:
    for server_ahead_ms in (2 * 86_400_000, 2 * 86_400_000, 0, 2 * 86_400_000):
        nonce, t1 = ask(link)
        link._handle_server_message(answer(link, t1=t1, nonce=nonce, server_ms=now_ms() + server_ahead_ms))
    assert [a.count("clock_off") for a in link.alarms] == [1, 1]  # type: ignore[attr-defined]  # off, (still off), right, off again


def test_an_answer_to_an_older_request_is_ignored(link: Link) -> None:
    old_nonce, old_t1 = ask(link)
    ask(link)  # a newer request: only its answer counts
    link._handle_server_message(answer(link, t1=old_t1, nonce=old_nonce, server_ms=now_ms()))
    assert link.stats.clock_offset_ms is None and link.stats.time_answers_ignored == 1


def test_an_answer_after_a_long_round_trip_is_ignored(link: Link) -> None:
    nonce, _ = ask(link)
    t1 = now_ms() - MAX_ROUND_TRIP_MS - 1_000  # as if the request had been made long ago
    link._time_request = (nonce, t1)
    link._handle_server_message(answer(link, t1=t1, nonce=nonce, server_ms=now_ms()))
    assert link.stats.clock_offset_ms is None and link.stats.time_answers_ignored == 1


def test_a_forged_answer_is_refused(link: Link) -> None:
    nonce, t1 = ask(link)
    forged = seal(TimeResponse(message_id=str(uuid.uuid4()), device_id="BR-1", server_time_ms=1, nonce=nonce, request_device_time_ms=t1, received_ms=1), SigningKey.generate())
    link._handle_server_message(forged)
    assert link.stats.clock_offset_ms is None and link.stats.forged_receipts == 1


def test_receipts_never_set_the_clock(link: Link) -> None:
    stale = Receipt(message_id=str(uuid.uuid4()), device_id="BR-1", server_time_ms=now_ms() - 3 * 86_400_000, items=[ReceiptItem(event_id="e" * 8, seq=1, status="stored")])
    link._handle_server_message(seal(stale, SERVER))
    assert link.stats.clock_offset_ms is None and link.stats.receipts == 1


def test_denials_are_counted_apart_and_alarmed_once_per_kind(link: Link) -> None:
    denied, ok = ReasonCode(PacketTypes.PUBACK, identifier=0x87), ReasonCode(PacketTypes.PUBACK, identifier=0)
    quota = ReasonCode(PacketTypes.PUBACK, identifier=0x97)
    for mid in range(1, 6):
        link._mids[mid] = "fe/v1/dev/BR-1/up"
        link._on_publish(link._client, None, mid, denied, None)
    link._on_publish(link._client, None, 9, ok, None)
    link._mids[10] = "fe/v1/dev/BR-1/up"
    link._on_publish(link._client, None, 10, quota, None)
    assert (link.stats.publish_denied, link.stats.broker_acked) == (6, 1)
    assert link.stats.last_denial is not None and link.stats.last_denial["reason_code"] == 0x97
    assert [a.count("publish_denied") for a in link.alarms] == [1, 1]  # type: ignore[attr-defined]  # 0x87 once, 0x97 once
