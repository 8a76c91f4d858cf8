"""The rules hold on the server, over generated sequences of scans against a real database, on both backends:

- a no-disturb enterprise is never inspected without an exception that checks out against a register
  (or, for the policy's urgent kinds, one queued for a supervisor's review);
- an enterprise's yearly cap is never passed without such an exception;
- a terminal's offline decision that the server decides differently always raises ``provisional_overturned``.

Scans racing each other (two agencies at one enterprise, and more): tests/server/test_scan_races.py.
"""

from __future__ import annotations

import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import topics
from protocol.codec import seal
from protocol.decision import DAY_MS
from protocol.messages import EnterpriseScanned, ExceptionBasis, ProvisionalDecision
from protocol.signing import SigningKey
from server.ingest.projector import Projector
from server.rules.scanning import ScanRequest, decide_scan, end_part
from server.storage.engine import Tx, sql
from server.ingest.store import DeviceKeys, Incoming
from server.ingest.batch import store_batch
from tests.server.conftest import GOOD, NOW_MS, PLAIN
from tests.server.scan_fixtures import ENTERPRISES, POLICY, Registers, registers  # noqa: F401 - registers: a fixture
from tests.support.props import examples

OFFICERS = ["OFF-SAMR-1", "OFF-SAMR-2", "OFF-FIRE-1"]
#: Exceptions an officer might state: genuine, stale, made up, and urgent ones nobody registered.
EXCEPTIONS = [
    None,
    ExceptionBasis(kind="complaint", reference="12345-2026-001"),  # open ticket about GOOD
    ExceptionBasis(kind="complaint", reference="12345-2026-002"),  # closed ticket
    ExceptionBasis(kind="random_draw", reference="PLAN-2026-Q4"),  # SAMR's plan that drew GOOD
    ExceptionBasis(kind="superior_assignment", reference="x"),
    ExceptionBasis(kind="superior_assignment", reference="ASSIGN-1"),  # registered for PLAIN, SAMR (scan_fixtures.registers)
    ExceptionBasis(kind="major_risk", reference="燃气泄漏"),  # unregistered, urgent
    ExceptionBasis(kind="rectification_follow_up", reference="no-such-inspection"),
]

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


