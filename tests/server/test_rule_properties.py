"""The rules hold on the server, over generated sequences of scans against a real SQLite database:

- a no-disturb enterprise is never inspected without an exception that checks out against a register
  (or, for the policy's urgent kinds, one queued for a supervisor's review);
- an enterprise's yearly cap is never passed without such an exception;
- two agencies scanning one enterprise at the same moment never open two inspections;
- a terminal's offline decision that the server decides differently always raises ``provisional_overturned``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import topics
from protocol.codec import seal
from protocol.config import load_toml
from protocol.decision import DAY_MS, Policy
from protocol.messages import EnterpriseScanned, ExceptionBasis, ProvisionalDecision
from protocol.signing import SigningKey
from server import db as dbmod
from server.codes import issue_code
from server.projector import Projector
from server.scanning import ScanRequest, decide_scan, end_part
from server.store import DeviceKeys, Incoming, store_batch
from tests.server.conftest import FRAGILE, GOOD, NOW_MS, PLAIN, seed
from tests.support.props import examples

POLICY = load_toml(Path(__file__).resolve().parents[2] / "server" / "policy.toml", Policy)
OFFICERS = ["OFF-SAMR-1", "OFF-SAMR-2", "OFF-FIRE-1"]
ENTERPRISES = [PLAIN, GOOD, FRAGILE]
#: Exceptions an officer might state: genuine, stale, made up, and urgent ones nobody registered.
EXCEPTIONS = [
    None,
    ExceptionBasis(kind="complaint", reference="12345-2026-001"),  # open ticket about GOOD
    ExceptionBasis(kind="complaint", reference="12345-2026-002"),  # closed ticket
    ExceptionBasis(kind="random_draw", reference="PLAN-2026-Q4"),  # SAMR's plan that drew GOOD
    ExceptionBasis(kind="superior_assignment", reference="x"),
    ExceptionBasis(kind="superior_assignment", reference="ASSIGN-1"),  # registered below for PLAIN, SAMR
    ExceptionBasis(kind="major_risk", reference="燃气泄漏"),  # unregistered, urgent
    ExceptionBasis(kind="rectification_follow_up", reference="no-such-inspection"),
]


@contextmanager
def registers() -> Iterator[tuple[sqlite3.Connection, Path]]:
    """A fresh seeded database with an assignment registered (one per example)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "server.db"
        dbmod.migrate(path)
        con = dbmod.connect(path)
        try:
            seed(con)
            con.execute(
                "INSERT INTO exception_bases(kind, reference, credit_code, agency_id, issued_by, valid_from_ms, valid_to_ms, created_by, created_ms)"
                " VALUES ('superior_assignment', 'ASSIGN-1', ?, 'SAMR', '市局', ?, ?, 'test', ?)",
                (PLAIN, NOW_MS - DAY_MS, NOW_MS + 90 * DAY_MS, NOW_MS),
            )
            yield con, path
        finally:
            con.close()


scan_steps = st.lists(
    st.tuples(
        st.sampled_from(OFFICERS),
        st.sampled_from(ENTERPRISES),
        st.sampled_from(["food", "fire"]),
        st.sampled_from(EXCEPTIONS),
        st.booleans(),  # end the inspection right after
        st.integers(0, 3 * DAY_MS),  # time passing before the scan
    ),
    min_size=1,
    max_size=14,
)


#: The test's own account of which stated exceptions are lawful where (independent of the server's checks):
#: (kind, reference) -> the enterprises and agencies it covers, and the field if it names one.
GENUINE = {
    ("complaint", "12345-2026-001"): ({GOOD}, {"SAMR", "FIRE"}, "food"),
    ("random_draw", "PLAN-2026-Q4"): ({GOOD}, {"SAMR"}, None),
    ("superior_assignment", "ASSIGN-1"): ({PLAIN}, {"SAMR"}, None),
}


def _lawful(con: sqlite3.Connection, scan_id: str) -> bool:
    """Did the scan that opened an inspection state an exception that is genuine here (or queued for review)?"""
    kind, ref, code, agency, field = con.execute("SELECT exception_kind, exception_ref, credit_code, agency_id, field FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
    if (kind, ref) in GENUINE:
        codes, agencies, only_field = GENUINE[(kind, ref)]
        return code in codes and agency in agencies and only_field in (None, field)
    queued = con.execute("SELECT 1 FROM exception_reviews WHERE scan_id = ? AND kind = ?", (scan_id, kind)).fetchone() is not None
    return kind in POLICY.exceptions.pending_review_kinds and ref == "燃气泄漏" and queued


@settings(max_examples=examples(40))
@given(scan_steps)
def test_no_disturb_and_caps_hold_over_any_sequence_of_scans(steps: list[tuple[str, str, str, ExceptionBasis | None, bool, int]]) -> None:
    with registers() as (con, path):
        now = NOW_MS
        texts = {c: issue_code(con, path, c)[0] for c in ENTERPRISES}
        for officer, enterprise, field, exc, end_after, wait in steps:
            now += wait
            req = ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=texts[enterprise], field=field, scanned_ms=now, exception=exc)
            with dbmod.transaction(con):
                d = decide_scan(con, req, POLICY, now)
                if end_after and d.inspection_id and d.outcome in ("allowed", "join"):
                    end_part(con, d.inspection_id, officer, "no_violation", "", now + 1)
        opened = con.execute(
            "SELECT i.credit_code, e.risk, e.credit, p.scan_id FROM inspections i JOIN enterprises e USING (credit_code)"
            " JOIN inspection_parts p ON p.inspection_id = i.inspection_id AND p.joined_ms = i.opened_ms AND p.agency_id = i.lead_agency_id"
            " ORDER BY i.opened_ms, i.inspection_id"
        ).fetchall()
        per_enterprise: dict[str, int] = {}
        for code, risk, credit, scan_id in opened:
            earlier = per_enterprise.get(code, 0)
            if code == GOOD:
                assert _lawful(con, scan_id), "a no-disturb enterprise was inspected without a lawful exception"
            if earlier >= POLICY.cap_for(risk, credit):
                assert _lawful(con, scan_id), "the yearly cap was passed without a lawful exception"
            per_enterprise[code] = earlier + 1
        # every refusal of the list was alerted
        refused = con.execute("SELECT COUNT(*) FROM scans WHERE code = 'no_disturb'").fetchone()[0]
        assert con.execute("SELECT COUNT(*) FROM alerts WHERE kind = 'no_disturb_attempt'").fetchone()[0] == refused


def test_two_agencies_scanning_at_once_never_open_two_inspections(tmp_path: Path) -> None:
    """Each scan in its own connection and thread; SQLite's write lock, not a process lock, serialises them."""
    path = tmp_path / "server.db"
    dbmod.migrate(path)
    setup = dbmod.connect(path)
    seed(setup)
    text = issue_code(setup, path, PLAIN)[0]
    setup.close()
    rounds = 15
    for r in range(rounds):
        barrier = threading.Barrier(2)
        results: list[str] = []
        now = NOW_MS + r

        def go(officer: str, field: str, now: int = now, barrier: threading.Barrier = barrier, results: list[str] = results) -> None:
            con = dbmod.connect(path)
            try:
                barrier.wait()
                with dbmod.transaction(con):
                    results.append(decide_scan(con, ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=text, field=field, scanned_ms=now), POLICY, now).outcome)
            finally:
                con.close()

        threads = [threading.Thread(target=go, args=("OFF-SAMR-1", "food")), threading.Thread(target=go, args=("OFF-FIRE-1", "fire"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(results) == ["allowed", "join"], (r, results)
        con = dbmod.connect(path)
        try:
            assert con.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] == 1
            with dbmod.transaction(con):  # the next round starts from an enterprise never inspected
                for table in ("inspection_parts", "inspections", "scans", "alerts"):
                    con.execute(f"DELETE FROM {table}")
        finally:
            con.close()


KEY = SigningKey.from_seed(bytes(range(32)))


@settings(max_examples=examples(40))
@given(
    provisional=st.sampled_from(["allowed", "join", "repeat", "refused"]),
    enterprise=st.sampled_from(ENTERPRISES),
    exc=st.sampled_from(EXCEPTIONS),
    provisional_first=st.booleans(),
)
def test_an_offline_decision_the_server_overturns_is_always_alerted(provisional: str, enterprise: str, exc: ExceptionBasis | None, provisional_first: bool) -> None:
    """Through the ingest's own path (signed events, store_batch, the projector), in either order of arrival."""
    with registers() as (con, path):
        con.execute(
            "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('QT-1', 'M', 'qr_terminal', 'SAMR', ?, 0)", (KEY.public_hex,)
        )
        text = issue_code(con, path, enterprise)[0]
        now = int(time.time() * 1000)
        scan = EnterpriseScanned(
            event_id=str(uuid.uuid4()), device_id="QT-1", seq=1, device_time_ms=now, clock_error_ms=0, officer_id="OFF-SAMR-1", code_text=text, field="food", exception_basis=exc
        )
        local = ProvisionalDecision(
            event_id=str(uuid.uuid4()), device_id="QT-1", seq=2, device_time_ms=now, clock_error_ms=0, scan_event_id=scan.event_id, outcome=provisional, code=provisional, snapshot_version=1  # type: ignore[arg-type]
        )
        msgs = [local, scan] if provisional_first else [scan, local]
        projector = Projector(POLICY)
        for m in msgs:  # one batch each: the second arrives after the first was committed
            store_batch(con, [Incoming(topics.device_up("QT-1"), seal(m, KEY), now)], DeviceKeys(con), projector=projector)
        server = con.execute("SELECT outcome FROM scans WHERE scan_id = ?", (scan.event_id,)).fetchone()[0]
        alerted = con.execute("SELECT COUNT(*) FROM alerts WHERE kind = 'provisional_overturned' AND ref = ?", (scan.event_id,)).fetchone()[0]
        assert alerted == (1 if provisional != server else 0), (provisional, server)
