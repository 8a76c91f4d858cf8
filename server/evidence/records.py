"""The server's own records in the evidence log: what the server decided or was told (a finding opened, a letter
issued, an agency's reply, a reply accepted), appended like a device's event so that a record changed, added or
removed afterwards shows in ``fe-server verify`` and in every signed tree head after it.

A record is (id, kind, subject, time, body): ``kind`` says what happened (``finding.opened``), ``subject`` what it
happened to (``finding:F-2026-0001``), and ``body`` is the content as JSON, kept as the exact bytes its leaf commits
to (who acted, and the facts). Its leaf data is ``RECORD_PREFIX`` and the JSON array
``[record_id, kind, subject, at_ms, base64(body)]`` (protocol/README.md §15.7): another prefix than an event's, so
a leaf can never be read as the other kind. Record ids hold a ``:``, which a device's event id may not, so the log's
ids of the two kinds never collide.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from protocol import merkle
from server.evidence.log import EvidenceLog, indexes_of
from server.storage import records as rows
from server.storage.engine import Tx

#: Prefix of a record's leaf data (an event's is ``FE-EVIDENCE-LEAF-1``); a new layout gets a new prefix.
RECORD_PREFIX = b"FE-EVIDENCE-RECORD-1\n"
#: Kinds and subjects are ASCII from this set, so the leaf's JSON never escapes a character.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_encoder = msgspec.json.Encoder()


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """One record as stored."""

    record_id: str
    kind: str
    subject: str
    at_ms: int
    body: bytes

    def content(self) -> dict[str, Any]:
        """The body decoded."""
        return msgspec.json.decode(self.body)

    def leaf_data(self) -> bytes:
        """The bytes the record's leaf commits to."""
        return RECORD_PREFIX + _encoder.encode([self.record_id, self.kind, self.subject, self.at_ms, self.body])

    def leaf_hash(self) -> bytes:
        """The record's Merkle leaf hash."""
        return merkle.leaf_hash(self.leaf_data())


class Step(msgspec.Struct, kw_only=True):
    """One step of a subject's thread (a finding, a letter, a case), as the evidence log holds it: the views of the
    supervision and the case routes show their steps as these."""

    kind: str
    at_ms: int
    actor: str
    record_id: str
    log_index: int | None
    content: dict[str, Any]


def new_record_id() -> str:
    """A fresh record id (``rec:`` and 32 hex digits)."""
    return f"rec:{uuid.uuid4().hex}"


def append_record(tx: Tx, *, kind: str, subject: str, actor: str, content: Any, now_ms: int) -> tuple[Record, int]:
    """Store a record of ``actor``'s act and append it to the evidence log, in ``tx`` (a write transaction); returns
    the record and its log index. ``content`` is anything msgspec encodes (a Struct, a dict)."""
    for name, value in (("kind", kind), ("subject", subject)):
        if not NAME.match(value):
            raise ValueError(f"record {name} {value!r} is not of the form {NAME.pattern}")
    body = _encoder.encode({"actor": actor, "content": content})
    rec = Record(record_id=new_record_id(), kind=kind, subject=subject, at_ms=now_ms, body=body)
    rows.insert_record(tx, record_id=rec.record_id, kind=kind, subject=subject, at_ms=now_ms, body=body)
    log = EvidenceLog(tx)  # the log lock: taken last, as the ingest does
    (index,) = log.append_leaves(tx, [(rec.record_id, rec.leaf_hash())], now_ms)
    log.save(tx)
    return rec, index


def records_of(tx: Tx, subject: str) -> list[Record]:
    """A subject's records, oldest first."""
    return [Record(record_id=r, kind=k, subject=s, at_ms=t, body=b) for r, k, s, t, b in rows.records_of(tx, subject)]


def steps_of(tx: Tx, subject: str) -> list[Step]:
    """A subject's records as steps, oldest first, each with its index in the evidence log (None if not logged)."""
    recs = records_of(tx, subject)
    where = indexes_of(tx, [r.record_id for r in recs])
    out = []
    for r in recs:
        body = r.content()
        out.append(Step(kind=r.kind, at_ms=r.at_ms, actor=str(body.get("actor", "")), record_id=r.record_id, log_index=where.get(r.record_id), content=body.get("content") or {}))
    return out


def record(tx: Tx, record_id: str) -> Record | None:
    """One record."""
    row = rows.record(tx, record_id)
    return None if row is None else Record(record_id=row[0], kind=row[1], subject=row[2], at_ms=row[3], body=row[4])
