"""The inspections domain's rows on both backends: the register reads of a decision, inspections at an enterprise,
parts, scans, listings by scope, the scan lock, and the rows the projector writes (storage/projection.py)."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from server.storage import inspections as rows
from server.storage import projection
from server.storage.engine import Backend, Storage, sql
from tests.server.conftest import DAY_MS, FRAGILE, GOOD, NOW_MS, PLAIN, UNREGISTERED, seed

HOUR_MS = 3_600_000
_REVIEW = sql("""
    INSERT INTO exception_reviews(scan_id, inspection_id, kind, reference, credit_code, officer_id, agency_id, problem, created_ms, status)
    VALUES (:scan_id, :inspection_id, 'major_risk', 'x', :credit_code, 'OFF-SAMR-1', 'SAMR', '', 0, :status)
""")
_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'qr_terminal', :agency_id, '00', 0)")
_DEVICE_STATE = sql("INSERT INTO device_state(device_id) VALUES (:device_id)")


@pytest.fixture
def seeded(store: Storage) -> Storage:
    with store.writing() as tx:
        seed(tx)
    return store


def _open(store: Storage, iid: str, code: str, agency: str, opened_ms: int, *, officer: str = "OFF-SAMR-1", field: str = "food") -> None:
    with store.writing() as tx:
        rows.open_inspection(
            tx, rows.NewInspection(inspection_id=iid, credit_code=code, region=_region(tx, code), lead_agency_id=agency, field=field, opened_ms=opened_ms,
                                   exception_kind=None, exception_ref=None),
        )  # fmt: skip
        rows.add_part(tx, rows.Part(inspection_id=iid, officer_id=officer, agency_id=agency, field=field, matter="", scan_id=None, device_id=None, joined_ms=opened_ms))


def _facts(tx: object, credit_code: str, officer_id: str = "OFF-SAMR-1", now_ms: int = NOW_MS, year: int = NOW_MS - 365 * DAY_MS) -> rows.ScanFacts:
    return rows.scan_facts(tx, "no-such-scan", officer_id, credit_code, now_ms, day=NOW_MS - DAY_MS, week=NOW_MS - 7 * DAY_MS, month=NOW_MS - 30 * DAY_MS, year=year)  # type: ignore[arg-type]


def _region(tx: object, credit_code: str) -> str:
    ent = _facts(tx, credit_code).enterprise
    return ent[4] if ent else ""


def _scan_row(scan_id: str, **kw: object) -> rows.ScanRow:
    base: dict[str, object] = dict(
        scan_id=scan_id, channel="phone", device_id=None, officer_id="OFF-SAMR-1", agency_id="SAMR", credit_code=PLAIN, code_text="text", field="food",
        matter="", reason="", exception_kind=None, exception_ref=None, lat=39.9, lon=116.3, scanned_ms=NOW_MS, decided_ms=NOW_MS, outcome="allowed",
        code="allowed", inspection_id=None, decision_json="{}",
    )  # fmt: skip
    return rows.ScanRow(**{**base, **kw})  # type: ignore[arg-type]


def test_the_registers_as_a_decision_reads_them(seeded: Storage) -> None:
    with seeded.writing() as tx:
        tx.run(_DEVICE, device_id="QT-1", agency_id="FIRE")
    with seeded.reading() as tx:
        revoked = ("OFF-REVOKED", "SAMR", "C-REV", '["food"]', NOW_MS - 365 * DAY_MS, NOW_MS + 365 * DAY_MS, NOW_MS - DAY_MS, "OFF-REVOKED")
        assert rows.credential_row(tx, "OFF-REVOKED") == revoked and _facts(tx, GOOD, "OFF-REVOKED").credential == revoked
        assert rows.credential_row(tx, "NOBODY") is None and _facts(tx, GOOD, "NOBODY").credential is None
        assert _facts(tx, GOOD).enterprise == (GOOD, "守信示范企业", "low", "A", "110108") and _facts(tx, UNREGISTERED).enterprise is None
        assert (_region(tx, PLAIN), _region(tx, UNREGISTERED)) == ("110108", "")
        assert _facts(tx, GOOD).no_disturb == ("A级纳税信用、连续三年无违法记录", None)
        assert _facts(tx, GOOD, now_ms=NOW_MS - 31 * DAY_MS).no_disturb is None  # not yet listed then
        assert _facts(tx, PLAIN).no_disturb is None
        nobody = _facts(tx, UNREGISTERED, "NOBODY")  # nothing registered: the counts' row still comes back
        assert (nobody.credential, nobody.enterprise, nobody.no_disturb, nobody.counts) == (None, None, None, rows.InspectionCounts(0, 0, 0, 0, 0))
        assert rows.names(tx) == {"SAMR": "市场监管局", "FIRE": "消防救援支队", "food": "食品安全", "fire": "消防安全"}
        assert (rows.device_agency(tx, "QT-1"), rows.device_agency(tx, "QT-2")) == ("FIRE", None)
        assert rows.enterprise_card(tx, PLAIN) == (PLAIN, "海淀某餐饮公司", "", "110108", "medium", "B")
        assert rows.on_no_disturb_list(tx, GOOD, NOW_MS) and not rows.on_no_disturb_list(tx, FRAGILE, NOW_MS)


def test_the_no_disturb_entry_in_force_is_the_latest(seeded: Storage) -> None:
    add = sql("""
        INSERT INTO no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms, removed_ms)
        VALUES (:code, :basis, :since, :until, 'sup', 0, :removed)
    """)
    with seeded.writing() as tx:
        tx.run(add, code=PLAIN, basis="旧", since=NOW_MS - 20 * DAY_MS, until=None, removed=None)
        tx.run(add, code=PLAIN, basis="新", since=NOW_MS - 10 * DAY_MS, until=NOW_MS + DAY_MS, removed=None)
        tx.run(add, code=PLAIN, basis="撤销", since=NOW_MS - 5 * DAY_MS, until=None, removed=NOW_MS - DAY_MS)
        tx.run(add, code=FRAGILE, basis="过期", since=NOW_MS - 20 * DAY_MS, until=NOW_MS - DAY_MS, removed=None)
    with seeded.reading() as tx:
        assert _facts(tx, PLAIN).no_disturb == ("新", NOW_MS + DAY_MS)
        assert _facts(tx, PLAIN, now_ms=NOW_MS + 2 * DAY_MS).no_disturb == ("旧", None)
        assert _facts(tx, FRAGILE).no_disturb is None
        assert not rows.on_no_disturb_list(tx, FRAGILE, NOW_MS)


def test_open_inspections_are_those_in_the_window_still_open_and_not_awaiting_review(seeded: Storage) -> None:
    _open(seeded, "old", PLAIN, "SAMR", NOW_MS - 10 * HOUR_MS)
    _open(seeded, "ended", PLAIN, "SAMR", NOW_MS - 3 * HOUR_MS)
    _open(seeded, "b", PLAIN, "FIRE", NOW_MS - HOUR_MS, officer="OFF-FIRE-1", field="fire")
    _open(seeded, "a", PLAIN, "SAMR", NOW_MS - 2 * HOUR_MS)
    _open(seeded, "pending", PLAIN, "SAMR", NOW_MS - HOUR_MS, officer="OFF-SAMR-2")
    _open(seeded, "confirmed", PLAIN, "SAMR", NOW_MS - HOUR_MS + 1, officer="OFF-SAMR-2")
    _open(seeded, "elsewhere", FRAGILE, "SAMR", NOW_MS - HOUR_MS)
    with seeded.writing() as tx:
        assert rows.end_part(tx, "ended", "OFF-SAMR-1", "no_violation", "", NOW_MS)
        rows.end_inspection(tx, "ended", NOW_MS)
        tx.run(_REVIEW, scan_id="s-p", inspection_id="pending", credit_code=PLAIN, status="pending")
        tx.run(_REVIEW, scan_id="s-c", inspection_id="confirmed", credit_code=PLAIN, status="confirmed")
    with seeded.reading() as tx:
        found, _ = rows.inspections_at(tx, PLAIN, open_since_ms=NOW_MS - 8 * HOUR_MS, recent_since_ms=NOW_MS)
    assert [(o.inspection_id, o.lead_agency_id, o.field) for o in found] == [("a", "SAMR", "food"), ("b", "FIRE", "fire"), ("confirmed", "SAMR", "food")]
    assert found[0].opened_ms == NOW_MS - 2 * HOUR_MS


def test_recent_parts_newest_first_and_counts_since_each_instant(seeded: Storage) -> None:
    for n, days in enumerate((0.5, 3, 20, 200)):
        _open(seeded, f"i{n}", PLAIN, "SAMR", NOW_MS - int(days * DAY_MS))
    with seeded.writing() as tx:
        rows.add_part(tx, rows.Part(inspection_id="i1", officer_id="OFF-FIRE-1", agency_id="FIRE", field="fire", matter="", scan_id=None, device_id=None, joined_ms=NOW_MS - DAY_MS))
        rows.end_part(tx, "i1", "OFF-FIRE-1", "no_violation", "", NOW_MS - DAY_MS + 5)
    with seeded.reading() as tx:
        under_way, recent = rows.inspections_at(tx, PLAIN, open_since_ms=NOW_MS - DAY_MS, recent_since_ms=NOW_MS - 30 * DAY_MS)
        counts = _facts(tx, PLAIN, year=NOW_MS - 100 * DAY_MS).counts
        none = _facts(tx, FRAGILE).counts
        # a year that began before the month: the counts reach back to the earlier of the two
        long_year = _facts(tx, PLAIN).counts
    assert [(p.inspection_id, p.agency_id, p.ended_ms is not None) for p in recent] == [("i0", "SAMR", False), ("i1", "FIRE", True), ("i1", "SAMR", False), ("i2", "SAMR", False)]
    assert [o.inspection_id for o in under_way] == ["i0"]  # the one statement keeps the two lists apart
    assert counts == rows.InspectionCounts(day=1, week=2, month=3, year=3, fruitless=0)
    assert none == rows.InspectionCounts(0, 0, 0, 0, 0)
    assert long_year.year == 4 and all(isinstance(v, int) for v in (counts.day, counts.week, counts.month, counts.year))


def test_an_inspection_ends_when_its_last_part_does(seeded: Storage) -> None:
    _open(seeded, "i", PLAIN, "SAMR", NOW_MS)
    join = rows.Part(inspection_id="i", officer_id="OFF-FIRE-1", agency_id="FIRE", field="fire", matter="消防", scan_id="s2", device_id="QT-1", joined_ms=NOW_MS + 1)
    with seeded.writing() as tx:
        rows.add_part(tx, join)
        rows.add_part(tx, msgspec.structs.replace(join, agency_id="SAMR", field="food", joined_ms=NOW_MS + 2))  # already there: kept as it was
        assert rows.open_parts(tx, "i") == 2
        assert rows.end_part(tx, "i", "OFF-SAMR-1", "no_violation", "无问题", NOW_MS + 10)
        assert not rows.end_part(tx, "i", "OFF-SAMR-1", "no_violation", "again", NOW_MS + 11)  # already ended
        assert not rows.end_part(tx, "nope", "OFF-SAMR-1", "no_violation", "", NOW_MS + 11)
        assert rows.open_parts(tx, "i") == 1
    with seeded.reading() as tx:
        assert rows.inspection(tx, "i") == ("i", PLAIN, "海淀某餐饮公司", "SAMR", "food", "open", NOW_MS, None, None, None)
        assert rows.parts(tx, "i") == [
            ("OFF-SAMR-1", "SAMR", "food", "", NOW_MS, NOW_MS + 10, "no_violation"),
            ("OFF-FIRE-1", "FIRE", "fire", "消防", NOW_MS + 1, None, None),
        ]
        assert rows.inspection(tx, "nope") is None and rows.parts(tx, "nope") == []
    with seeded.writing() as tx:
        rows.end_part(tx, "i", "OFF-FIRE-1", "rectification_ordered", "", NOW_MS + 20)
        rows.end_inspection(tx, "i", NOW_MS + 20)
    with seeded.reading() as tx:
        assert rows.inspection(tx, "i")[5:8] == ("ended", NOW_MS, NOW_MS + 20)  # type: ignore[index]


def test_who_took_part_and_what_each_may_list(seeded: Storage) -> None:
    _open(seeded, "p1", PLAIN, "SAMR", NOW_MS - 3)
    _open(seeded, "f1", FRAGILE, "FIRE", NOW_MS - 2, officer="OFF-FIRE-1", field="fire")
    _open(seeded, "p2", PLAIN, "FIRE", NOW_MS - 1, officer="OFF-FIRE-1", field="fire")
    with seeded.writing() as tx:
        rows.end_part(tx, "p1", "OFF-SAMR-1", "no_violation", "", NOW_MS)
        rows.end_inspection(tx, "p1", NOW_MS)
    with seeded.reading() as tx:
        assert rows.inspection_exists(tx, "p1") and not rows.inspection_exists(tx, "zz")
        assert rows.inspection_of_enterprise(tx, "p1", PLAIN) and not rows.inspection_of_enterprise(tx, "f1", PLAIN) and not rows.inspection_of_enterprise(tx, "p1", None)
        assert rows.officer_took_part(tx, "p1", "OFF-SAMR-1") and not rows.officer_took_part(tx, "p2", "OFF-SAMR-1")
        assert rows.agency_took_part(tx, "p2", "FIRE") and not rows.agency_took_part(tx, "p2", "SAMR") and not rows.agency_took_part(tx, "p2", None)

        def listed(scope: str, who: str | None, status: str | None = None, credit_code: str | None = None, limit: int = 50) -> list[str]:
            return rows.latest_inspections(tx, scope=scope, who=who, status=status, credit_code=credit_code, limit=limit)  # type: ignore[arg-type]

        assert listed("all", None) == ["p2", "f1", "p1"]
        assert listed("all", None, limit=2) == ["p2", "f1"]
        assert listed("agency", "FIRE") == ["p2", "f1"] and listed("agency", None) == []
        assert listed("officer", "OFF-SAMR-1") == ["p1"]
        assert listed("enterprise", PLAIN) == ["p2", "p1"] and listed("enterprise", None) == []
        assert listed("all", None, status="open") == ["p2", "f1"] and listed("agency", "SAMR", status="ended") == ["p1"]
        assert listed("all", None, credit_code=FRAGILE) == ["f1"] and listed("agency", "SAMR", credit_code=FRAGILE) == []


def test_a_scan_is_recorded_once_and_listed_by_scope(seeded: Storage) -> None:
    _open(seeded, "i", PLAIN, "SAMR", NOW_MS)
    with seeded.writing() as tx:
        rows.record_scan(tx, _scan_row("s1", inspection_id="i", decided_ms=NOW_MS))
        rows.record_scan(tx, _scan_row("s2", officer_id="OFF-FIRE-1", agency_id="FIRE", credit_code=None, field=None, lat=None, lon=None, outcome="refused", code="code_altered", decided_ms=NOW_MS + 1))
        rows.record_scan(tx, _scan_row("s3", credit_code=UNREGISTERED, decided_ms=NOW_MS + 1, device_id="QT-1", channel="terminal"))
    with pytest.raises(Exception, match="(?i)unique|duplicate"), seeded.writing() as tx:
        rows.record_scan(tx, _scan_row("s1"))
    with seeded.reading() as tx:
        assert rows.scan(tx, "s1") == _scan_row("s1", inspection_id="i", decided_ms=NOW_MS)
        assert rows.scan(tx, "s2").lat is None and rows.scan(tx, "nope") is None  # type: ignore[union-attr]
        # a scan's facts find a recorded scan by its id too (a resend), whatever the officer and the enterprise
        assert rows.scan_facts(tx, "s1", "NOBODY", UNREGISTERED, NOW_MS, day=0, week=0, month=0, year=0).recorded == rows.scan(tx, "s1")
        assert rows.scan_facts(tx, "s2", "OFF-SAMR-1", PLAIN, NOW_MS, day=0, week=0, month=0, year=0).recorded == rows.scan(tx, "s2")
        assert rows.scan_facts(tx, "nope", "OFF-SAMR-1", PLAIN, NOW_MS, day=0, week=0, month=0, year=0).recorded is None
        assert rows.scan_enterprise(tx, "s1") == (PLAIN, "海淀某餐饮公司")
        assert rows.scan_enterprise(tx, "s2") == (None, None) and rows.scan_enterprise(tx, "s3") == (UNREGISTERED, None) and rows.scan_enterprise(tx, "x") == (None, None)
        assert (rows.scan_inspection(tx, "s1"), rows.scan_inspection(tx, "s2"), rows.scan_inspection(tx, "x")) == ("i", None, None)
        every = rows.latest_scans(tx, scope="all", who=None, limit=10)
        assert [s["scan_id"] for s in every] == ["s2", "s3", "s1"]  # newest first, then by id
        assert set(every[0]) == set(rows.SCAN_LIST_COLUMNS) and every[2]["inspection_id"] == "i"
        assert [s["scan_id"] for s in rows.latest_scans(tx, scope="all", who=None, limit=1)] == ["s2"]
        assert [s["scan_id"] for s in rows.latest_scans(tx, scope="agency", who="SAMR", limit=10)] == ["s3", "s1"]
        assert [s["scan_id"] for s in rows.latest_scans(tx, scope="officer", who="OFF-FIRE-1", limit=10)] == ["s2"]
        assert rows.latest_scans(tx, scope="agency", who=None, limit=10) == []


def test_the_scan_lock_holds_one_enterprise_and_lets_others_pass(store: Storage) -> None:
    """docs/storage-seam.md §4.1: a second transaction on the same enterprise waits for the first to end."""
    if store.backend is not Backend.POSTGRES:
        pytest.skip("SQLite's write transaction already serialises every writer")
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with store.writing() as tx:
            rows.lock_enterprise_scans(tx, PLAIN)
            holding.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert holding.wait(10)
        with store.writing() as tx:  # another enterprise: no wait
            rows.lock_enterprise_scans(tx, FRAGILE)
        waited: list[float] = []

        def second() -> None:
            start = time.monotonic()
            with store.writing() as tx:
                rows.lock_enterprise_scans(tx, PLAIN)
            waited.append(time.monotonic() - start)

        s = threading.Thread(target=second)
        s.start()
        s.join(0.3)
        assert s.is_alive(), "the second scan of the enterprise did not wait for the first"
        release.set()
        s.join(10)
        assert waited and waited[0] >= 0.3
    finally:
        release.set()
        t.join(10)


def test_the_projectors_rows(seeded: Storage) -> None:
    with seeded.writing() as tx:
        tx.run(_DEVICE, device_id="BR-1", agency_id="SAMR")
        tx.run(_DEVICE_STATE, device_id="BR-1")
        rows.record_scan(tx, _scan_row("s1"))
        projection.add_provisional(tx, scan_id="s1", device_id="QT-1", outcome="allowed", code="allowed", snapshot_version=3, received_ms=NOW_MS)
        projection.add_provisional(tx, scan_id="s1", device_id="QT-1", outcome="refused", code="x", snapshot_version=4, received_ms=NOW_MS)  # the first stays
        rec = projection.Recording(
            event_id="m1", device_id="BR-1", officer_id="OFF-SAMR-1", inspection_id=None, case_no=None, file_name="v.mp4", media_kind="video",
            sha256="0" * 64, size_bytes=10, started_ms=NOW_MS, ended_ms=None,
        )  # fmt: skip
        projection.add_recording(tx, rec)
        projection.add_recording(tx, rec)  # resent: nothing more
        projection.mark_integrity(tx, "m1", "modified", NOW_MS + 5)
        projection.set_device_status(tx, "BR-1", '{"battery": 80}')
    with seeded.writing() as tx:
        assert projection.uncompared_provisional(tx, "s1") == projection.Provisional("QT-1", "allowed", "allowed")
        projection.mark_compared(tx, "s1", overturned=True, now_ms=NOW_MS + 1)
        assert projection.uncompared_provisional(tx, "s1") is None and projection.uncompared_provisional(tx, "s9") is None
        assert tx.one(sql("SELECT overturned, compared_ms FROM provisional_decisions WHERE scan_id = 's1'")) == (1, NOW_MS + 1)
        assert tx.all(sql("SELECT event_id, integrity, integrity_ms, ended_ms FROM media")) == [("m1", "modified", NOW_MS + 5, None)]
        assert tx.scalar(sql("SELECT last_status_json FROM device_state WHERE device_id = 'BR-1'")) == '{"battery": 80}'
        assert projection.scan_who(tx, "s1") == ("OFF-SAMR-1", PLAIN) and projection.scan_who(tx, "s9") == (None, None)


def test_inspections_that_found_nothing_are_counted_for_the_low_yield_rule(seeded: Storage) -> None:
    """Ended in the year with every part's result no_violation; one under way, one with a finding, one with a part
    still open, and one before the year do not count."""
    results = {"f1": ["no_violation"], "f2": ["no_violation", "no_violation"], "found": ["no_violation", "rectification_ordered"], "open": None, "half": ["no_violation", None]}
    for n, (iid, parts) in enumerate(results.items()):
        _open(seeded, iid, PLAIN, "SAMR", NOW_MS - (n + 1) * DAY_MS)
        with seeded.writing() as tx:
            if parts and len(parts) > 1:
                rows.add_part(tx, rows.Part(inspection_id=iid, officer_id="OFF-FIRE-1", agency_id="FIRE", field="fire", matter="", scan_id=None, device_id=None, joined_ms=NOW_MS - (n + 1) * DAY_MS))
            for officer, result in zip(("OFF-SAMR-1", "OFF-FIRE-1"), parts or [], strict=False):
                if result is not None:
                    rows.end_part(tx, iid, officer, result, "", NOW_MS - n * DAY_MS)
            if parts and None not in parts:
                rows.end_inspection(tx, iid, NOW_MS - n * DAY_MS)
    _open(seeded, "old", PLAIN, "SAMR", NOW_MS - 400 * DAY_MS)
    with seeded.writing() as tx:
        rows.end_part(tx, "old", "OFF-SAMR-1", "no_violation", "", NOW_MS - 399 * DAY_MS)
        rows.end_inspection(tx, "old", NOW_MS - 399 * DAY_MS)
    with seeded.reading() as tx:
        counts = _facts(tx, PLAIN).counts
    assert (counts.year, counts.fruitless) == (5, 2)
