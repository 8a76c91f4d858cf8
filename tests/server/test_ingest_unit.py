"""The ingest without a broker: built paho messages fed to ``Ingest._on_message``, a real database (SQLite and
PostgreSQL in turn), real keys.

The paho client is built by ``Ingest`` but never connects: its ``publish``, ``subscribe`` and ``ack`` are
replaced on the instance by a recorder (tests/support/mqtt_messages.py), and the writer thread is the real one,
waited on with a deadline. The paused writer (database cannot write) is tested in test_ingest_storage.py.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protocol import topics
from protocol.codec import MAX_PAYLOAD_BYTES, open_server_message, seal
from protocol.config import load_toml
from protocol.decision import Policy
from protocol.messages import DeviceStatus, Receipt, ServerMessage, TimeRequest, TimeResponse
from protocol.signing import SigningKey
from protocol.timesync import MESSAGE_EXPIRY_S
from server.ingest import subscriber as ingestmod
from server.ingest.metrics import IngestMetrics
from server.settings import ServerSettings
from server.storage.engine import sql, storage_for
from server.ingest.store import REJECTED_PREFIX_BYTES
from tests.support.mqtt_messages import BAD_CREDENTIALS, Recorder, connack, connect_flags, message
from tests.support.waiting import wait_for

SERVER = SigningKey.generate()
DEVICE = SigningKey.generate()
POLICY_FILE = Path(ingestmod.__file__).parents[1] / "policy.toml"
UP = topics.device_up("BR-1")
DOWN = topics.device_down("BR-1")
#: How long a test waits for the writer before failing (it takes milliseconds when things work).
DEADLINE_S = 10.0
#: How long a blocked publish callback is given to (wrongly) return before the test calls it blocked.
BLOCKED_S = 0.3


def status(seq: int, device_id: str = "BR-1", key: SigningKey = DEVICE) -> bytes:
    """A device's sealed DeviceStatus event (the projector sends no further notices for it)."""
    msg = DeviceStatus(
        event_id=str(uuid.uuid4()), device_id=device_id, seq=seq, device_time_ms=int(time.time() * 1000), clock_error_ms=5,
        outbox_depth=0, oldest_unsent_age_s=0.0, free_storage_bytes=10**9,
    )  # fmt: skip
    return seal(msg, key)


class Harness:
    """An Ingest on a real database, its paho client's outputs recorded."""

    def __init__(self, db_path: str, ingest: ingestmod.Ingest, recorder: Recorder) -> None:
        self.db_path = db_path
        self.ingest = ingest
        self.rec = recorder
        self._mids = iter(range(1, 65536))

    def deliver(self, topic: str, payload: bytes) -> int:
        """Hand the ingest a message as paho's thread would; its message id."""
        mid = next(self._mids)
        self.ingest._on_message(self.ingest._client, None, message(topic, payload, mid=mid))
        return mid

    def query(self, text: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
        """Rows from a read-only connection of this thread: only what the writer committed."""
        return storage_for(self.db_path).read(lambda tx: [tuple(r) for r in tx.all(sql(text), params)])

    def down(self) -> list[ServerMessage]:
        """Every message published to BR-1, verified with the server's public key."""
        return [open_server_message(p.payload, SERVER.verifier()) for p in self.rec.on(DOWN)]

    def receipts(self) -> list[Receipt]:
        """The receipts published to BR-1, in order."""
        return [m for m in self.down() if isinstance(m, Receipt)]

    @contextmanager
    def writer(self) -> Iterator[None]:
        """The real verifier and writer threads, stopped (after draining the queue) on exit."""
        self.ingest.start_workers()
        try:
            yield
        finally:
            stopped = self.ingest.stop_workers(DEADLINE_S)
        assert stopped, "the verifier or the writer did not stop"
        assert self.ingest.writer_error is None

    def until(self, predicate: Callable[[], object], what: str) -> None:
        """Wait for the writer to make ``predicate`` true."""
        wait_for(predicate, DEADLINE_S, message=what)


_DEVICE = sql(
    "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms, revoked_ms) VALUES (:device_id, 'M', 'body_recorder', 'A', :key, 0, :revoked_ms)"
)
_REVOKE = sql("UPDATE devices SET revoked_ms = :now_ms WHERE device_id = 'BR-1'")


@pytest.fixture
def make(db_url: str) -> Iterator[Callable[[], Harness]]:
    """Build an Ingest (never connected) over a migrated database with BR-1 registered and BR-REV revoked."""
    path = db_url
    storage_for(path).write(
        lambda tx: tx.many(_DEVICE, [
            {"device_id": "BR-1", "key": DEVICE.public_hex, "revoked_ms": None},
            {"device_id": "BR-REV", "key": DEVICE.public_hex, "revoked_ms": int(time.time() * 1000) - 60_000},
        ])
    )  # fmt: skip
    built: list[ingestmod.Ingest] = []

    def build() -> Harness:
        ing = ingestmod.Ingest(ServerSettings(db_path=path, jobs_enabled=False), SERVER, IngestMetrics(), load_toml(POLICY_FILE, Policy))
        built.append(ing)
        return Harness(path, ing, Recorder().install(ing._client))

    yield build
    for ing in built:  # a test that failed half-way must not leave a writer running
        ing.stop_workers(DEADLINE_S)
        ing._client_lock.release()  # taken by _on_connect (the client id's lock: a connection of its own on PostgreSQL)


@pytest.fixture
def h(make: Callable[[], Harness]) -> Harness:
    """The usual harness."""
    return make()


def test_a_valid_event_is_acked_stored_once_and_receipted_after_its_commit(h: Harness) -> None:
    payload = status(1)
    stored_when_published: list[int] = []
    record = h.ingest._client.publish

    def publish(*a: object, **kw: object) -> object:  # what another process could read when the receipt left
        stored_when_published.append(h.query("SELECT COUNT(*) FROM events")[0][0])
        return record(*a, **kw)  # type: ignore[operator]

    h.ingest._client.publish = publish  # type: ignore[method-assign]
    mid = h.deliver(UP, payload)
    assert h.rec.acks == [(mid, 1)]  # PUBACK once it is queued: the writer is healthy
    with h.writer():
        h.until(lambda: h.rec.on(DOWN), "no receipt was published")
    (receipt,) = h.receipts()
    rows = h.query("SELECT event_id, seq, device_id, body FROM events")
    assert len(rows) == 1 and rows[0][1:3] == (1, "BR-1")
    (item,) = receipt.items
    assert (item.event_id, item.seq, item.status) == (rows[0][0], 1, "stored") and item.log_index is not None
    assert receipt.device_id == "BR-1"
    assert stored_when_published == [1]  # committed before the receipt was handed to paho
    (p,) = h.rec.on(DOWN)
    assert p.qos == 1 and not p.retain


def test_a_redelivered_event_is_stored_once_and_receipted_each_time(h: Harness) -> None:
    payload = status(1)
    with h.writer():
        h.deliver(UP, payload)
        h.until(lambda: len(h.receipts()) == 1, "no first receipt")
        h.deliver(UP, payload)  # the broker sends it again (the device missed the receipt and resent)
        h.until(lambda: len(h.receipts()) == 2, "no second receipt")
    first, second = (r.items for r in h.receipts())
    assert [i.status for i in first + second] == ["stored", "duplicate"]
    assert first[0].event_id == second[0].event_id and first[0].log_index == second[0].log_index
    assert h.query("SELECT COUNT(*) FROM events") == [(1,)]
    assert h.query("SELECT stored_count, duplicate_count FROM device_state WHERE device_id = 'BR-1'") == [(1, 1)]
    assert h.query("SELECT COUNT(*) FROM rejected") == [(0,)]


def test_the_same_event_twice_in_one_batch_is_stored_and_receipted_once(h: Harness) -> None:
    payload = status(1)
    h.deliver(UP, payload)
    h.deliver(UP, payload)  # both queued before the writer starts: they form one batch
    with h.writer():
        h.until(lambda: h.receipts(), "no receipt")
    (receipt,) = h.receipts()  # the writer drained the queue before it stopped: nothing more comes
    assert [i.status for i in receipt.items] == ["stored"]
    assert h.query("SELECT COUNT(*) FROM events") == [(1,)]


def test_an_event_on_a_topic_that_is_not_a_device_uplink_is_kept_aside_unreceipted(h: Harness) -> None:
    bad_topics = ["fe/v1/dev/BR-1/status", "fe/v1/dev/BR-1/up/again", "other/BR-1/up"]
    mids = [h.deliver(t, status(n)) for n, t in enumerate(bad_topics, start=1)]
    with h.writer():
        h.until(lambda: h.query("SELECT COUNT(*) FROM rejected")[0][0] == len(bad_topics), "not every message was kept aside")
    rows = h.query("SELECT topic, device_id, reason_code, reason FROM rejected ORDER BY id")
    assert [r[0] for r in rows] == bad_topics
    assert all(r[1] is None and r[2] == "bad_topic" and "not a device 'up' topic" in r[3] for r in rows)
    assert h.query("SELECT COUNT(*) FROM events") == [(0,)]
    assert h.rec.published == []  # no receipt, and no Rejection either: nobody proved who sent it
    assert h.rec.acks == [(m, 1) for m in mids]  # taken off the broker all the same: kept here, with the reason


def test_junk_payloads_are_rejected_with_their_reason_and_the_ingest_goes_on(h: Harness) -> None:
    oversized = b"{" + b"x" * MAX_PAYLOAD_BYTES
    junk = [b"\x00\x01 not an envelope", b"{not json", b'{"body": 1, "sig": 2}', b"", oversized]
    for payload in junk:
        h.deliver(UP, payload)
    h.deliver(UP, status(1))
    with h.writer():
        h.until(lambda: h.receipts(), "the valid event after the junk was not receipted")
    rows = h.query("SELECT reason_code, reason, size, sha256, LENGTH(raw) FROM rejected ORDER BY id")
    assert [r[0] for r in rows] == ["undecodable", "undecodable", "bad_envelope", "undecodable", "oversized"]
    assert "neither a JSON object nor a MessagePack map" in rows[0][1] and "empty payload" in rows[3][1]
    assert f"exceeds the limit of {MAX_PAYLOAD_BYTES}" in rows[4][1]
    assert [(r[2], r[3]) for r in rows] == [(len(p), hashlib.sha256(p).hexdigest()) for p in junk]
    assert rows[4][4] == REJECTED_PREFIX_BYTES  # junk cannot fill the disk: only its first bytes are kept
    assert h.query("SELECT COUNT(*) FROM events") == [(1,)]
    assert len(h.rec.published) == 1  # only the valid event's receipt


def test_presence_sets_online_and_offline_for_registered_devices_only(h: Harness) -> None:
    with h.writer():
        h.deliver(topics.device_presence("BR-1"), b"online")
        h.until(lambda: h.query("SELECT online FROM device_state WHERE device_id = 'BR-1'") == [(1,)], "online was not recorded")
        h.deliver(topics.device_presence("GHOST"), b"offline")  # not registered: nothing to record, nothing to alert
        h.deliver("fe/v1/dev/presence", b"offline")  # not a presence topic at all
        h.deliver(topics.device_presence("BR-1"), b"offline")  # the device's last will, published by the broker
        h.until(lambda: h.query("SELECT online FROM device_state WHERE device_id = 'BR-1'") == [(0,)], "offline was not recorded")
    assert h.query("SELECT device_id FROM device_state ORDER BY device_id") == [("BR-1",)]
    alerts = h.query("SELECT kind, device_id, message_en FROM alerts ORDER BY id")
    assert alerts == [("device_offline", "BR-1", "Device BR-1 went offline (disconnected).")]
    assert h.query("SELECT COUNT(*) FROM events") == [(0,)] and h.query("SELECT COUNT(*) FROM rejected") == [(0,)]
    assert h.rec.published == []  # a body recorder gets no decision snapshot
    assert len(h.rec.acks) == 4


def test_a_revoked_device_is_refused_and_a_revocation_applies_from_the_next_batch(h: Harness) -> None:
    with h.writer():
        h.deliver(topics.device_up("BR-REV"), status(1, "BR-REV"))
        h.deliver(UP, status(1))
        h.until(lambda: h.receipts(), "BR-1's event was not receipted")
        # `fe-server devices revoke` from another process, the ingest still running
        storage_for(h.db_path).write(lambda tx: tx.run(_REVOKE, now_ms=int(time.time() * 1000)))
        h.deliver(UP, status(2))
        h.until(lambda: h.query("SELECT COUNT(*) FROM rejected")[0][0] == 2, "the revoked devices' events were not refused")
    rows = h.query("SELECT topic, reason_code, reason FROM rejected ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [(topics.device_up("BR-REV"), "unknown_device"), (UP, "unknown_device")]
    assert all("was revoked at" in r[2] and "refused" in r[2] for r in rows)
    assert h.query("SELECT device_id, seq FROM events") == [("BR-1", 1)]
    assert len(h.receipts()) == 1 and not h.rec.on(topics.device_down("BR-REV"))


def test_a_full_queue_blocks_paho_and_holds_the_puback_until_the_writer_takes_messages(make: Callable[[], Harness], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingestmod, "QUEUE_MAX", 2)  # read when the Ingest is built: no constructor argument for it
    h = make()
    h.deliver(UP, status(1))
    h.deliver(UP, status(2))
    assert h.ingest.queue_depth == 2 and h.rec.acks == [(1, 1), (2, 1)]
    third = status(3)
    paho_thread = threading.Thread(target=h.deliver, args=(UP, third), name="paho-stand-in", daemon=True)
    paho_thread.start()
    try:
        paho_thread.join(BLOCKED_S)
        assert paho_thread.is_alive(), "on_message returned while the queue was full: the message was dropped or not bounded"
        assert h.rec.acks == [(1, 1), (2, 1)]  # no PUBACK yet: the broker's in-flight window fills and it keeps the rest
        with h.writer():
            paho_thread.join(DEADLINE_S)
            assert not paho_thread.is_alive(), "on_message stayed blocked after the writer started taking messages"
            h.until(lambda: sum(len(r.items) for r in h.receipts()) == 3, "not all three events were receipted")
    finally:
        while paho_thread.is_alive():  # unblock it if an assertion failed first
            h.ingest._queue.get(timeout=DEADLINE_S)
            paho_thread.join(DEADLINE_S)
    assert h.rec.acks == [(1, 1), (2, 1), (3, 1)]
    assert h.query("SELECT seq FROM events ORDER BY seq") == [(1,), (2,), (3,)]


def test_a_time_request_is_answered_at_once_on_pahos_thread_and_nothing_is_stored(h: Harness) -> None:
    t1 = int(time.time() * 1000)
    request = seal(TimeRequest(device_id="BR-1", nonce="n" * 24, device_time_ms=t1), DEVICE)
    h.deliver(topics.device_time("BR-REV"), seal(TimeRequest(device_id="BR-REV", nonce="r" * 24, device_time_ms=t1), DEVICE))  # revoked
    mid = h.deliver(topics.device_time("BR-1"), request)  # no writer running: the answer must not wait behind stored events
    (answer,) = h.down()
    assert isinstance(answer, TimeResponse) and (answer.nonce, answer.request_device_time_ms) == ("n" * 24, t1)
    (p,) = h.rec.published  # nothing for the revoked device
    assert p.qos == 1 and p.properties is not None and p.properties.MessageExpiryInterval == MESSAGE_EXPIRY_S
    assert h.ingest.queue_depth == 0 and h.rec.acks == [(1, 1), (mid, 1)]
    with h.writer():
        pass  # the writer finds nothing to store
    assert h.query("SELECT COUNT(*) FROM events") == [(0,)] and h.query("SELECT COUNT(*) FROM rejected") == [(0,)]


def test_connect_subscribes_to_uplinks_presence_and_time_but_not_when_refused(h: Harness) -> None:
    client = h.ingest._client
    h.ingest._on_connect(client, None, connect_flags(), connack(BAD_CREDENTIALS), None)
    assert h.rec.subscribed == [] and not h.ingest.connected
    assert h.ingest.metrics.registry.get_sample_value("fe_mqtt_connected") in (None, 0)
    h.ingest._on_connect(client, None, connect_flags(session_present=True), connack(), None)
    assert h.ingest.connected and h.ingest.metrics.registry.get_sample_value("fe_mqtt_connected") == 1
    ((filters, _),) = h.rec.subscribed
    assert sorted(filters) == sorted([(topics.all_devices_up(), 1), (topics.all_devices_presence(), 1), (topics.all_devices_time(), 1)])  # type: ignore[arg-type]


def test_an_ingest_worker_subscribes_in_its_shared_group(h: Harness) -> None:
    """Several ingest processes split the uplinks through one shared subscription (docs/storage-seam.md §5.2)."""
    worker = ingestmod.Ingest(
        ServerSettings(db_path=h.db_path, jobs_enabled=False, mqtt_share_group="fe-ingest"), SERVER, IngestMetrics(), load_toml(POLICY_FILE, Policy)
    )
    rec = Recorder().install(worker._client)
    try:
        worker._on_connect(worker._client, None, connect_flags(), connack(), None)
    finally:
        worker._client_lock.release()
    ((filters, _),) = rec.subscribed
    assert sorted(filters) == sorted(  # type: ignore[arg-type]
        [(f"$share/fe-ingest/{topics.all_devices_up()}", 1), (f"$share/fe-ingest/{topics.all_devices_presence()}", 1), (f"$share/fe-ingest/{topics.all_devices_time()}", 1)]
    )


def test_one_ingest_process_per_broker_client_id(h: Harness) -> None:
    """A second ingest with the same client id would take the first's broker session over, and the first would take it
    back on reconnecting, for ever: the second does not connect while the first holds the id, and says why."""
    first, second = h.ingest, ingestmod.Ingest(ServerSettings(db_path=h.db_path, jobs_enabled=False), SERVER, IngestMetrics(), load_toml(POLICY_FILE, Policy))
    other = Recorder().install(second._client)
    try:
        h.ingest._on_connect(h.ingest._client, None, connect_flags(), connack(), None)
        assert first.connected and first.degraded is None and h.rec.subscribed
        second._on_connect(second._client, None, connect_flags(), connack(), None)
        assert not second.connected and other.subscribed == []
        assert "another ingest process uses the broker client id" in (second.degraded or "") and "--ingest-worker" in (second.degraded or "")
        first._client_lock.release()  # the first process is gone
        assert second._claim() and second.degraded is None
    finally:
        second._stop.set()  # ends the thread waiting for the client id
        second._client_lock.release()
