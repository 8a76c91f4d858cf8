"""The evidence log on a real database: receipts name log indexes, proofs verify, tampering is named."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from protocol import topics
from protocol.codec import seal
from protocol.messages import EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from server import merkle
from server.evidence import EvidenceLog, leaf_hashes, sign_tree_head
from server.store import DeviceKeys, Incoming, store_batch
from server.verify import verify
from tests.server.conftest import Api

DEVICE_KEY = SigningKey.from_seed(bytes(range(32)))
SERVER_KEY = SigningKey.from_seed(bytes(range(1, 33)))


@pytest.fixture
def con(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "s.db"
    dbmod.migrate(path)
    c = dbmod.connect(path)
    c.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'A', ?, 0)", (DEVICE_KEY.public_hex,))
    return c


def events(n: int, start: int = 1) -> list[Incoming]:
    msgs = [
        EnterpriseScanned(event_id=str(uuid.uuid4()), device_id="BR-1", seq=s, device_time_ms=int(time.time() * 1000), clock_error_ms=5, officer_id="O", code_text="c")
        for s in range(start, start + n)
    ]
    return [Incoming(topics.device_up("BR-1"), seal(m, DEVICE_KEY), 0) for m in msgs]


def test_receipts_name_log_indexes_and_proofs_verify(con: sqlite3.Connection) -> None:
    first = store_batch(con, events(5), DeviceKeys(con))
    assert [i.log_index for i in first.receipts["BR-1"]] == [0, 1, 2, 3, 4]
    again = store_batch(con, events(3, start=6) + [events(1)[0]], DeviceKeys(con))  # a conflicting seq 1 is rejected, not logged
    assert [i.log_index for i in again.receipts["BR-1"]] == [5, 6, 7]
    leaves = leaf_hashes(con)
    assert EvidenceLog(con).frontier.root() == merkle.root(leaves)
    con.execute("BEGIN IMMEDIATE")
    head = sign_tree_head(con, SERVER_KEY)
    con.execute("COMMIT")
    assert head.tree_size == 8 and head.verify()
    for i in range(8):
        assert merkle.verify_inclusion(leaves[i], i, 8, merkle.inclusion_proof(leaves, i), bytes.fromhex(head.root_hash))
    report = verify(con, SERVER_KEY.public_hex, signatures=True)
    assert report.ok and report.events == 8 and report.log_size == 8 and report.problems == []
    assert report.chains[0].missing_predecessor == [] and report.chains[0].broken_at == []


def test_verify_names_changed_added_removed_and_forged_rows(con: sqlite3.Connection) -> None:
    store_batch(con, events(6), DeviceKeys(con))
    ids = [r[0] for r in con.execute("SELECT event_id FROM events ORDER BY seq")]
    con.execute("UPDATE events SET device_time_ms = device_time_ms + 1 WHERE event_id = ?", (ids[1],))
    con.execute("DELETE FROM events WHERE event_id = ?", (ids[3],))
    con.execute("UPDATE events SET sig = ? WHERE event_id = ?", (b"\x00" * 64, ids[4]))
    con.execute(
        "INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json)"
        " SELECT 'smuggled-0001', device_id, 99, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json FROM events WHERE event_id = ?",
        (ids[0],),
    )
    con.execute("UPDATE events SET body_json = replace(body_json, '\"officer_id\":\"O\"', '\"officer_id\":\"X\"') WHERE event_id = ?", (ids[5],))
    report = verify(con, SERVER_KEY.public_hex, signatures=True)
    found = {(p.problem, p.event_id) for p in report.problems}
    assert ("changed", ids[1]) in found and ("removed", ids[3]) in found and ("changed", ids[4]) in found
    assert ("forged", ids[4]) in found and ("added", "smuggled-0001") in found and ("body_json_changed", ids[5]) in found
    assert not report.ok


def test_rewriting_the_log_too_is_caught_by_the_signed_tree_head(con: sqlite3.Connection) -> None:
    store_batch(con, events(4), DeviceKeys(con))
    con.execute("BEGIN IMMEDIATE")
    sign_tree_head(con, SERVER_KEY)
    con.execute("COMMIT")
    # An insider changes a row AND recomputes its leaf: rows and log agree again, the signed head does not.
    from server.evidence import LEAF_COLUMNS, row_leaf_hash

    event_id = con.execute("SELECT event_id FROM events WHERE seq = 2").fetchone()[0]
    con.execute("UPDATE events SET received_ms = received_ms + 1000 WHERE event_id = ?", (event_id,))
    row = con.execute(f"SELECT {', '.join(LEAF_COLUMNS)} FROM events WHERE event_id = ?", (event_id,)).fetchone()
    con.execute("UPDATE evidence_log SET leaf_hash = ? WHERE event_id = ?", (row_leaf_hash(row), event_id))
    report = verify(con, SERVER_KEY.public_hex)
    assert [p for p in report.problems] == []
    assert [(h.root_matches, h.signature_valid) for h in report.tree_heads] == [(False, True)]
    assert not report.ok


def test_consistency_between_an_old_head_and_a_grown_log(con: sqlite3.Connection) -> None:
    store_batch(con, events(3), DeviceKeys(con))
    con.execute("BEGIN IMMEDIATE")
    old = sign_tree_head(con, SERVER_KEY)
    con.execute("COMMIT")
    store_batch(con, events(7, start=4), DeviceKeys(con))
    leaves = leaf_hashes(con)
    proof = merkle.consistency_proof(leaves, old.tree_size)
    assert merkle.verify_consistency(3, 10, bytes.fromhex(old.root_hash), merkle.root(leaves), proof)
    assert not merkle.verify_consistency(3, 10, b"\x00" * 32, merkle.root(leaves), proof)


def test_proofs_over_http_refuse_sizes_the_log_does_not_have_with_a_400(api: Api, seeded_db: Path) -> None:
    """A size past SQLite's integer range was a 500 (OverflowError) on both proof routes."""
    con = dbmod.connect(seeded_db)
    try:
        con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-1', 'M', 'body_recorder', 'SAMR', ?, 0)", (DEVICE_KEY.public_hex,))
        store_batch(con, events(3), DeviceKeys(con))
        first_id = con.execute("SELECT event_id FROM evidence_log WHERE idx = 0").fetchone()[0]
    finally:
        con.close()
    proof = api.client.get(f"/api/v1/evidence/proof/{first_id}").json()
    assert (proof["log_index"], proof["tree_size"]) == (0, 3)
    assert api.client.get("/api/v1/evidence/consistency", params={"first": 1, "second": 3}).status_code == 200
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
