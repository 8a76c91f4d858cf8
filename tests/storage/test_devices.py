"""server/storage/devices.py on both backends: events in once, device state, gaps, rejected rows, clocks."""

from __future__ import annotations

import hashlib

import pytest

from server.storage import devices
from server.storage.devices import DeviceDelta, EventRow, RejectedRow
from server.storage.engine import Storage, Tx, sql

_DEVICE = sql("""
    INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms, revoked_ms)
    VALUES (:device_id, 'M', 'body_recorder', 'A', :key, :registered_ms, :revoked_ms)
""")
_STATE = sql("SELECT max_seq, stored_count, duplicate_count, last_seen_ms, online, presence_ms FROM device_state WHERE device_id = :device_id")
_COUNT = sql("SELECT count(*) FROM events")
_REMOVED = sql("INSERT INTO retention_removed(event_id, device_id, seq, log_index, type, removed_ms, rule) VALUES (:event_id, 'D1', :seq, NULL, 't', 0, 'r')")
_REJECTED = sql("SELECT id, raw, sha256 FROM rejected ORDER BY id")
_SUSPECTS = sql("SELECT event_id, reason FROM clock_suspects ORDER BY event_id")


def register(tx: Tx, device_id: str, *, registered_ms: int = 5, revoked_ms: int | None = None) -> None:
    tx.run(_DEVICE, device_id=device_id, key=f"key-{device_id}", registered_ms=registered_ms, revoked_ms=revoked_ms)


def row(seq: int, device_id: str = "D1", event_id: str | None = None, body: bytes | None = None, prev_hash: str | None = None) -> EventRow:
    body = body if body is not None else f"{device_id}-{seq}".encode()
    return EventRow(
        event_id=event_id or f"{device_id}-e{seq}", device_id=device_id, seq=seq, type="t", device_time_ms=1, clock_error_ms=2, received_ms=3,
        stored_ms=4, wire_format="json", body=body, sig=b"\x01" * 64, body_json="{}", prev_hash=prev_hash, body_sha256=hashlib.sha256(body).hexdigest(),
    )  # fmt: skip


@pytest.fixture
def registered(store: Storage) -> Storage:
    with store.writing() as tx:
        register(tx, "D1")
        register(tx, "D2", revoked_ms=9)
    return store


def test_registrations_of_known_devices_only(registered: Storage) -> None:
    with registered.reading() as tx:
        assert devices.registrations(tx, {"D2", "D1", "NOPE"}) == [("D1", "key-D1", None), ("D2", "key-D2", 9)]
        assert devices.registrations(tx, []) == []
        assert devices.format_and_kind(tx, "D1") == ("json", "body_recorder")
        assert devices.format_and_kind(tx, "NOPE") is None


def test_an_event_is_stored_once_whichever_key_it_collides_on(registered: Storage) -> None:
    with registered.writing() as tx:
        assert devices.insert_events(tx, [row(2), row(1), row(1)]) == {"D1-e1", "D1-e2"}
        assert devices.insert_events(tx, []) == set()
    with registered.writing() as tx:
        again = [row(1), row(3, event_id="D1-e2"), row(2, event_id="other"), row(4), row(1, "D2")]
        assert devices.insert_events(tx, again) == {"D1-e4", "D2-e1"}
        assert devices.stored_bodies(tx, {"D1-e2", "other", "D1-e4"}) == {"D1-e2": b"D1-2", "D1-e4": b"D1-4"}
        assert devices.stored_bodies(tx, set()) == {}
        assert tx.scalar(_COUNT) == 4


def test_the_first_of_two_rows_with_one_sequence_number_wins(registered: Storage) -> None:
    with registered.writing() as tx:
        assert devices.insert_events(tx, [row(1, event_id="first"), row(1, event_id="second")]) == {"first"}


def test_links_around_reads_both_neighbours(registered: Storage) -> None:
    with registered.writing() as tx:
        devices.insert_events(tx, [row(1), row(2, prev_hash="h1"), row(4, prev_hash="h3")])
        around = devices.links_around(tx, "D1", [3])
    assert around == {2: ("h1", hashlib.sha256(b"D1-2").hexdigest()), 4: ("h3", hashlib.sha256(b"D1-4").hexdigest())}


def test_device_state_counts_and_keeps_the_highest_sequence_number(registered: Storage) -> None:
    with registered.writing() as tx:
        devices.bump_device_state(tx, [DeviceDelta("D1", 7, 3, 1)], now_ms=100)
        devices.bump_device_state(tx, [DeviceDelta("D1", 5, 1, 0)], now_ms=200)  # a late event: max_seq stays
        devices.set_presence(tx, "D1", True, 300)
        devices.set_presence(tx, "D2", False, 400)
        assert tx.one(_STATE, device_id="D1") == (7, 4, 1, 200, 1, 300)
        assert tx.one(_STATE, device_id="D2") == (0, 0, 0, None, 0, 400)


def test_sequence_holes_count_retention_removals_as_arrived(registered: Storage) -> None:
    with registered.writing() as tx:
        assert devices.sequence_holes(tx, "D1") == (None, [])
        devices.insert_events(tx, [row(s) for s in (3, 4, 7, 10)])
        tx.run(_REMOVED, event_id="gone", seq=8)
        assert devices.sequence_holes(tx, "D1") == (3, [(5, 6), (9, 9)])


def rejected_row(n: int, raw: bytes = b"junk") -> RejectedRow:
    return RejectedRow(received_ms=n, topic="t", device_id=None, event_id=None, reason_code="undecodable", reason="r", raw=raw, size=len(raw), sha256="s")


def test_rejected_rows_totals_and_bounds(store: Storage) -> None:
    with store.writing() as tx:
        ids = [devices.add_rejected(tx, rejected_row(n)) for n in range(5)]
        devices.count_rejected(tx, {"undecodable": (5, 4), "bad_topic": (1, 9)})
        devices.count_rejected(tx, {"undecodable": (1, 2)})
        assert ids == sorted(ids) and len(set(ids)) == 5
        devices.drop_rejected_bytes(tx, ids[2])
        devices.delete_rejected(tx, ids[0])
        assert [(i, bytes(raw)) for i, raw, _ in tx.all(_REJECTED)] == [(ids[1], b""), (ids[2], b""), (ids[3], b"junk"), (ids[4], b"junk")]
        assert devices.rejected_counts(tx) == [("undecodable", 6, 4), ("bad_topic", 1, 9)]
        recent = devices.recent_rejected(tx, 2)
    assert [(r[0], r[7], r[9]) for r in recent] == [(ids[4], 4, 4), (ids[3], 4, 4)]


def test_unhashed_rejected_rows_get_their_hash(store: Storage) -> None:
    with store.writing() as tx:
        first = devices.add_rejected(tx, rejected_row(1))
        tx.run(sql("UPDATE rejected SET sha256 = NULL WHERE id = :id"), id=first)
        assert devices.unhashed_rejected(tx, first) == [(first, b"junk")]
        devices.set_rejected_hashes(tx, {first: "h"})
        assert devices.unhashed_rejected(tx, first) == []


def test_clock_state_starts_from_the_register_and_suspects_are_flagged_once(registered: Storage) -> None:
    with registered.writing() as tx:
        assert devices.clock_state(tx, "NOPE") is None
        assert devices.clock_state(tx, "D1") == (5, None, None, None)
        devices.set_clock_state(tx, "D1", 40, 50, None)
        assert devices.clock_state(tx, "D1") == (5, 40, 50, None)
        devices.insert_events(tx, [row(1)])
        for _ in range(2):
            devices.add_clock_suspect(tx, event_id="D1-e1", device_id="D1", reason="future", detail="d", device_time_ms=1, received_ms=2)
        assert tx.all(_SUSPECTS) == [("D1-e1", "future")]
