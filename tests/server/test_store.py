"""store_batch on a real SQLite file: exactly once, conflicts, rejections, gaps."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from protocol import topics
from protocol.codec import seal
from protocol.messages import DeviceStatus, EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from server.registry import revoke
from server import store as storemod
from server.store import REJECTED_PREFIX_BYTES, DeviceKeys, Incoming, rejected_counts, sequence_gaps, store_batch, store_or_isolate

KEY = SigningKey.from_seed(bytes(range(32)))


@pytest.fixture
def fresh_db(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "s.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    con.execute(
        "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'A', ?, 0)",
        (KEY.public_hex,),
    )
    con.execute(
        "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-2', 'M', 'body_recorder', 'A', ?, 0)",
        (SigningKey.generate().public_hex,),
    )
    return con


def scanned(seq: int, device_id: str = "BR-1", event_id: str | None = None) -> EnterpriseScanned:
    return EnterpriseScanned(
        event_id=event_id or str(uuid.uuid4()), device_id=device_id, seq=seq, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O", code_text="c"
    )


def incoming(msg: object, key: SigningKey = KEY, device_id: str = "BR-1", fmt: str = "json") -> Incoming:
    return Incoming(topics.device_up(device_id), seal(msg, key, fmt), int(time.time() * 1000))  # type: ignore[arg-type]


def test_stores_once_and_receipts_every_copy(fresh_db: sqlite3.Connection) -> None:
    e1, e2 = scanned(1), scanned(2)
    out = store_batch(fresh_db, [incoming(e1), incoming(e2, fmt="msgpack"), incoming(e1)], DeviceKeys(fresh_db))
    assert out.stored == 2 and out.duplicates == 1
    assert [(i.event_id, i.status) for i in out.receipts["BR-1"]] == [(e1.event_id, "stored"), (e2.event_id, "stored")]
    again = store_batch(fresh_db, [incoming(e2, fmt="msgpack")], DeviceKeys(fresh_db))
    assert again.stored == 0 and [(i.event_id, i.status) for i in again.receipts["BR-1"]] == [(e2.event_id, "duplicate")]
    assert again.formats["BR-1"] == "msgpack"
    assert fresh_db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
    assert fresh_db.execute("SELECT stored_count, duplicate_count, max_seq FROM device_state").fetchone() == (2, 2, 2)


def test_conflicts_are_rejected_not_receipted(fresh_db: sqlite3.Connection) -> None:
    e1 = scanned(1)
    store_batch(fresh_db, [incoming(e1)], DeviceKeys(fresh_db))
    same_id_other_content = scanned(2, event_id=e1.event_id)
    same_seq_other_id = scanned(1)
    out = store_batch(fresh_db, [incoming(same_id_other_content), incoming(same_seq_other_id)], DeviceKeys(fresh_db))
    assert out.stored == 0 and out.receipts == {}
    assert [i.reason_code for i in out.rejections["BR-1"]] == ["event_id_conflict", "seq_conflict"]
    rows = fresh_db.execute("SELECT reason_code, LENGTH(raw) > 0 FROM rejected ORDER BY id").fetchall()
    assert rows == [("event_id_conflict", 1), ("seq_conflict", 1)]


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
def test_invalid_messages_are_kept_aside_with_their_reason(fresh_db: sqlite3.Connection, make, code: str) -> None:  # type: ignore[no-untyped-def]
    inc = make()
    good = scanned(1)
    out = store_batch(fresh_db, [inc, incoming(good)], DeviceKeys(fresh_db))
    assert out.rejected == {code: 1} and out.stored == 1  # the batch goes on
    reason_code, raw, size, sha = fresh_db.execute("SELECT reason_code, raw, size, sha256 FROM rejected").fetchone()
    assert reason_code == code and bytes(raw) == inc.payload[:REJECTED_PREFIX_BYTES] and size == len(inc.payload)
    assert sha == hashlib.sha256(inc.payload).hexdigest()


def test_revoked_device_is_refused(fresh_db: sqlite3.Connection) -> None:
    fresh_db.execute("UPDATE devices SET revoked_ms = 1")
    out = store_batch(fresh_db, [incoming(scanned(1))], DeviceKeys(fresh_db))
    assert out.rejected == {"unknown_device": 1}


def db_path(con: sqlite3.Connection) -> Path:
    return Path(con.execute("PRAGMA database_list").fetchone()[2])


def test_a_revocation_applies_to_a_long_lived_ingest_at_once(fresh_db: sqlite3.Connection) -> None:
    keys = DeviceKeys(fresh_db)  # one for the life of the ingest, as in the server
    first = scanned(1)
    assert store_batch(fresh_db, [incoming(first)], keys).stored == 1
    revoke(db_path(fresh_db), "BR-1")  # the CLI, on its own connection (another process in real life)
    resend, later = incoming(first), incoming(scanned(2))
    out = store_batch(fresh_db, [resend, later, incoming(scanned(1, device_id="BR-2"), key=SigningKey.generate(), device_id="BR-2")], keys)
    assert out.stored == 0 and out.duplicates == 0 and out.receipts == {}  # nothing receipted, not even the resend
    rows = fresh_db.execute("SELECT reason_code, reason, raw FROM rejected WHERE topic = ? ORDER BY id", (topics.device_up("BR-1"),)).fetchall()
    assert [(code, bytes(raw)) for code, _, raw in rows] == [("unknown_device", resend.payload), ("unknown_device", later.payload)]
    assert "'BR-1' was revoked at " in rows[0][1] and "refused" in rows[0][1]
    assert fresh_db.execute("SELECT event_id FROM events").fetchall() == [(first.event_id,)]  # what came before stays stored


def test_a_new_key_applies_to_a_long_lived_ingest_at_once(fresh_db: sqlite3.Connection) -> None:
    keys = DeviceKeys(fresh_db)
    assert store_batch(fresh_db, [incoming(scanned(1))], keys).stored == 1
    new_key = SigningKey.generate()
    other = dbmod.connect(db_path(fresh_db))
    other.execute("UPDATE devices SET public_key = ? WHERE device_id = 'BR-1'", (new_key.public_hex,))
    other.close()
    out = store_batch(fresh_db, [incoming(scanned(2)), incoming(scanned(3), key=new_key)], keys)
    assert out.rejected == {"bad_signature": 1} and [i.seq for i in out.receipts["BR-1"]] == [3]


def test_the_register_is_read_once_per_batch_not_per_message(fresh_db: sqlite3.Connection) -> None:
    keys = DeviceKeys(fresh_db)
    store_batch(fresh_db, [incoming(scanned(1))], keys)
    reads: list[str] = []
    fresh_db.set_trace_callback(lambda sql: reads.append(sql) if "FROM devices" in sql else None)
    ghosts = [incoming(scanned(1, device_id=f"GHOST-{n}"), device_id=f"GHOST-{n}") for n in range(20)]
    out = store_batch(fresh_db, [incoming(scanned(s)) for s in range(2, 42)] + ghosts, keys)
    fresh_db.set_trace_callback(None)
    assert out.stored == 40 and out.rejected == {"unknown_device": 20}
    assert len(reads) == 2  # the unknown devices before the transaction, every device of the batch inside it
    assert keys.remembered([f"GHOST-{n}" for n in range(20)]) == {}  # junk topics do not fill the memory


def test_sequence_gaps(fresh_db: sqlite3.Connection) -> None:
    assert sequence_gaps(fresh_db, "BR-1") == []
    store_batch(fresh_db, [incoming(scanned(s)) for s in (2, 3, 6, 7, 10)], DeviceKeys(fresh_db))
    assert sequence_gaps(fresh_db, "BR-1") == [(1, 1), (4, 5), (8, 9)]
    status = DeviceStatus(event_id=str(uuid.uuid4()), device_id="BR-1", seq=1, device_time_ms=0, clock_error_ms=0, outbox_depth=0, oldest_unsent_age_s=0, free_storage_bytes=1)
    store_batch(fresh_db, [incoming(status)], DeviceKeys(fresh_db))
    assert sequence_gaps(fresh_db, "BR-1") == [(4, 5), (8, 9)]


def test_nothing_is_half_stored_when_the_commit_fails(fresh_db: sqlite3.Connection) -> None:
    fresh_db.execute("CREATE TRIGGER boom BEFORE INSERT ON device_state BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.DatabaseError):
        store_batch(fresh_db, [incoming(scanned(1)), incoming(scanned(2))], DeviceKeys(fresh_db))
    assert fresh_db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_a_message_that_cannot_be_processed_is_kept_aside_and_the_rest_stored(fresh_db: sqlite3.Connection) -> None:
    from server.projector import Projector
    from server.store import store_or_isolate

    poison = scanned(2)

    class Fragile(Projector):
        def stored(self, con, msg, now_ms):  # type: ignore[no-untyped-def]
            if msg.event_id == poison.event_id:
                raise ValueError("a bug meets an unexpected message")
            return []

    batch = [incoming(scanned(1)), incoming(poison), incoming(scanned(3))]
    out = store_or_isolate(fresh_db, batch, DeviceKeys(fresh_db), projector=Fragile(policy=None))  # type: ignore[arg-type]
    assert out.stored == 2 and out.rejected == {"processing_error": 1}
    assert sorted(s for (s,) in fresh_db.execute("SELECT seq FROM events")) == [1, 3]
    assert [i.seq for i in out.receipts["BR-1"]] == [1, 3]  # the poison message is never receipted
    reason = fresh_db.execute("SELECT reason FROM rejected WHERE reason_code = 'processing_error'").fetchone()[0]
    assert "a bug meets an unexpected message" in reason


@pytest.mark.parametrize(("field", "value"), [("device_time_ms", 2**63), ("clock_error_ms", 2**64 - 1), ("seq", 2**70)])
def test_an_integer_the_database_cannot_hold_is_refused_by_the_schema(fresh_db: sqlite3.Connection, field: str, value: int) -> None:
    """Found by tests/protocol/test_fuzz.py: such a signed event was accepted, then failed its INSERT (OverflowError)."""
    body = msgspec.json.encode({**msgspec.to_builtins(scanned(1)), "type": "enterprise_scanned", field: value})
    inc = Incoming(topics.device_up("BR-1"), msgspec.json.encode({"body": body, "sig": KEY.sign(body)}), 0)
    out = store_batch(fresh_db, [inc], DeviceKeys(fresh_db))
    assert out.rejected == {"schema": 1} and out.receipts == {}
    reason = fresh_db.execute("SELECT reason FROM rejected").fetchone()[0]
    assert field in reason


# --------------------------------------------------------------------------- the rejected table is bounded


def db_size(con: sqlite3.Connection) -> int:
    """Bytes the database holds, with the WAL folded in (what a full disk would feel)."""
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db_path(con).stat().st_size


def test_twenty_junk_messages_of_4_mb_grow_the_database_by_less_than_5_mb(fresh_db: sqlite3.Connection) -> None:
    before = db_size(fresh_db)
    junk = [Incoming(topics.device_up("BR-1"), bytes([i]) * (4 * 1024 * 1024), 0) for i in range(20)]
    out = store_or_isolate(fresh_db, junk, DeviceKeys(fresh_db))
    assert out.rejected == {"oversized": 20}
    grown = db_size(fresh_db) - before
    assert grown < 5 * 1024 * 1024, grown
    assert grown < 20 * (REJECTED_PREFIX_BYTES + 1024)
    rows = fresh_db.execute("SELECT size, sha256, LENGTH(raw) FROM rejected ORDER BY id").fetchall()
    assert rows == [(len(j.payload), hashlib.sha256(j.payload).hexdigest(), REJECTED_PREFIX_BYTES) for j in junk]


def test_oldest_rejected_rows_lose_their_bytes_then_go_and_totals_stay(fresh_db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storemod, "REJECTED_RAW_ROWS", 3)
    monkeypatch.setattr(storemod, "REJECTED_MAX_ROWS", 5)
    junk = [Incoming(f"fe/v1/bad/{i}", b"junk %d" % i, i) for i in range(8)]
    store_batch(fresh_db, junk[:4], DeviceKeys(fresh_db))
    store_batch(fresh_db, junk[4:], DeviceKeys(fresh_db))
    rows = fresh_db.execute("SELECT topic, raw, size, sha256 FROM rejected ORDER BY id").fetchall()
    assert [t for t, *_ in rows] == [f"fe/v1/bad/{i}" for i in range(3, 8)]  # only the newest 5 rows
    assert [bytes(raw) for _, raw, _, _ in rows] == [b"", b"", b"junk 5", b"junk 6", b"junk 7"]  # of which 3 keep bytes
    assert all(size == len(j.payload) and sha == hashlib.sha256(j.payload).hexdigest() for (_, _, size, sha), j in zip(rows, junk[3:], strict=True))
    assert [(c.reason_code, c.count, c.last_ms) for c in rejected_counts(fresh_db)] == [("undecodable", 8, 7)]


def test_a_huge_topic_is_cut_and_authentic_conflicts_are_kept_whole(fresh_db: sqlite3.Connection) -> None:
    store_batch(fresh_db, [Incoming("x" * 60000, b"{}", 0)], DeviceKeys(fresh_db))
    assert fresh_db.execute("SELECT LENGTH(topic) FROM rejected").fetchone()[0] == storemod.REJECTED_TOPIC_CHARS
    first = scanned(1)
    store_batch(fresh_db, [incoming(first)], DeviceKeys(fresh_db))
    big = EnterpriseScanned(**{**msgspec.structs.asdict(scanned(1)), "code_text": "x" * 2000, "reason": "y" * 4000})
    conflict = incoming(big)
    assert len(conflict.payload) > REJECTED_PREFIX_BYTES
    store_batch(fresh_db, [conflict], DeviceKeys(fresh_db))
    raw, code = fresh_db.execute("SELECT raw, reason_code FROM rejected ORDER BY id DESC LIMIT 1").fetchone()
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
    assert [(c.reason_code, c.count) for c in rejected_counts(con)] == [("undecodable", 1)]
    monkeypatch.setattr(storemod, "REJECTED_RAW_ROWS", 1)
    store_batch(con, [Incoming("t", b"new", 2)], DeviceKeys(con))
    assert con.execute("SELECT raw, sha256 FROM rejected ORDER BY id LIMIT 1").fetchone() == (b"", hashlib.sha256(old).hexdigest())
    assert [(c.reason_code, c.count) for c in rejected_counts(con)] == [("undecodable", 2)]
