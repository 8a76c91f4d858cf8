"""Scans and projections racing each other, each side on a connection of its own as two server processes would
run them, on both backends: on PostgreSQL (READ COMMITTED) only the locks of server/storage/inspections.py and
projection.py make these pass (each test was seen failing without its lock); on SQLite the write transaction
serialises them anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from protocol.decision import Decision
from protocol.messages import EnterpriseScanned, ExceptionBasis, ProvisionalDecision
from server.ingest.projector import Projector
from server.rules.scanning import ScanRequest, decide_scan, end_part
from server.storage.engine import Backend, Tx, sql
from tests.server.conftest import FRAGILE, NOW_MS, PLAIN
from tests.server.scan_fixtures import POLICY, Registers, interleave, race, registers  # noqa: F401 - registers: a fixture

_OUTCOME = sql("SELECT outcome FROM scans WHERE scan_id = :scan_id")
_OVERTURNED = sql("SELECT count(*) FROM alerts WHERE kind = 'provisional_overturned' AND ref = :scan_id")
_INSPECTIONS = sql("SELECT inspection_id FROM inspections ORDER BY inspection_id")
_PARTS_OF = sql("SELECT agency_id FROM inspection_parts WHERE inspection_id = :inspection_id ORDER BY agency_id")


def scanner(registers: Registers, officer: str, enterprise: str, field: str, now: int, exception: ExceptionBasis | None = None) -> Callable[[Tx], Decision]:
    """A job deciding a new scan by the officer of the enterprise's code."""
    req = ScanRequest(
        scan_id=str(uuid.uuid4()), channel="phone", officer_id=officer, code_text=registers.texts[enterprise], field=field, scanned_ms=now, exception=exception
    )
    return lambda tx: decide_scan(tx, req, POLICY, now)


def test_two_agencies_scanning_at_once_never_open_two_inspections(registers: Registers) -> None:
    """The database alone (SQLite's write lock; PostgreSQL's advisory lock on the enterprise, storage-seam.md §4.1)
    serialises them: one opens the inspection, the other joins it."""
    rounds = 40 if registers.store.backend is Backend.POSTGRES else 15
    for r in range(rounds):
        now = NOW_MS + r
        decisions = race(scanner(registers, "OFF-SAMR-1", PLAIN, "food", now), scanner(registers, "OFF-FIRE-1", PLAIN, "fire", now), url=registers.url)
        assert sorted(d.outcome for d in decisions) == ["allowed", "join"], (r, decisions)
        with registers.store.reading() as tx:
            [(inspection_id,)] = tx.all(_INSPECTIONS)
            assert tx.all(_PARTS_OF, inspection_id=inspection_id) == [("FIRE",), ("SAMR",)], r  # joined by both
        registers.clear()  # the next round starts from an enterprise never inspected


_PENDING = sql("SELECT count(*) FROM exception_reviews WHERE officer_id = :officer_id AND status = 'pending'")


def test_one_officer_at_two_enterprises_at_once_has_one_urgent_exception_awaiting_review(registers: Registers) -> None:
    """The policy's bound on an officer's unreviewed urgent exceptions holds when their two scans race."""
    assert POLICY.exceptions.pending_review_per_officer == 1
    urgent = ExceptionBasis(kind="major_risk", reference="燃气泄漏")
    rounds = 25 if registers.store.backend is Backend.POSTGRES else 5
    for r in range(rounds):
        now = NOW_MS + r
        decisions = race(
            scanner(registers, "OFF-SAMR-1", PLAIN, "food", now, urgent), scanner(registers, "OFF-SAMR-1", FRAGILE, "food", now, urgent), url=registers.url
        )
        assert sorted(d.pending_review for d in decisions) == [False, True], (r, decisions)
        with registers.store.reading() as tx:
            assert tx.scalar(_PENDING, officer_id="OFF-SAMR-1") == 1, r
        registers.clear()


_STATUS = sql("""
    SELECT i.inspection_id, i.status, count(p.officer_id), count(CASE WHEN p.ended_ms IS NULL THEN 1 END)
    FROM inspections i JOIN inspection_parts p ON p.inspection_id = i.inspection_id
    GROUP BY i.inspection_id, i.status ORDER BY i.inspection_id
""")


def test_an_inspection_ends_exactly_when_its_last_part_does_whatever_races_it(registers: Registers) -> None:
    """Two officers ending their parts at once end the inspection; a part ending while another agency joins leaves
    no ended inspection with a part under way, nor an open one with every part ended."""

    def ender(inspection_id: str | None, officer: str, now: int) -> Callable[[Tx], bool]:
        assert inspection_id is not None
        return lambda tx: end_part(tx, inspection_id, officer, "no_violation", "", now)

    rounds = 20 if registers.store.backend is Backend.POSTGRES else 4
    for r in range(rounds):
        now = NOW_MS + r
        with registers.store.writing() as tx:
            d = scanner(registers, "OFF-SAMR-1", PLAIN, "food", now)(tx)
            assert scanner(registers, "OFF-FIRE-1", PLAIN, "fire", now)(tx).outcome == "join"
        race(ender(d.inspection_id, "OFF-SAMR-1", now + 1), ender(d.inspection_id, "OFF-FIRE-1", now + 1), url=registers.url)
        with registers.store.reading() as tx:
            assert tx.all(_STATUS) == [(d.inspection_id, "ended", 2, 0)], r
        registers.clear()
        with registers.store.writing() as tx:
            d = scanner(registers, "OFF-SAMR-1", PLAIN, "food", now)(tx)
        race(ender(d.inspection_id, "OFF-SAMR-1", now + 1), scanner(registers, "OFF-FIRE-1", PLAIN, "fire", now + 1), url=registers.url)
        with registers.store.reading() as tx:
            for iid, status, parts, under_way in tx.all(_STATUS):
                assert (status == "ended") == (under_way == 0), (r, iid, status, parts, under_way)
        registers.clear()


_COMPARED = sql("SELECT compared_ms IS NOT NULL, overturned FROM provisional_decisions WHERE scan_id = :scan_id")


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
    interleave(*(jobs if scan_first else jobs[::-1]), url=registers.url)
    with registers.store.reading() as tx:
        assert tx.scalar(_OUTCOME, scan_id=scan.event_id) == "allowed"
        assert (tx.one(_COMPARED, scan_id=scan.event_id), tx.scalar(_OVERTURNED, scan_id=scan.event_id)) == ((1, 1), 1)


_SCANS = sql("SELECT count(*) FROM scans")


@pytest.mark.parametrize("genuine", [True, False])
def test_one_scan_sent_twice_at_once_is_decided_once(registers: Registers, genuine: bool) -> None:
    """A double click, or a resend landing on another process, while the first is being decided: one decision."""
    forged = registers.texts[PLAIN][:-8] + ("AAAAAAAA" if not registers.texts[PLAIN].endswith("AAAAAAAA") else "BBBBBBBB")
    req = ScanRequest(scan_id="double-1", channel="phone", officer_id="OFF-SAMR-1", code_text=registers.texts[PLAIN] if genuine else forged, field="food", scanned_ms=NOW_MS)
    decisions: list[Decision] = []
    interleave(lambda tx: decisions.append(decide_scan(tx, req, POLICY, NOW_MS)), lambda tx: decisions.append(decide_scan(tx, req, POLICY, NOW_MS + 1)), url=registers.url)
    assert len(decisions) == 2 and decisions[0] == decisions[1]
    assert decisions[0].outcome == ("allowed" if genuine else "refused")
    with registers.store.reading() as tx:
        assert tx.scalar(_SCANS) == 1 and len(tx.all(_INSPECTIONS)) == (1 if genuine else 0)
