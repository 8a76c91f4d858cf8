"""store_batch on both backends: exactly once, conflicts, rejections, gaps, out-of-order arrival, two writers at once."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocol import topics
from protocol.codec import open_envelope, seal
from protocol.messages import DeviceStatus, EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from server.ingest import store as storemod
from server.ingest.batch import check_batch, store_batch, store_or_isolate
from server.storage.engine import Backend, Storage, Tx, backend_of, sql, storage_for
from server.ingest.store import REJECTED_PREFIX_BYTES, DeviceKeys, Incoming, rejected_counts, sequence_gaps
from server.evidence.verify import verify

KEY = SigningKey.from_seed(bytes(range(32)))
SERVER_KEY = SigningKey.from_seed(bytes(range(1, 33)))

_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'body_recorder', 'A', :key, 0)")
_REVOKE = sql("UPDATE devices SET revoked_ms = 1 WHERE device_id = :device_id")
_NEW_KEY = sql("UPDATE devices SET public_key = :key WHERE device_id = :device_id")
EVENT_COUNT = sql("SELECT count(*) FROM events")
EVENT_IDS = sql("SELECT event_id FROM events ORDER BY device_id, seq")
SEQS = sql("SELECT seq FROM events WHERE device_id = :device_id ORDER BY seq")
STATE = sql("SELECT stored_count, duplicate_count, max_seq FROM device_state ORDER BY device_id")
REJECTED = sql("SELECT reason_code, reason, raw, size, sha256, topic FROM rejected ORDER BY id")
ALERTS = sql("SELECT kind, device_id, ref FROM alerts ORDER BY id")
LOG_INDEXES = sql("SELECT idx FROM evidence_log ORDER BY idx")


@contextmanager
def _other(db: str) -> Iterator[Tx]:
    """A write transaction on connections of its own (another process in real life), committed on exit."""
    other = Storage.open(db)
    try:
        with other.writing() as tx:
            yield tx
    finally:
        other.close()


def rows(db: str, stmt: Any, **params: Any) -> list[tuple[Any, ...]]:
    """What is committed, read through the seam (either backend)."""
    return storage_for(db).read(lambda tx: tx.all(stmt, **params))


@pytest.fixture
def db(db_url: str) -> str:
    """A migrated database on each backend with BR-1 (KEY) and BR-2 (another key) registered."""
    with storage_for(db_url).writing() as tx:
        tx.run(_DEVICE, device_id="BR-1", key=KEY.public_hex)
        tx.run(_DEVICE, device_id="BR-2", key=SigningKey.generate().public_hex)
    return db_url


@pytest.fixture
def fresh_db(tmp_path: Path) -> sqlite3.Connection:
    """A raw SQLite connection, for what only SQLite shows (statement traces, page counts, triggers)."""
    path = tmp_path / "s.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    Tx(con).run(_DEVICE, device_id="BR-1", key=KEY.public_hex)
    return con


def scanned(seq: int, device_id: str = "BR-1", event_id: str | None = None, prev_hash: str | None = None) -> EnterpriseScanned:
    return EnterpriseScanned(
        event_id=event_id or str(uuid.uuid4()), device_id=device_id, seq=seq, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O",
        code_text="c", prev_hash=prev_hash,
    )  # fmt: skip


def incoming(msg: object, key: SigningKey = KEY, device_id: str = "BR-1", fmt: str = "json") -> Incoming:
    return Incoming(topics.device_up(device_id), seal(msg, key, fmt), int(time.time() * 1000))  # type: ignore[arg-type]


def test_stores_once_and_receipts_every_copy(db: str) -> None:
    e1, e2 = scanned(1), scanned(2)
    out = store_batch(db, [incoming(e1), incoming(e2, fmt="msgpack"), incoming(e1)], DeviceKeys())
    assert out.stored == 2 and out.duplicates == 1
    assert [(i.event_id, i.status, i.log_index) for i in out.receipts["BR-1"]] == [(e1.event_id, "stored", 0), (e2.event_id, "stored", 1)]
    again = store_batch(db, [incoming(e2, fmt="msgpack")], DeviceKeys())
    assert again.stored == 0 and [(i.event_id, i.status, i.log_index) for i in again.receipts["BR-1"]] == [(e2.event_id, "duplicate", 1)]
    assert again.formats["BR-1"] == "msgpack"
    assert rows(db, EVENT_COUNT) == [(2,)]
    assert rows(db, STATE) == [(2, 2, 2)]


def test_conflicts_are_rejected_not_receipted(db: str) -> None:
    e1 = scanned(1)
    store_batch(db, [incoming(e1)], DeviceKeys())
    same_id_other_content = scanned(2, event_id=e1.event_id)
    same_seq_other_id = scanned(1)
    out = store_batch(db, [incoming(same_id_other_content), incoming(same_seq_other_id)], DeviceKeys())
    assert out.stored == 0 and out.receipts == {}
    assert [i.reason_code for i in out.rejections["BR-1"]] == ["event_id_conflict", "seq_conflict"]
    assert [(code, len(raw) > 0) for code, _, raw, *_ in rows(db, REJECTED)] == [("event_id_conflict", True), ("seq_conflict", True)]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: incoming(scanned(1), key=SigningKey.generate()), "bad_signature"),
        (lambda: Incoming(topics.device_up("BR-2"), seal(scanned(1), KEY), 0), "topic_mismatch"),
        (lambda: incoming(scanned(1, device_id="NOPE"), device_id="NOPE"), "unknown_device"),
        (lambda: Incoming("fe/v1/other", seal(scanned(1), KEY), 0), "bad_topic"),
        (lambda: Incoming(topics.device_up("BR-1"), b"\x01\x02", 0), "undecodable"),
        (lambda: Incoming(topics.device_up("BR-1"), b'{"body": 5}', 0), "bad_envelope"),
        (lambda: Incoming(topics.device_up("BR-1"), b"{" + b" " * 70000 + b"}", 0), "oversized"),
    ],
)
def test_invalid_messages_are_kept_aside_with_their_reason(db: str, make, code: str) -> None:  # type: ignore[no-untyped-def]
    inc = make()
    good = scanned(1)
    out = store_batch(db, [inc, incoming(good)], DeviceKeys())
    assert out.rejected == {code: 1} and out.stored == 1  # the batch goes on
    ((reason_code, _, raw, size, sha, _),) = rows(db, REJECTED)
    assert reason_code == code and bytes(raw) == inc.payload[:REJECTED_PREFIX_BYTES] and size == len(inc.payload)
    assert sha == hashlib.sha256(inc.payload).hexdigest()
    assert [(c.reason_code, c.count) for c in storage_for(db).read(rejected_counts)] == [(code, 1)]


def test_revoked_device_is_refused(db: str) -> None:
    storage_for(db).write(lambda tx: tx.run(_REVOKE, device_id="BR-1"))
    out = store_batch(db, [incoming(scanned(1))], DeviceKeys())
    assert out.rejected == {"unknown_device": 1}


def test_a_revocation_applies_to_a_long_lived_ingest_at_once(db: str) -> None:
    keys = DeviceKeys()  # one for the life of the ingest, as in the server
    first = scanned(1)
    assert store_batch(db, [incoming(first)], keys).stored == 1
    with _other(db) as tx:  # `fe-server devices revoke`: another process
        tx.run(_REVOKE, device_id="BR-1")
    resend, later = incoming(first), incoming(scanned(2))
    out = store_batch(db, [resend, later, incoming(scanned(1, device_id="BR-2"), key=SigningKey.generate(), device_id="BR-2")], keys)
    assert out.stored == 0 and out.duplicates == 0 and out.receipts == {}  # nothing receipted, not even the resend
    refused = [(code, reason, bytes(raw)) for code, reason, raw, _, _, topic in rows(db, REJECTED) if topic == topics.device_up("BR-1")]
    assert [(code, raw) for code, _, raw in refused] == [("unknown_device", resend.payload), ("unknown_device", later.payload)]
    assert "'BR-1' was revoked at " in refused[0][1] and "refused" in refused[0][1]
    assert rows(db, EVENT_IDS) == [(first.event_id,)]  # what came before stays stored


def test_a_new_key_applies_to_a_long_lived_ingest_at_once(db: str) -> None:
    keys = DeviceKeys()
    assert store_batch(db, [incoming(scanned(1))], keys).stored == 1
    new_key = SigningKey.generate()
    with _other(db) as tx:
        tx.run(_NEW_KEY, device_id="BR-1", key=new_key.public_hex)
    out = store_batch(db, [incoming(scanned(2)), incoming(scanned(3), key=new_key)], keys)
    assert out.rejected == {"bad_signature": 1} and [i.seq for i in out.receipts["BR-1"]] == [3]


def test_the_register_is_read_once_per_batch_not_per_message(fresh_db: sqlite3.Connection) -> None:
    keys = DeviceKeys()
    store_batch(fresh_db, [incoming(scanned(1))], keys)
    reads: list[str] = []
    fresh_db.set_trace_callback(lambda sql: reads.append(sql) if "FROM devices" in sql else None)
    ghosts = [incoming(scanned(1, device_id=f"GHOST-{n}"), device_id=f"GHOST-{n}") for n in range(20)]
    out = store_batch(fresh_db, [incoming(scanned(s)) for s in range(2, 42)] + ghosts, keys)
    fresh_db.set_trace_callback(None)
    assert out.stored == 40 and out.rejected == {"unknown_device": 20}
    assert len(reads) == 2  # the unknown devices before the transaction, every device of the batch inside it
    assert keys.remembered([f"GHOST-{n}" for n in range(20)]) == {}  # junk topics do not fill the memory


def test_sequence_gaps(db: str) -> None:
    gaps = lambda: storage_for(db).read(lambda tx: sequence_gaps(tx, "BR-1"))  # noqa: E731
    assert gaps() == []
    store_batch(db, [incoming(scanned(s)) for s in (2, 3, 6, 7, 10)], DeviceKeys())
    assert gaps() == [(1, 1), (4, 5), (8, 9)]
    status = DeviceStatus(event_id=str(uuid.uuid4()), device_id="BR-1", seq=1, device_time_ms=0, clock_error_ms=0, outbox_depth=0, oldest_unsent_age_s=0, free_storage_bytes=1)
    store_batch(db, [incoming(status)], DeviceKeys())
    assert gaps() == [(4, 5), (8, 9)]


def test_nothing_is_half_stored_when_the_commit_fails(fresh_db: sqlite3.Connection) -> None:
    fresh_db.execute("CREATE TRIGGER boom BEFORE INSERT ON device_state BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.DatabaseError):
        store_batch(fresh_db, [incoming(scanned(1)), incoming(scanned(2))], DeviceKeys())
    assert fresh_db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_a_message_that_cannot_be_processed_is_kept_aside_and_the_rest_stored(db: str) -> None:
    poison = scanned(2)

    class Fragile:
        def stored(self, tx: Tx, msg: Any, now_ms: int) -> list[Any]:
            if msg.event_id == poison.event_id:
                raise ValueError("a bug meets an unexpected message")
            return []

    batch = [incoming(scanned(1)), incoming(poison), incoming(scanned(3))]
    out = store_or_isolate(db, batch, DeviceKeys(), projector=Fragile())  # type: ignore[arg-type]
    assert out.stored == 2 and out.rejected == {"processing_error": 1}
    assert rows(db, SEQS, device_id="BR-1") == [(1,), (3,)]
    assert [i.seq for i in out.receipts["BR-1"]] == [1, 3]  # the poison message is never receipted
    assert [i.log_index for i in out.receipts["BR-1"]] == [0, 1]  # nothing of the failed attempt is left in the log
    ((code, reason, *_),) = rows(db, REJECTED)
    assert code == "processing_error" and "a bug meets an unexpected message" in reason


@pytest.mark.parametrize(("field", "value"), [("device_time_ms", 2**63), ("clock_error_ms", 2**64 - 1), ("seq", 2**70)])
def test_an_integer_the_database_cannot_hold_is_refused_by_the_schema(db: str, field: str, value: int) -> None:
    """Found by tests/protocol/test_fuzz.py: such a signed event was accepted, then failed its INSERT (OverflowError)."""
    body = msgspec.json.encode({**msgspec.to_builtins(scanned(1)), "type": "enterprise_scanned", field: value})
    inc = Incoming(topics.device_up("BR-1"), msgspec.json.encode({"body": body, "sig": KEY.sign(body)}), 0)
    out = store_batch(db, [inc], DeviceKeys())
    assert out.rejected == {"schema": 1} and out.receipts == {}
    ((_, reason, *_),) = rows(db, REJECTED)
    assert field in reason


# --------------------------------------------------------------------------- several ingest processes


def chain_of(n: int, device_id: str = "BR-1", *, forged_at: int | None = None) -> list[EnterpriseScanned]:
    """A device's events 1..n, each naming its predecessor's signed body (as the agent's outbox does); the event at
    ``forged_at`` names another body (its predecessor was altered or replaced on the device)."""
    events: list[EnterpriseScanned] = []
    for seq in range(1, n + 1):
        prev = hashlib.sha256(_body(events[-1])).hexdigest() if events else None
        events.append(scanned(seq, device_id, prev_hash="0" * 64 if seq == forged_at else prev))
    return events


def _body(msg: EnterpriseScanned) -> bytes:
    """The bytes the device signs (what the next event's prev_hash names)."""
    return open_envelope(seal(msg, KEY))[1].body


def test_events_arriving_shuffled_close_their_gaps_without_a_false_chain_break(db: str) -> None:
    """Several ingest workers deliver a device's events in any order (docs/storage-seam.md §4.4)."""
    events = chain_of(30)
    shuffled = events[:]
    random.Random(12).shuffle(shuffled)
    keys = DeviceKeys()
    for i in range(0, 30, 4):  # batches of 4, each with its own holes, some links inside one batch
        store_batch(db, [incoming(e) for e in shuffled[i : i + 4]], keys)
    assert rows(db, ALERTS) == []
    assert storage_for(db).read(lambda tx: sequence_gaps(tx, "BR-1")) == []
    report = storage_for(db).read(lambda tx: verify(tx, SERVER_KEY.public_hex))
    assert report.ok and report.chains[0].verified_links == 29


def test_a_forged_link_alerts_once_whichever_end_arrives_second(db: str) -> None:
    events = chain_of(6, forged_at=4)
    keys = DeviceKeys()
    store_batch(db, [incoming(events[4]), incoming(events[3])], keys)  # the forged link's successor side, in one batch
    store_batch(db, [incoming(events[2])], keys)  # its predecessor arrives last: the link 3 -> 4 is checked now
    store_batch(db, [incoming(e) for e in (events[5], events[0], events[1])], keys)
    assert rows(db, ALERTS) == [("chain_break", "BR-1", "4")]
    storage_for(db).write(lambda tx: tx.run(_DEVICE, device_id="BR-9", key=KEY.public_hex))
    other = chain_of(3, "BR-9", forged_at=3)
    store_batch(db, [incoming(other[2], device_id="BR-9")], keys)
    store_batch(db, [incoming(e, device_id="BR-9") for e in other[:2]], keys)  # the predecessor arrives second, with its own
    assert rows(db, ALERTS)[1:] == [("chain_break", "BR-9", "3")]


def test_two_writers_storing_the_same_events_at_once_store_each_once(db: str) -> None:
    """Two ingest processes get overlapping batches (resends land anywhere with a shared subscription): every
    event is stored once, the log has one leaf per event and verifies; PostgreSQL's deadlocks, if any, are retried."""
    devices = [f"BR-{n}" for n in range(3, 9)]
    with storage_for(db).writing() as tx:
        tx.many(_DEVICE, [{"device_id": d, "key": KEY.public_hex} for d in devices])
    payloads = [incoming(e, device_id=d) for d in devices for e in chain_of(40, d)]
    errors: list[BaseException] = []
    outcomes: list[int] = []

    def writer(seed: int) -> None:
        mine = payloads[:]
        random.Random(seed).shuffle(mine)
        keys = DeviceKeys()
        try:
            for i in range(0, len(mine), 25):
                outcomes.append(store_batch(db, mine[i : i + 25], keys).stored)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and sum(outcomes) == len(payloads)
    assert rows(db, EVENT_COUNT) == [(len(payloads),)]
    assert rows(db, LOG_INDEXES) == [(i,) for i in range(len(payloads))]
    assert rows(db, ALERTS) == []
    report = storage_for(db).read(lambda tx: verify(tx, SERVER_KEY.public_hex, signatures=True))
    assert report.ok and report.log_size == len(payloads) and all(c.verified_links == 39 for c in report.chains)
    assert all(storage_for(db).read(lambda tx: sequence_gaps(tx, d)) == [] for d in devices)  # noqa: B023


def test_the_log_is_locked_only_after_the_events_are_projected(db: str) -> None:
    """Several ingest processes insert and project in parallel and queue only for the log (docs/storage-seam.md §4.2)."""
    if backend_of(db) is not Backend.POSTGRES:
        pytest.skip("SQLite's write transaction excludes every other writer from its start")
    store_batch(db, [incoming(scanned(1))], DeviceKeys())  # the log's state row exists from here on
    other = Storage.open(db)
    projected: list[int] = []

    class Probe:
        """Takes the log's row from another connection while the batch is projected: it must be free."""

        def stored(self, tx: Tx, msg: Any, now_ms: int) -> list[Any]:
            with other.writing() as o:
                o.run(sql("SELECT size FROM log_state WHERE id = 1 FOR UPDATE NOWAIT"))  # LockNotAvailable if held
            projected.append(msg.seq)
            return []

    try:
        out = store_batch(db, [incoming(scanned(2)), incoming(scanned(3))], DeviceKeys(), projector=Probe())  # type: ignore[arg-type]
    finally:
        other.close()
    assert projected == [2, 3] and [i.log_index for i in out.receipts["BR-1"]] == [1, 2]


# --------------------------------------------------------------------------- the rejected table is bounded


def db_path(con: sqlite3.Connection) -> Path:
    return Path(con.execute("PRAGMA database_list").fetchone()[2])


def db_size(con: sqlite3.Connection) -> int:
    """Bytes the database holds, with the WAL folded in (what a full disk would feel)."""
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db_path(con).stat().st_size


def test_twenty_junk_messages_of_4_mb_grow_the_database_by_less_than_5_mb(fresh_db: sqlite3.Connection) -> None:
    before = db_size(fresh_db)
    junk = [Incoming(topics.device_up("BR-1"), bytes([i]) * (4 * 1024 * 1024), 0) for i in range(20)]
    out = store_or_isolate(fresh_db, junk, DeviceKeys())
    assert out.rejected == {"oversized": 20}
    grown = db_size(fresh_db) - before
    assert grown < 5 * 1024 * 1024, grown
    assert grown < 20 * (REJECTED_PREFIX_BYTES + 1024)
    kept = fresh_db.execute("SELECT size, sha256, LENGTH(raw) FROM rejected ORDER BY id").fetchall()
    assert kept == [(len(j.payload), hashlib.sha256(j.payload).hexdigest(), REJECTED_PREFIX_BYTES) for j in junk]


def test_oldest_rejected_rows_lose_their_bytes_then_go_and_totals_stay(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storemod, "REJECTED_RAW_ROWS", 3)
    monkeypatch.setattr(storemod, "REJECTED_MAX_ROWS", 5)
    junk = [Incoming(f"fe/v1/bad/{i}", b"junk %d" % i, i) for i in range(8)]
    store_batch(db, junk[:4], DeviceKeys())
    store_batch(db, junk[4:], DeviceKeys())
    kept = [(topic, bytes(raw), size, sha) for _, _, raw, size, sha, topic in rows(db, REJECTED)]
    assert [t for t, *_ in kept] == [f"fe/v1/bad/{i}" for i in range(3, 8)]  # only the newest 5 rows
    assert [raw for _, raw, _, _ in kept] == [b"", b"", b"junk 5", b"junk 6", b"junk 7"]  # of which 3 keep bytes
    assert all(size == len(j.payload) and sha == hashlib.sha256(j.payload).hexdigest() for (_, _, size, sha), j in zip(kept, junk[3:], strict=True))
    assert [(c.reason_code, c.count, c.last_ms) for c in storage_for(db).read(rejected_counts)] == [("undecodable", 8, 7)]


def test_a_huge_topic_is_cut_and_authentic_conflicts_are_kept_whole(db: str) -> None:
    store_batch(db, [Incoming("x" * 60000, b"{}", 0)], DeviceKeys())
    assert len(rows(db, REJECTED)[0][5]) == storemod.REJECTED_TOPIC_CHARS
    first = scanned(1)
    store_batch(db, [incoming(first)], DeviceKeys())
    big = EnterpriseScanned(**{**msgspec.structs.asdict(scanned(1)), "code_text": "x" * 2000, "reason": "y" * 4000})
    conflict = incoming(big)
    assert len(conflict.payload) > REJECTED_PREFIX_BYTES
    store_batch(db, [conflict], DeviceKeys())
    code, _, raw, *_ = rows(db, REJECTED)[-1]
    assert code == "seq_conflict" and bytes(raw) == conflict.payload  # signed by the device: evidence, kept whole


def test_rows_rejected_before_the_bound_get_their_hash_when_their_bytes_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    old_version = 9
    for i, script in enumerate(dbmod.MIGRATIONS[:old_version], start=1):
        con.executescript(script)
        con.execute(f"PRAGMA user_version = {i}")
    old = b"an old rejected payload, kept whole"
    con.execute("INSERT INTO rejected(received_ms, topic, reason_code, reason, raw) VALUES (1, 't', 'undecodable', 'r', ?)", (old,))
    con.commit()
    con.close()
    dbmod.migrate(path)
    con = dbmod.connect(path)
    assert con.execute("SELECT size, sha256 FROM rejected").fetchone() == (len(old), None)
    assert [(c.reason_code, c.count) for c in rejected_counts(Tx(con))] == [("undecodable", 1)]
    monkeypatch.setattr(storemod, "REJECTED_RAW_ROWS", 1)
    store_batch(con, [Incoming("t", b"new", 2)], DeviceKeys(con))
    assert con.execute("SELECT raw, sha256 FROM rejected ORDER BY id LIMIT 1").fetchone() == (b"", hashlib.sha256(old).hexdigest())
    assert [(c.reason_code, c.count) for c in rejected_counts(Tx(con))] == [("undecodable", 2)]


def test_a_batch_checked_before_a_revocation_and_stored_after_it_is_refused(db: str) -> None:
    """The ingest's verifier checks the next batch while the writer stores the one before: what changed in the
    register between the check and the transaction is checked again inside it."""
    keys = DeviceKeys()
    assert store_batch(db, [incoming(scanned(1))], keys).stored == 1
    batch = [incoming(scanned(2)), incoming(scanned(3))]
    checked = check_batch(db, batch, keys)  # signatures good: checked with the key the ingest knew
    with _other(db) as tx:
        tx.run(_REVOKE, device_id="BR-1")
    out = store_batch(db, batch, keys, checked=checked)
    assert out.stored == 0 and out.receipts == {} and out.rejected == {"unknown_device": 2}


def test_a_check_of_another_batch_is_not_taken_for_this_one(db: str) -> None:
    keys = DeviceKeys()
    forged = incoming(scanned(1), key=SigningKey.generate())
    other = check_batch(db, [incoming(scanned(1))], keys)  # a good batch's check, with the same contents' length
    out = store_batch(db, [forged], keys, checked=other)
    assert out.stored == 0 and out.rejected == {"bad_signature": 1}
