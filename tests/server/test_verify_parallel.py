from __future__ import annotations

import msgspec

from server.ingest.batch import store_batch
from server.ingest.store import DeviceKeys
from server.storage.engine import sql, storage_for
from server.evidence.verify import verify, verify_parallel
from tests.server.test_evidence import _BUMP_TIME, _DELETE, _EDIT_COPY, _IDS, _SMUGGLE, _ZERO_SIG, SERVER_KEY, db, events, sign_head, tamper  # noqa: F401

_BREAK = sql("UPDATE events SET prev_hash = 'ff' WHERE event_id = :event_id")


def _same(a, b) -> None:
    da, db_ = msgspec.to_builtins(a), msgspec.to_builtins(b)
    da.pop("seconds"), db_.pop("seconds")
    assert da == db_


def test_parallel_report_is_the_serial_one(db: str) -> None:
    store_batch(db, events(20), DeviceKeys())
    sign_head(db)
    ids = [r[0] for r in storage_for(db).read(lambda tx: tx.all(_IDS))]
    tamper(
        db, (_BUMP_TIME, {"event_id": ids[1]}), (_DELETE, {"event_id": ids[3]}), (_ZERO_SIG, {"event_id": ids[4], "sig": b"\x00" * 64}),
        (_SMUGGLE, {"event_id": ids[0]}), (_EDIT_COPY, {"event_id": ids[5]}), (_BREAK, {"event_id": ids[9]}), (_BREAK, {"event_id": ids[12]}),
    )  # fmt: skip
    serial = storage_for(db).read(lambda tx: verify(tx, SERVER_KEY.public_hex, signatures=True))
    assert not serial.ok and serial.chains[0].broken_at == [10, 13]
    for every in (1, 3, 4, 5, 100):
        _same(serial, verify_parallel(db, SERVER_KEY.public_hex, signatures=True, workers=2, range_events=every))
