"""The rules hold on the server, over generated sequences of scans against a real database, on both backends:

- a no-disturb enterprise is never inspected without an exception that checks out against a register
  (or, for the policy's urgent kinds, one queued for a supervisor's review);
- an enterprise's yearly cap is never passed without such an exception;
- two agencies scanning one enterprise at the same moment never open two inspections;
- a terminal's offline decision that the server decides differently always raises ``provisional_overturned``.

The races run each side on a connection of its own, as two server processes would: on PostgreSQL (READ COMMITTED)
only the locks of server/storage/inspections.py and projection.py make them pass (each was seen failing without).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import topics
from protocol.codec import seal
from protocol.config import load_toml
from protocol.decision import DAY_MS, Policy
from protocol.messages import EnterpriseScanned, ExceptionBasis, ProvisionalDecision
from protocol.signing import SigningKey
from server.codes import issue_code
from server.projector import Projector
from server.scanning import ScanRequest, decide_scan, end_part
from server.storage.engine import Backend, Storage, Tx, backend_of, sql, sqlite_connect, sqlite_transaction, storage_for
from server.store import DeviceKeys, Incoming, store_batch
from tests.server.conftest import FRAGILE, GOOD, NOW_MS, PLAIN
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


_ASSIGNMENT = sql("""
    INSERT INTO exception_bases(kind, reference, credit_code, agency_id, issued_by, valid_from_ms, valid_to_ms, created_by, created_ms)
    VALUES ('superior_assignment', 'ASSIGN-1', :credit_code, 'SAMR', '市局', :since, :until, 'test', :now)
""")
#: What scans leave behind, emptied between examples (children first).
_CLEAR = [sql(f"DELETE FROM {t}") for t in ("exception_reviews", "provisional_decisions", "alerts", "scans", "inspection_parts", "inspections")]


@dataclass
class Registers:
    """A seeded database with an assignment registered and every enterprise's code issued."""

    url: str
    store: Storage
    texts: dict[str, str]

    def clear(self) -> None:
        """Forget every scan, inspection and alert (the registers and codes stay)."""
        with self.store.writing() as tx:
            for stmt in _CLEAR:
                tx.run(stmt)


@pytest.fixture
def registers(seeded_url: str, tmp_path: Path) -> Registers:
    store = storage_for(seeded_url)
    with store.writing() as tx:
        tx.run(_ASSIGNMENT, credit_code=PLAIN, since=NOW_MS - DAY_MS, until=NOW_MS + 90 * DAY_MS, now=NOW_MS)
        texts = {c: issue_code(tx, tmp_path / "server", c)[0] for c in ENTERPRISES}
    return Registers(seeded_url, store, texts)


@contextmanager
def own_transaction(url: str) -> Iterator[Tx]:
    """A write transaction on a connection of its own, as another server process would have it: no pool and no
    lock of this process between two of them, only the database."""
    if backend_of(url) is Backend.SQLITE:
        con = sqlite_connect(url)
        try:
            with sqlite_transaction(con):
                yield Tx(con, Backend.SQLITE)
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg, pg.transaction():
            yield Tx(pg, Backend.POSTGRES)


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


_SCAN_BASIS = sql("SELECT exception_kind, exception_ref, credit_code, agency_id, field FROM scans WHERE scan_id = :scan_id")
_QUEUED = sql("SELECT 1 FROM exception_reviews WHERE scan_id = :scan_id AND kind = :kind")
# Each inspection's enterprise and the scan that opened it (the lead agency's first part).
_OPENED = sql("""
    SELECT i.credit_code, e.risk, e.credit, p.scan_id FROM inspections i JOIN enterprises e ON e.credit_code = i.credit_code
    JOIN inspection_parts p ON p.inspection_id = i.inspection_id AND p.joined_ms = i.opened_ms AND p.agency_id = i.lead_agency_id
    ORDER BY i.opened_ms, i.inspection_id
""")
_REFUSED = sql("SELECT count(*) FROM scans WHERE code = 'no_disturb'")
_ALERTS_OF_KIND = sql("SELECT count(*) FROM alerts WHERE kind = :kind")


def _lawful(tx: Tx, scan_id: str) -> bool:
    """Did the scan that opened an inspection state an exception that is genuine here (or queued for review)?"""
    kind, ref, code, agency, field = tx.one(_SCAN_BASIS, scan_id=scan_id)  # type: ignore[misc]
    if (kind, ref) in GENUINE:
        codes, agencies, only_field = GENUINE[(kind, ref)]
        return code in codes and agency in agencies and only_field in (None, field)
    queued = tx.one(_QUEUED, scan_id=scan_id, kind=kind) is not None
    return kind in POLICY.exceptions.pending_review_kinds and ref == "燃气泄漏" and queued


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=scan_steps)
def test_no_disturb_and_caps_hold_over_any_sequence_of_scans(registers: Registers, steps: list[tuple[str, str, str, ExceptionBasis | None, bool, int]]) -> None:
    registers.clear()  # one database per backend, emptied for each example
    now = NOW_MS
    for officer, enterprise, field, exc, end_after, wait in steps:
        now += wait
        req = ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=registers.texts[enterprise], field=field, scanned_ms=now, exception=exc)
        with registers.store.writing() as tx:
            d = decide_scan(tx, req, POLICY, now)
            if end_after and d.inspection_id and d.outcome in ("allowed", "join"):
                end_part(tx, d.inspection_id, officer, "no_violation", "", now + 1)
    with registers.store.reading() as tx:
        per_enterprise: dict[str, int] = {}
        for code, risk, credit, scan_id in tx.all(_OPENED):
            earlier = per_enterprise.get(code, 0)
            if code == GOOD:
                assert _lawful(tx, scan_id), "a no-disturb enterprise was inspected without a lawful exception"
            if earlier >= POLICY.cap_for(risk, credit):
                assert _lawful(tx, scan_id), "the yearly cap was passed without a lawful exception"
            per_enterprise[code] = earlier + 1
        # every refusal of the list was alerted
        assert tx.scalar(_ALERTS_OF_KIND, kind="no_disturb_attempt") == tx.scalar(_REFUSED)


_INSPECTIONS = sql("SELECT inspection_id FROM inspections ORDER BY inspection_id")
_PARTS_OF = sql("SELECT agency_id FROM inspection_parts WHERE inspection_id = :inspection_id ORDER BY agency_id")


def test_two_agencies_scanning_at_once_never_open_two_inspections(registers: Registers) -> None:
    """Each scan in its own thread, connection and transaction, as two API processes would run them: the database
    alone (SQLite's write lock; PostgreSQL's advisory lock on the enterprise, storage-seam.md §4.1) serialises them."""
    text = registers.texts[PLAIN]
    rounds = 40 if registers.store.backend is Backend.POSTGRES else 15
    for r in range(rounds):
        barrier = threading.Barrier(2)
        results: list[str] = []
        errors: list[BaseException] = []
        now = NOW_MS + r

        def go(officer: str, field: str, now: int = now, barrier: threading.Barrier = barrier, results: list[str] = results, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(10)
                with own_transaction(registers.url) as tx:
                    req = ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=text, field=field, scanned_ms=now)
                    results.append(decide_scan(tx, req, POLICY, now).outcome)
            except BaseException as e:  # noqa: BLE001 - reported by the test thread
                errors.append(e)

        threads = [threading.Thread(target=go, args=("OFF-SAMR-1", "food")), threading.Thread(target=go, args=("OFF-FIRE-1", "fire"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, (r, errors)
        assert sorted(results) == ["allowed", "join"], (r, results)
        with registers.store.reading() as tx:
            [(inspection_id,)] = tx.all(_INSPECTIONS)
            assert tx.all(_PARTS_OF, inspection_id=inspection_id) == [("FIRE",), ("SAMR",)], r  # joined by both
        registers.clear()  # the next round starts from an enterprise never inspected


KEY = SigningKey.from_seed(bytes(range(32)))


_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'qr_terminal', 'SAMR', :public_key, 0)")
_OUTCOME = sql("SELECT outcome FROM scans WHERE scan_id = :scan_id")
_OVERTURNED = sql("SELECT count(*) FROM alerts WHERE kind = 'provisional_overturned' AND ref = :scan_id")


@settings(max_examples=examples(40), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    provisional=st.sampled_from(["allowed", "join", "repeat", "refused"]),
    enterprise=st.sampled_from(ENTERPRISES),
    exc=st.sampled_from(EXCEPTIONS),
    provisional_first=st.booleans(),
)
def test_an_offline_decision_the_server_overturns_is_always_alerted(
    registers: Registers, provisional: str, enterprise: str, exc: ExceptionBasis | None, provisional_first: bool
) -> None:
    """Through the ingest's own path (signed events, store_batch, the projector), in either order of arrival."""
    registers.clear()
    device = f"QT-{uuid.uuid4().hex[:8]}"  # a device of its own per example: its events start at seq 1
    with registers.store.writing() as tx:
        tx.run(_DEVICE, device_id=device, public_key=KEY.public_hex)
    now = int(time.time() * 1000)
    scan = EnterpriseScanned(
        event_id=str(uuid.uuid4()), device_id=device, seq=1, device_time_ms=now, clock_error_ms=0, officer_id="OFF-SAMR-1",
        code_text=registers.texts[enterprise], field="food", exception_basis=exc,
    )  # fmt: skip
    local = ProvisionalDecision(
        event_id=str(uuid.uuid4()), device_id=device, seq=2, device_time_ms=now, clock_error_ms=0, scan_event_id=scan.event_id, outcome=provisional, code=provisional, snapshot_version=1  # type: ignore[arg-type]
    )
    msgs = [local, scan] if provisional_first else [scan, local]
    projector = Projector(POLICY)
    for m in msgs:  # one batch each: the second arrives after the first was committed
        store_batch(registers.url, [Incoming(topics.device_up(device), seal(m, KEY), now)], DeviceKeys(), projector=projector)
    with registers.store.reading() as tx:
        server = tx.scalar(_OUTCOME, scan_id=scan.event_id)
        assert tx.scalar(_OVERTURNED, scan_id=scan.event_id) == (1 if provisional != server else 0), (provisional, server)


_PENDING = sql("SELECT count(*) FROM exception_reviews WHERE officer_id = :officer_id AND status = 'pending'")


def test_one_officer_at_two_enterprises_at_once_has_one_urgent_exception_awaiting_review(registers: Registers) -> None:
    """The policy's bound on an officer's unreviewed urgent exceptions holds when their two scans race."""
    assert POLICY.exceptions.pending_review_per_officer == 1
    urgent = ExceptionBasis(kind="major_risk", reference="燃气泄漏")
    rounds = 25 if registers.store.backend is Backend.POSTGRES else 5
    for r in range(rounds):
        barrier = threading.Barrier(2)
        outcomes: list[tuple[str, bool]] = []
        errors: list[BaseException] = []
        now = NOW_MS + r

        def go(enterprise: str, now: int = now, barrier: threading.Barrier = barrier, outcomes: list[tuple[str, bool]] = outcomes, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(10)
                with own_transaction(registers.url) as tx:
                    req = ScanRequest(
                        scan_id=str(uuid.uuid4()), channel="phone", officer_id="OFF-SAMR-1", code_text=registers.texts[enterprise], field="food", scanned_ms=now, exception=urgent
                    )
                    d = decide_scan(tx, req, POLICY, now)
                    outcomes.append((d.code, d.pending_review))
            except BaseException as e:  # noqa: BLE001 - reported by the test thread
                errors.append(e)

        threads = [threading.Thread(target=go, args=(PLAIN,)), threading.Thread(target=go, args=(FRAGILE,))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, (r, errors)
        assert sorted(p for _, p in outcomes) == [False, True], (r, outcomes)
        with registers.store.reading() as tx:
            assert tx.scalar(_PENDING, officer_id="OFF-SAMR-1") == 1, r
        registers.clear()


_STATUS = sql("""
    SELECT i.inspection_id, i.status, count(p.officer_id), count(CASE WHEN p.ended_ms IS NULL THEN 1 END)
    FROM inspections i JOIN inspection_parts p ON p.inspection_id = i.inspection_id
    GROUP BY i.inspection_id, i.status ORDER BY i.inspection_id
""")


def _race(*jobs: Callable[[Tx], object], url: str) -> list[object]:
    """Run each job in its own thread and transaction (own_transaction), all released at once; their results."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(10)
            with own_transaction(url) as tx:
                results[n] = jobs[n](tx)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def test_an_inspection_ends_exactly_when_its_last_part_does_whatever_races_it(registers: Registers) -> None:
    """Two officers ending their parts at once end the inspection; a part ending while another agency joins leaves
    no ended inspection with a part under way, nor an open one with every part ended."""
    text = registers.texts[PLAIN]

    def scanner(officer: str, field: str, now: int) -> Callable[[Tx], object]:
        return lambda tx: decide_scan(tx, ScanRequest(scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=text, field=field, scanned_ms=now), POLICY, now)

    def ender(inspection_id: str, officer: str, now: int) -> Callable[[Tx], object]:
        return lambda tx: end_part(tx, inspection_id, officer, "no_violation", "", now)

    rounds = 20 if registers.store.backend is Backend.POSTGRES else 4
    for r in range(rounds):
        now = NOW_MS + r
        first = scanner("OFF-SAMR-1", "food", now)
        with registers.store.writing() as tx:
            d = first(tx)
            assert scanner("OFF-FIRE-1", "fire", now)(tx).outcome == "join"  # type: ignore[attr-defined]
        _race(ender(d.inspection_id, "OFF-SAMR-1", now + 1), ender(d.inspection_id, "OFF-FIRE-1", now + 1), url=registers.url)  # type: ignore[attr-defined]
        with registers.store.reading() as tx:
            assert tx.all(_STATUS) == [(d.inspection_id, "ended", 2, 0)], r  # type: ignore[attr-defined]
        registers.clear()
        with registers.store.writing() as tx:
            d = first(tx)
        _race(ender(d.inspection_id, "OFF-SAMR-1", now + 1), scanner("OFF-FIRE-1", "fire", now + 1), url=registers.url)  # type: ignore[attr-defined]
        with registers.store.reading() as tx:
            for iid, status, parts, under_way in tx.all(_STATUS):
                assert (status == "ended") == (under_way == 0), (r, iid, status, parts, under_way)
        registers.clear()


_COMPARED = sql("SELECT compared_ms IS NOT NULL, overturned FROM provisional_decisions WHERE scan_id = :scan_id")


def _interleave(first: Callable[[Tx], object], second: Callable[[Tx], object], url: str) -> None:
    """``first`` runs in a transaction left open while ``second`` runs in another one (its own thread), then
    ``first`` commits: the order two processes would produce when the second starts before the first commits."""
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            with own_transaction(url) as tx:
                second(tx)
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    with own_transaction(url) as tx:
        first(tx)
        t = threading.Thread(target=run_second)
        t.start()
        t.join(0.3)  # the second does what it can before the first commits (or waits for it)
    t.join(30)
    assert not errors and not t.is_alive(), errors


@pytest.mark.parametrize("scan_first", [True, False])
def test_an_offline_decision_and_its_scan_projected_at_once_are_compared(registers: Registers, scan_first: bool) -> None:
    """Two ingest processes, one holding the terminal's scan and the other its offline decision, the second starting
    before the first commits: the two are compared all the same, so the overturned decision is alerted once."""
    projector = Projector(POLICY)
    now = NOW_MS
    scan = EnterpriseScanned(
        event_id=str(uuid.uuid4()), device_id="QT-1", seq=1, device_time_ms=now, clock_error_ms=0, officer_id="OFF-SAMR-1",
        code_text=registers.texts[PLAIN], field="food",
    )  # fmt: skip
    local = ProvisionalDecision(
        event_id=str(uuid.uuid4()), device_id="QT-1", seq=2, device_time_ms=now, clock_error_ms=0, scan_event_id=scan.event_id, outcome="refused", code="cap_reached", snapshot_version=1
    )
    jobs = [lambda tx: projector.stored(tx, scan, now), lambda tx: projector.stored(tx, local, now)]
    _interleave(*(jobs if scan_first else jobs[::-1]), url=registers.url)
    with registers.store.reading() as tx:
        assert tx.scalar(_OUTCOME, scan_id=scan.event_id) == "allowed"
        assert (tx.one(_COMPARED, scan_id=scan.event_id), tx.scalar(_OVERTURNED, scan_id=scan.event_id)) == ((1, 1), 1)


_SCANS = sql("SELECT count(*) FROM scans")


@pytest.mark.parametrize("genuine", [True, False])
def test_one_scan_sent_twice_at_once_is_decided_once(registers: Registers, genuine: bool) -> None:
    """A double click, or a resend landing on another process, while the first is being decided: one decision."""
    forged = registers.texts[PLAIN][:-8] + ("AAAAAAAA" if not registers.texts[PLAIN].endswith("AAAAAAAA") else "BBBBBBBB")
    req = ScanRequest(scan_id="double-1", channel="phone", officer_id="OFF-SAMR-1", code_text=registers.texts[PLAIN] if genuine else forged, field="food", scanned_ms=NOW_MS)
    decisions: list[object] = []
    _interleave(lambda tx: decisions.append(decide_scan(tx, req, POLICY, NOW_MS)), lambda tx: decisions.append(decide_scan(tx, req, POLICY, NOW_MS + 1)), url=registers.url)
    assert len(decisions) == 2 and decisions[0] == decisions[1]
    assert decisions[0].outcome == ("allowed" if genuine else "refused")  # type: ignore[attr-defined]
    with registers.store.reading() as tx:
        assert tx.scalar(_SCANS) == 1 and len(tx.all(_INSPECTIONS)) == (1 if genuine else 0)
