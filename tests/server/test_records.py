"""The server's own records in the evidence log (server/evidence/records.py), on both backends: appended between
device events, proved like them, and every change, addition or removal found by verify, serial and parallel."""

from __future__ import annotations

import hashlib

import pytest

from protocol import merkle
from server.evidence.log import leaf_hashes, log_size
from server.evidence.records import RECORD_PREFIX, Record, append_record, record, records_of
from server.evidence.verify import verify_parallel
from server.ingest.batch import store_batch
from server.ingest.store import DeviceKeys
from server.storage.engine import sql, storage_for
from tests.server.test_evidence import SERVER_KEY, api_on, db, events, report, sign_head, tamper  # noqa: F401

_CHANGE_BODY = sql("UPDATE records SET body = :body WHERE record_id = :record_id")
_CHANGE_TIME = sql("UPDATE records SET at_ms = at_ms + 1 WHERE record_id = :record_id")
_DELETE = sql("DELETE FROM records WHERE record_id = :record_id")
_SMUGGLE = sql("INSERT INTO records(record_id, kind, subject, at_ms, body) VALUES ('rec:smuggled', 'letter.accepted', 'letter:L-1', 5, :body)")
_STEAL_LEAF = sql("UPDATE evidence_log SET event_id = 'rec:elsewhere' WHERE event_id = :record_id")


def _append(db: str, kind: str, subject: str, content: dict, now_ms: int = 1_000) -> tuple[Record, int]:  # type: ignore[type-arg]
    return storage_for(db).write(lambda tx: append_record(tx, kind=kind, subject=subject, actor="sup", content=content, now_ms=now_ms))


def test_records_go_into_the_log_between_events_and_prove_like_them(db: str) -> None:
    store_batch(db, events(3), DeviceKeys())
    opened, i = _append(db, "finding.opened", "finding:F-2026-0001", {"reason": "无记录仪全程记录", "agency_id": "SAMR"})
    store_batch(db, events(2, start=4), DeviceKeys())
    issued, j = _append(db, "letter.issued", "letter:L-2026-0001", {"finding": "F-2026-0001", "deadline": "2026-12-18"})
    assert (i, j) == (3, 6)
    assert opened.record_id.startswith("rec:") and opened.content() == {"actor": "sup", "content": {"reason": "无记录仪全程记录", "agency_id": "SAMR"}}
    head = sign_head(db)
    with storage_for(db).reading() as tx:
        leaves = leaf_hashes(tx)
        assert records_of(tx, "finding:F-2026-0001") == [opened] and record(tx, issued.record_id) == issued and record(tx, "rec:none") is None
    assert leaves[i] == opened.leaf_hash() == merkle.leaf_hash(opened.leaf_data())
    assert opened.leaf_data().startswith(RECORD_PREFIX) and b"\\u" not in opened.leaf_data()  # body base64: nothing escaped
    proof = merkle.inclusion_proof(leaves[: head.tree_size], j)
    assert merkle.verify_inclusion(issued.leaf_hash(), j, head.tree_size, proof, bytes.fromhex(head.root_hash))
    r = report(db)
    assert r.ok and r.records == 2 and r.events == 5 and r.log_size == 7, r


def test_an_event_leaf_and_a_record_leaf_never_read_as_each_other() -> None:
    rec = Record(record_id="rec:1", kind="k", subject="s", at_ms=1, body=b"{}")
    assert rec.leaf_data().startswith(b"FE-EVIDENCE-RECORD-1\n") and not rec.leaf_data().startswith(b"FE-EVIDENCE-LEAF-1\n")
    assert rec.leaf_hash() == hashlib.sha256(b"\x00" + rec.leaf_data()).digest()


@pytest.mark.parametrize("name", ["", "finding opened", "发现", "x" * 200, "a\nb", "-lead"])
def test_a_kind_or_subject_outside_the_restricted_set_is_refused(db: str, name: str) -> None:
    with pytest.raises(ValueError, match="record"):
        _append(db, name, "finding:F-1", {})
    with pytest.raises(ValueError, match="record"):
        _append(db, "finding.opened", name, {})
    assert report(db).records == 0 and report(db).log_size == 0  # nothing half-written


def test_verify_names_every_change_addition_and_removal_of_a_record(db: str) -> None:
    store_batch(db, events(4), DeviceKeys())
    recs = [_append(db, "letter.replied", f"letter:L-{n}", {"text": "已整改", "n": n}, now_ms=2_000 + n)[0] for n in range(5)]
    sign_head(db)
    tamper(
        db,
        (_CHANGE_BODY, {"record_id": recs[0].record_id, "body": recs[0].body.replace("已整改".encode(), "未整改".encode())}),
        (_CHANGE_TIME, {"record_id": recs[1].record_id}),
        (_DELETE, {"record_id": recs[2].record_id}),
        (_SMUGGLE, {"body": b'{"actor":"sup","content":{}}'}),
        (_STEAL_LEAF, {"record_id": recs[3].record_id}),
    )
    r = report(db)
    found = sorted((p.problem, p.event_id) for p in r.problems)
    assert not r.ok and found == sorted(
        [
            ("changed", recs[0].record_id), ("changed", recs[1].record_id), ("removed", recs[2].record_id),
            ("added", "rec:smuggled"), ("added", recs[3].record_id), ("removed", "rec:elsewhere"),
        ]
    ), found
    assert all(h.root_matches for h in r.tree_heads)  # the rows were changed, not the log
    parallel = verify_parallel(db, SERVER_KEY.public_hex, workers=2, range_events=1)
    assert sorted((p.problem, p.event_id) for p in parallel.problems) == found and parallel.records == r.records == 5


def test_a_record_rolled_back_with_its_transaction_leaves_no_leaf(db: str) -> None:
    def fails(tx) -> None:  # type: ignore[no-untyped-def]
        append_record(tx, kind="finding.opened", subject="finding:F-9", actor="sup", content={}, now_ms=1)
        raise RuntimeError("the handler failed after appending")

    with pytest.raises(RuntimeError):
        storage_for(db).write(fails)
    with storage_for(db).reading() as tx:
        assert records_of(tx, "finding:F-9") == [] and log_size(tx) == 0
    assert report(db).ok


def test_the_worked_example_of_the_spec() -> None:
    """protocol/README.md §15.7: the example record's leaf data and leaf hash."""
    rec = Record(record_id="rec:00000000000000000000000000000001", kind="finding.opened", subject="finding:F-2026-0001", at_ms=1795488321803, body=b'{"actor":"sup","content":{}}')
    assert rec.leaf_data() == (
        b'FE-EVIDENCE-RECORD-1\n["rec:00000000000000000000000000000001","finding.opened","finding:F-2026-0001",1795488321803,"eyJhY3RvciI6InN1cCIsImNvbnRlbnQiOnt9fQ=="]'
    )
    assert rec.leaf_hash().hex() == "5256e48fe1e93c5b0ee2c8c63908b38a6ccd0d5c231b73443906b933f1a7d831"


def test_a_record_is_proved_over_http_by_its_id(api_on, seeded_url: str) -> None:  # type: ignore[no-untyped-def]
    rec, index = _append(seeded_url, "finding.opened", "finding:F-2026-0001", {"reason": "test"})
    proof = api_on.client.get(f"/api/v1/evidence/proof/{rec.record_id}").json()
    assert (proof["log_index"], proof["tree_size"], proof["leaf_hash"]) == (index, index + 1, rec.leaf_hash().hex())
    head = proof["tree_head"]
    assert merkle.verify_inclusion(rec.leaf_hash(), index, head["tree_size"], [bytes.fromhex(h) for h in proof["audit_path"]], bytes.fromhex(head["root_hash"]))
    verified = api_on.get("/api/v1/evidence/verify").json()
    assert verified["ok"] and verified["records"] == 1
