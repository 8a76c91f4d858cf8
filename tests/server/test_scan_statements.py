"""How many SQL statements a scan runs in its write transaction, on both backends: pinned, so that a regression shows.

Counted: every statement sent through the seam (``Tx.run`` and what is built on it, ``Tx.many``, and ``Tx.lock`` where it
runs one: PostgreSQL's advisory lock), from the code check to the last alert; not BEGIN/COMMIT, and (through the
route) not the session lookup, which runs before the scan's transaction. Issue 13 took a typical allowed scan from 16
statements to 8 and a joined one from 15 to 8 (PostgreSQL: one more each, the enterprise's advisory lock): after the
code's key and revocation, the decision's reads are three statements (storage/inspections.py ``scan_facts``, which also
finds a resent scan by its id, ``inspections_at``, and the names), and nothing the decision read is read again to
record it or to answer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from server import db as dbmod
from server.app import create_app
from server.rules.scanning import ScanAnswer, ScanRequest, decide_scan_for_answer
from server.settings import ServerSettings
from server.storage.engine import Backend, Tx
from tests.server.conftest import GOOD, NOW_MS, PLAIN, Api
from tests.server.scan_fixtures import POLICY, Registers, registers  # noqa: F401 - registers: a fixture

#: Statements of a scan's transaction on SQLite, by outcome (PostgreSQL: one more, the advisory lock).
ALLOWED = 8  # code keys, revocation, facts (with the scan id), inspections, names, insert inspection, insert part, insert scan
JOINED = 8  # ... insert part, insert scan, the joint-inspection alert
REFUSED = 7  # ... insert scan, the refusal's alert


@contextmanager
def counting(monkeypatch: pytest.MonkeyPatch, only: set[int] | None = None) -> Iterator[list[str]]:
    """The statements Tx objects run while inside (those whose id is in ``only``, when given), by their SQL text."""
    seen: list[str] = []
    run, lock, many = Tx.run, Tx.lock, Tx.many

    def counts(tx: Tx) -> bool:
        return only is None or id(tx) in only

    def counted_run(self: Tx, stmt: Any, *a: Any, **kw: Any) -> Any:
        if counts(self):
            seen.append(" ".join(stmt.for_backend(self.backend).split()))
        return run(self, stmt, *a, **kw)

    def counted_lock(self: Tx, key: str) -> None:
        if counts(self) and self.backend is Backend.POSTGRES:
            seen.append(f"advisory lock {key.rsplit(':', 1)[0]}")
        lock(self, key)

    def counted_many(self: Tx, stmt: Any, rows: Any) -> None:
        if counts(self):
            seen.append("many: " + " ".join(stmt.for_backend(self.backend).split()))
        many(self, stmt, rows)

    with monkeypatch.context() as m:
        m.setattr(Tx, "run", counted_run)
        m.setattr(Tx, "lock", counted_lock)
        m.setattr(Tx, "many", counted_many)
        yield seen


def _reads(seen: list[str], table: str) -> int:
    """How many of the statements read the table."""
    return sum(re.search(rf"\b(FROM|JOIN) {table}\b", s) is not None for s in seen)


def _expected(n: int, backend: Backend) -> int:
    return n + (backend is Backend.POSTGRES)


def _decide(registers: Registers, monkeypatch: pytest.MonkeyPatch, officer: str, enterprise: str, field: str, now: int) -> tuple[ScanAnswer, list[str]]:
    req = ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=registers.texts[enterprise], field=field, scanned_ms=now)
    with registers.store.writing() as tx, counting(monkeypatch) as seen:
        answer = decide_scan_for_answer(tx, req, POLICY, now)
    return answer, seen


def test_statements_per_scan(registers: Registers, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = registers.store.backend
    allowed, seen = _decide(registers, monkeypatch, "OFF-SAMR-1", PLAIN, "food", NOW_MS)
    assert (allowed.decision.outcome, allowed.credit_code, allowed.enterprise_name) == ("allowed", PLAIN, "海淀某餐饮公司")
    assert len(seen) == _expected(ALLOWED, backend), seen
    assert [_reads(seen, "enterprises"), _reads(seen, "officers")] == [1, 1], seen  # each read once
    joined, seen = _decide(registers, monkeypatch, "OFF-FIRE-1", PLAIN, "fire", NOW_MS + 1000)
    assert (joined.decision.outcome, joined.decision.inspection_id) == ("join", allowed.decision.inspection_id)
    assert len(seen) == _expected(JOINED, backend), seen
    refused, seen = _decide(registers, monkeypatch, "OFF-SAMR-2", GOOD, "food", NOW_MS + 2000)
    assert (refused.decision.outcome, refused.decision.code) == ("refused", "no_disturb")
    assert len(seen) == _expected(REFUSED, backend), seen


@pytest.fixture
def api(seeded_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = ServerSettings(db_path=seeded_url, key_dir=tmp_path, mqtt_enabled=False, jobs_enabled=False)
    with TestClient(create_app(settings)) as c:
        yield Api(c)


def test_the_scan_route_reads_nothing_again(api: Api, seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the HTTP route: the scan's write transaction runs the decision's statements and no more (the answer's
    enterprise comes from the decision's reads)."""
    backend = dbmod.storage_for(seeded_url).backend
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    for officer in ("OFF-SAMR-1", "OFF-FIRE-1"):
        api.as_(officer).get("/api/v1/inspections")  # signed in before counting
    writing = dbmod.writing
    active: set[int] = set()

    @contextmanager
    def tracked(db: Any) -> Iterator[Tx]:
        with writing(db) as tx:
            active.add(id(tx))
            try:
                yield tx
            finally:
                active.discard(id(tx))

    monkeypatch.setattr(dbmod, "writing", tracked)
    answers = []
    for officer, field, expected in (("OFF-SAMR-1", "food", ALLOWED), ("OFF-FIRE-1", "fire", JOINED)):
        with counting(monkeypatch, active) as seen:
            r = api.as_(officer).post("/api/v1/scans", json={"code_text": text, "field": field})
        assert r.status_code == 200, r.text
        answers.append(r.json())
        assert len(seen) == _expected(expected, backend), seen
    assert [(a["outcome"], a["credit_code"], a["enterprise_name"]) for a in answers] == [("allowed", PLAIN, "海淀某餐饮公司"), ("join", PLAIN, "海淀某餐饮公司")]
