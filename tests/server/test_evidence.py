"""The evidence log on both backends: receipts name log indexes, proofs verify, tampering is named."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from protocol import topics
from protocol.codec import seal
from protocol.messages import EnterpriseScanned
from protocol.signing import SigningKey
from protocol import merkle
from server.app import create_app
from server.evidence.log import LEAF_COLUMNS, current_frontier, head_of_whole_log, leaf_hashes, row_leaf_hash, sign_tree_head, sign_tree_head_if_due
from server.ingest.batch import store_batch
from server.settings import ServerSettings
from server.storage.engine import sql, storage_for
from server.ingest.store import DeviceKeys, Incoming
from server.evidence.verify import verify
from tests.server.conftest import Api

DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))
SERVER_KEY = SigningKey.from_seed(bytes(range(1, 33)))

_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', :agency, :key, 0)")
_IDS = sql("SELECT event_id FROM events ORDER BY seq")
_BUMP_TIME = sql("UPDATE events SET device_time_ms = device_time_ms + 1 WHERE event_id = :event_id")
_DELETE = sql("DELETE FROM events WHERE event_id = :event_id")
_ZERO_SIG = sql("UPDATE events SET sig = :sig WHERE event_id = :event_id")
_SMUGGLE = sql("""
    INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json)
    SELECT 'smuggled-0001', device_id, 99, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json
    FROM events WHERE event_id = :event_id
""")
_EDIT_COPY = sql("UPDATE events SET body_json = replace(body_json, '\"officer_id\":\"O\"', '\"officer_id\":\"X\"') WHERE event_id = :event_id")
_SEQ_2 = sql("SELECT event_id FROM events WHERE seq = 2")
_LATER = sql("UPDATE events SET received_ms = received_ms + 1000 WHERE event_id = :event_id")
_RELEAF = sql("UPDATE evidence_log SET leaf_hash = :leaf WHERE event_id = :event_id")
_LEAF_ROW = sql(f"SELECT {', '.join(LEAF_COLUMNS)} FROM events WHERE event_id = :event_id")
_FIRST = sql("SELECT event_id FROM evidence_log WHERE idx = 0")


@pytest.fixture
def db(db_url: str) -> str:
    """A migrated database on each backend with BR-1 registered."""
    storage_for(db_url).write(lambda tx: tx.run(_DEVICE, agency="A", key=DEVICE_KEY.public_hex))
    return db_url


def events(n: int, start: int = 1) -> list[Incoming]:
    msgs = [
        EnterpriseScanned(event_id=str(uuid.uuid4()), device_id="BR-1", seq=s, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O", code_text="c")
        for s in range(start, start + n)
    ]
    return [Incoming(topics.device_up("BR-1"), seal(m, DEVICE_KEY), 0) for m in msgs]


def sign_head(db: str) -> Any:
    return storage_for(db).write(lambda tx: sign_tree_head(tx, SERVER_KEY))


def report(db: str, **kw: Any) -> Any:
    return storage_for(db).read(lambda tx: verify(tx, SERVER_KEY.public_hex, **kw))


def tamper(db: str, *changes: tuple[Any, dict[str, Any]]) -> None:
    with storage_for(db).writing() as tx:
        for stmt, params in changes:
            tx.run(stmt, params)


def test_receipts_name_log_indexes_and_proofs_verify(db: str) -> None:
    first = store_batch(db, events(5), DeviceKeys())
    assert [i.log_index for i in first.receipts["BR-1"]] == [0, 1, 2, 3, 4]
    again = store_batch(db, events(3, start=6) + [events(1)[0]], DeviceKeys())  # a conflicting seq 1 is rejected, not logged
    assert [i.log_index for i in again.receipts["BR-1"]] == [5, 6, 7]
    leaves = storage_for(db).read(leaf_hashes)
    assert storage_for(db).read(current_frontier).root() == merkle.root(leaves)
    head = sign_head(db)
    assert head.tree_size == 8 and head.verify()
    for i in range(8):
        assert merkle.verify_inclusion(leaves[i], i, 8, merkle.inclusion_proof(leaves, i), bytes.fromhex(head.root_hash))
    found = report(db, signatures=True)
    assert found.ok and found.events == 8 and found.log_size == 8 and found.problems == []
    assert found.chains[0].missing_predecessor == [] and found.chains[0].broken_at == []


def test_verify_names_changed_added_removed_and_forged_rows(db: str) -> None:
    store_batch(db, events(6), DeviceKeys())
    ids = [r[0] for r in storage_for(db).read(lambda tx: tx.all(_IDS))]
    tamper(
        db, (_BUMP_TIME, {"event_id": ids[1]}), (_DELETE, {"event_id": ids[3]}), (_ZERO_SIG, {"event_id": ids[4], "sig": b"\x00" * 64}),
        (_SMUGGLE, {"event_id": ids[0]}), (_EDIT_COPY, {"event_id": ids[5]}),
    )  # fmt: skip
    found = report(db, signatures=True)
    problems = {(p.problem, p.event_id) for p in found.problems}
    assert ("changed", ids[1]) in problems and ("removed", ids[3]) in problems and ("changed", ids[4]) in problems
    assert ("forged", ids[4]) in problems and ("added", "smuggled-0001") in problems and ("body_json_changed", ids[5]) in problems
    assert not found.ok


def test_rewriting_the_log_too_is_caught_by_the_signed_tree_head(db: str) -> None:
    store_batch(db, events(4), DeviceKeys())
    sign_head(db)
    # An insider changes a row AND recomputes its leaf: rows and log agree again, the signed head does not.
    with storage_for(db).writing() as tx:
        event_id = tx.scalar(_SEQ_2)
        tx.run(_LATER, event_id=event_id)
        tx.run(_RELEAF, event_id=event_id, leaf=row_leaf_hash(tx.one(_LEAF_ROW, event_id=event_id)))  # type: ignore[arg-type]
    found = report(db)
    assert found.problems == []
    assert [(h.root_matches, h.signature_valid) for h in found.tree_heads] == [(False, True)]
    assert not found.ok


def test_consistency_between_an_old_head_and_a_grown_log(db: str) -> None:
    store_batch(db, events(3), DeviceKeys())
    old = sign_head(db)
    store_batch(db, events(7, start=4), DeviceKeys())
    leaves = storage_for(db).read(leaf_hashes)
    proof = merkle.consistency_proof(leaves, old.tree_size)
    assert merkle.verify_consistency(3, 10, bytes.fromhex(old.root_hash), merkle.root(leaves), proof)
    assert not merkle.verify_consistency(3, 10, b"\x00" * 32, merkle.root(leaves), proof)


@pytest.fixture
def api_on(seeded_url: str, tmp_path: Path) -> Iterator[Api]:
    """The HTTP API over the seeded registers on each backend (no MQTT), signed in as the supervisor."""
    settings = ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False)
    with TestClient(create_app(settings)) as c:
        yield Api(c)


def test_proofs_over_http_refuse_sizes_the_log_does_not_have_with_a_400(api_on: Api, seeded_url: str) -> None:
    """A size past SQLite's integer range was a 500 (OverflowError) on both proof routes."""
    api = api_on
    storage_for(seeded_url).write(lambda tx: tx.run(_DEVICE, agency="SAMR", key=DEVICE_KEY.public_hex))
    store_batch(seeded_url, events(3), DeviceKeys())
    first_id = storage_for(seeded_url).read(lambda tx: tx.scalar(_FIRST))
    proof = api.client.get(f"/api/v1/evidence/proof/{first_id}").json()
    assert (proof["log_index"], proof["tree_size"]) == (0, 3)
    assert api.client.get("/api/v1/evidence/consistency", params={"first": 1, "second": 3}).status_code == 200
    record = api.get(f"/api/v1/evidence/record/{first_id}").json()
    assert record["log_index"] == 0 and record["leaf_hash"] == proof["leaf_hash"]
    verified = api.get("/api/v1/evidence/verify").json()
    assert verified["ok"] and verified["log_size"] == 3
    huge = 2**63
    for url, params in [
        (f"/api/v1/evidence/proof/{first_id}", {"tree_size": huge}),
        (f"/api/v1/evidence/proof/{first_id}", {"tree_size": huge - 1}),
        (f"/api/v1/evidence/proof/{first_id}", {"tree_size": 4}),
        ("/api/v1/evidence/consistency", {"first": 1, "second": huge}),
        ("/api/v1/evidence/consistency", {"first": huge, "second": 3}),
        ("/api/v1/evidence/consistency", {"first": 2, "second": 4}),
        ("/api/v1/evidence/consistency", {"first": 3, "second": 2}),
        ("/api/v1/evidence/consistency", {"first": 0}),
    ]:
        r = api.client.get(url, params=params)
        assert r.status_code == 400 and r.json()["detail"], (url, params, r.text)
    assert api.client.get("/api/v1/evidence/proof/no-such-record").status_code == 404


def test_ingest_processes_due_for_a_tree_head_at_once_sign_one(db: str) -> None:
    """Each ingest process signs a head once an interval has passed; together they sign one per interval."""
    store_batch(db, events(2), DeviceKeys())
    barrier = threading.Barrier(4)
    heads: list[object] = []

    def worker() -> None:
        barrier.wait(10)
        heads.append(storage_for(db).write(lambda tx: sign_tree_head_if_due(tx, SERVER_KEY, 60_000, now_ms=1_000_000)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(h is not None for h in heads) == 1 and len(heads) == 4
    later = storage_for(db).write(lambda tx: sign_tree_head_if_due(tx, SERVER_KEY, 60_000, now_ms=1_059_999))
    assert later is None
    due = storage_for(db).write(lambda tx: sign_tree_head_if_due(tx, SERVER_KEY, 60_000, now_ms=1_060_000))
    assert due is not None and due.tree_size == 2 and len(report(db).tree_heads) == 2


def test_api_processes_asking_for_the_head_at_once_share_one(db: str) -> None:
    store_batch(db, events(3), DeviceKeys())
    barrier = threading.Barrier(3)
    heads: list[Any] = []

    def ask() -> None:
        barrier.wait(10)
        heads.append(storage_for(db).write(lambda tx: head_of_whole_log(tx, SERVER_KEY)))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(heads) == 3 and len(set(h.signature for h in heads)) == 1 and heads[0].tree_size == 3
    assert len(report(db).tree_heads) == 1
