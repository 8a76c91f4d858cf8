"""server/storage/reports.py on both backends, and the rule modules reading through it (coverage, snapshots, the
live dashboard): media linked by id or by officer and time, snapshot lists by region, CST day numbers at the
midnight boundary, an agency's share of the dashboard, plain numbers where PostgreSQL would give Decimal."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.config import load_toml
from protocol.decision import Policy
from server.console import live
from server.console.auth import Principal
from server.evidence.coverage import coverage
from server.rules.snapshots import build_snapshot, device_region
from server.storage import reports
from server.storage.engine import Storage, Tx, sql
from tests.server.conftest import GOOD, PLAIN, seed

H, M = 3_600_000, 60_000
CST = dt.timezone(dt.timedelta(hours=8))
POLICY = load_toml(Path(__file__).resolve().parents[2] / "server" / "policy.toml", Policy)
NOW = int(time.time() * 1000)

INSPECTION = sql("""
    INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms)
    VALUES (:id, :code, :region, :lead, 'food', :status, :opened, :ended)
""")
PART = sql("""
    INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, device_id, joined_ms, ended_ms)
    VALUES (:id, :officer, :agency, 'food', :device, :joined, :ended)
""")
MEDIA = sql("""
    INSERT INTO media(event_id, device_id, officer_id, inspection_id, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms)
    VALUES (:id, :device, :officer, :inspection, 'f', :kind, 's', 1, :start, :end)
""")
DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms, region) VALUES (:id, 'M', 'phone', :agency, 'k', 0, :region)")
DEVICE_STATE = sql("INSERT INTO device_state(device_id, online, last_seen_ms, last_status_json) VALUES (:id, 1, 5, :status)")
REVOKE_DEVICE = sql("UPDATE devices SET revoked_ms = 1 WHERE device_id = :id")
SCAN = sql("""
    INSERT INTO scans(scan_id, channel, officer_id, agency_id, credit_code, code_text, field, scanned_ms, decided_ms, outcome, code, decision_json)
    VALUES (:id, 'phone', 'OFF-SAMR-1', :agency, :code, 'QR', 'food', :at, :at, :outcome, :outcome, '{}')
""")
ALERT = sql("INSERT INTO alerts(created_ms, kind, severity, agency_id, device_id, message_zh, message_en) VALUES (:at, 'device_offline', 'warning', :agency, :device, 'z', 'e')")
CODE_KEY = sql("INSERT INTO code_keys(key_id, public_key, created_ms, retired_ms) VALUES (:id, :key, 0, :retired)")
REVIEW = sql("""
    INSERT INTO exception_reviews(scan_id, inspection_id, kind, reference, credit_code, officer_id, problem, created_ms, status)
    VALUES ('SCAN-R', :id, 'complaint', 'r', :code, 'OFF-SAMR-1', 'no ticket', 0, 'pending')
""")


@pytest.fixture
def tx(store: Storage) -> Iterator[Tx]:
    """A write transaction over the seeded registers, on each backend in turn."""
    with store.writing() as t:
        seed(t)
    with store.writing() as t:
        yield t


def test_media_are_linked_by_inspection_id_or_by_officer_or_device_and_time(tx: Tx) -> None:
    tx.run(INSPECTION, id="I1", code=PLAIN, region="110108", lead="SAMR", status="ended", opened=10 * M, ended=70 * M)
    tx.run(PART, id="I1", officer="OFF-SAMR-1", agency="SAMR", device=None, joined=10 * M, ended=70 * M)
    tx.run(PART, id="I1", officer="OFF-FIRE-1", agency="FIRE", device="CAM-9", joined=12 * M, ended=70 * M)
    rows = [
        ("M1", "BR-1", "OFF-SAMR-1", "I1", "video", 10 * M, 40 * M),  # names the inspection
        ("M2", "BR-1", "OFF-SAMR-1", None, "video", 40 * M, 71 * M),  # the officer, overlapping
        ("M3", "CAM-9", None, None, "audio", 5 * M, 11 * M),  # the part's device, overlapping
        ("M4", "BR-1", "OFF-SAMR-1", None, "video", 71 * M, 80 * M),  # after it
        ("M5", "BR-2", "OFF-SAMR-2", None, "video", 20 * M, 30 * M),  # someone else
        ("M6", "BR-1", "OFF-SAMR-1", None, "photo", None, None),  # no time: never linked by time
    ]
    for event_id, device, officer, inspection, kind, start, end in rows:
        tx.run(MEDIA, id=event_id, device=device, officer=officer, inspection=inspection, kind=kind, start=start, end=end)
    assert reports.inspection_span(tx, "I1") == (10 * M, 70 * M) and reports.inspection_span(tx, "nope") is None
    assert reports.part_officers_devices(tx, "I1") == [("OFF-FIRE-1", "CAM-9"), ("OFF-SAMR-1", None)]
    assert [r[0] for r in reports.media_naming(tx, "I1")] == ["M1"]
    assert [r[0] for r in reports.media_by_who_and_time(tx, ["OFF-SAMR-1", "OFF-FIRE-1"], ["CAM-9"], 10 * M, 70 * M)] == ["M3", "M2"]
    assert reports.media_by_who_and_time(tx, [], [], 0, 10**12) == []  # empty lists match nothing
    c = coverage(tx, "I1")  # the rule module on this backend
    assert [(m.event_id, m.linked_by) for m in c.media] == [("M3", "officer_and_time"), ("M1", "inspection_id"), ("M2", "officer_and_time")]
    assert c.complete and c.covered_ms == 60 * M and c.gaps == []
    with pytest.raises(KeyError):
        coverage(tx, "nope")


def test_snapshot_lists_by_region(tx: Tx) -> None:
    tx.run(CODE_KEY, id="k2", key="pub2", retired=None)
    tx.run(CODE_KEY, id="k1", key="pub1", retired=5)  # retired: not sent
    tx.run(INSPECTION, id="OPEN", code=PLAIN, region="110108", lead="SAMR", status="open", opened=NOW - H, ended=None)
    tx.run(INSPECTION, id="REVIEWED", code=GOOD, region="110108", lead="SAMR", status="open", opened=NOW - H, ended=None)
    tx.run(REVIEW, id="REVIEWED", code=GOOD)  # a basis awaiting review is no door for others
    tx.run(INSPECTION, id="ELSEWHERE", code=PLAIN, region="310000", lead="SAMR", status="open", opened=NOW - H, ended=None)
    tx.run(PART, id="OPEN", officer="OFF-SAMR-1", agency="SAMR", device=None, joined=NOW - H, ended=None)
    tx.run(DEVICE, id="DEV-A", agency="SAMR", region="")
    tx.run(DEVICE, id="DEV-B", agency="SAMR", region="310000")
    tx.run(DEVICE, id="DEV-C", agency="SAMR", region="")
    tx.run(REVOKE_DEVICE, id="DEV-C")
    assert reports.code_keys(tx) == {"k2": "pub2"}
    assert len(reports.credentials(tx, "110108")) == 6 and reports.credentials(tx, "310000") == [] and len(reports.credentials(tx, "")) == 6
    assert reports.no_disturb_in_force(tx, "110108", NOW)[0][0] == GOOD and reports.no_disturb_in_force(tx, "310000", NOW) == []
    assert [r[0] for r in reports.open_inspections(tx, "110108", NOW - 2 * H)] == ["OPEN"]
    assert [r[0] for r in reports.open_inspections(tx, "", NOW - 2 * H)] == ["ELSEWHERE", "OPEN"]
    assert reports.open_inspections(tx, "110108", NOW) == []
    assert [r[0] for r in reports.recent_parts(tx, "110108", NOW - 2 * H)] == ["OPEN"] and reports.recent_parts(tx, "310000", 0) == []
    assert (device_region(tx, "DEV-A"), device_region(tx, "DEV-B"), device_region(tx, "DEV-C"), device_region(tx, "nope")) == ("110108", "310000", None, None)
    parts = build_snapshot(tx, "DEV-A", "110108", POLICY, NOW)  # the rule module on this backend
    assert len(parts) == 1 and parts[0].code_keys == {"k2": "pub2"}
    assert [i.inspection_id for i in parts[0].open_inspections] == ["OPEN"] and len(parts[0].credentials) == 6


def _cst(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)


def test_report_figures_count_cst_days_and_are_plain_ints(tx: Tx) -> None:
    """23:59 and 00:00 CST fall on two days (16:00 UTC the day before): the day number is computed in the query."""
    late, midnight = _cst(2026, 11, 24, 23, 59), _cst(2026, 11, 25, 0, 0)
    for n, (at, outcome) in enumerate(((late, "allowed"), (midnight, "refused"), (midnight + M, "repeat"))):
        tx.run(SCAN, id=f"S{n}", agency="SAMR", code=PLAIN, at=at, outcome=outcome)
    tx.run(INSPECTION, id="J", code=PLAIN, region="110108", lead="SAMR", status="ended", opened=late, ended=midnight)
    tx.run(PART, id="J", officer="OFF-SAMR-1", agency="SAMR", device=None, joined=late, ended=midnight)
    tx.run(PART, id="J", officer="OFF-FIRE-1", agency="FIRE", device=None, joined=late + 1, ended=midnight)
    days = reports.scans_per_day(tx, late - H, midnight + H, None)
    day_of = lambda ms: (dt.date(1970, 1, 1) + dt.timedelta(days=ms)).isoformat()  # noqa: E731
    assert [(day_of(d), n, refused, repeat) for d, n, refused, repeat in days] == [("2026-11-24", 1, 0, 0), ("2026-11-25", 2, 1, 1)]
    assert [(day_of(d), n, joint) for d, n, joint in reports.inspections_per_day(tx, late - H, midnight + H, None)] == [("2026-11-24", 1, 1)]
    assert reports.inspections_and_joint(tx, late - H, midnight + H, None) == (1, 1)
    assert reports.inspections_and_joint(tx, late - H, midnight + H, "FIRE") == (1, 1)  # FIRE took part
    assert reports.inspections_and_joint(tx, 0, 1, None) == (0, 0)
    assert reports.ended_inspections(tx, midnight, midnight + 1, "SAMR") == ["J"]
    assert reports.scan_counts(tx, late - H, midnight + H, "SAMR") == [("allowed", "allowed", 1), ("refused", "refused", 1), ("repeat", "repeat", 1)]
    assert reports.scan_counts(tx, late - H, midnight + H, "FIRE") == []
    assert reports.parts_by_agency_field(tx, late - H, midnight + H, None) == [
        ("FIRE", "消防救援支队", "food", "食品安全", 1, 1), ("SAMR", "市场监管局", "food", "食品安全", 1, 1),
    ]  # fmt: skip
    credentialed, active = reports.officer_counts(tx, late - H, midnight + H, "SAMR")
    assert (credentialed, active) == (4, 1) and type(credentialed) is int  # SAMR-1, SAMR-2, EXPIRED, REVOKED: valid at that time
    assert reports.alerts_by_kind(tx, 0, 10**13, None) == {}


def test_the_dashboard_shows_an_agency_its_share(tx: Tx) -> None:
    tx.run(INSPECTION, id="U1", code=PLAIN, region="110108", lead="SAMR", status="open", opened=NOW - H, ended=None)
    tx.run(INSPECTION, id="U2", code=GOOD, region="110108", lead="FIRE", status="open", opened=NOW - 2 * H, ended=None)
    tx.run(INSPECTION, id="OLD", code=GOOD, region="110108", lead="FIRE", status="open", opened=NOW - 13 * H, ended=None)
    tx.run(PART, id="U1", officer="OFF-SAMR-1", agency="SAMR", device=None, joined=NOW - H, ended=None)
    tx.run(PART, id="U1", officer="OFF-FIRE-1", agency="FIRE", device=None, joined=NOW - H + 1, ended=None)
    tx.run(PART, id="U2", officer="OFF-FIRE-1", agency="FIRE", device=None, joined=NOW - 2 * H, ended=None)
    tx.run(MEDIA, id="V", device="BR", officer="OFF-SAMR-1", inspection="U1", kind="video", start=NOW - H, end=None)
    tx.run(DEVICE, id="DEV-S", agency="SAMR", region="")
    tx.run(DEVICE, id="DEV-F", agency="FIRE", region="")
    tx.run(DEVICE_STATE, id="DEV-S", status=json.dumps({"outbox_depth": 3}))
    tx.run(ALERT, at=NOW, agency=None, device="DEV-S")  # SAMR's by its device
    tx.run(ALERT, at=NOW, agency="FIRE", device=None)
    assert [r[0] for r in reports.under_way(tx, NOW - 12 * H, None, 100)] == ["U1", "U2"]
    assert [r[0] for r in reports.under_way(tx, NOW - 12 * H, "SAMR", 100)] == ["U1"]
    assert [r[0] for r in reports.under_way(tx, NOW - 12 * H, None, 1)] == ["U1"]
    assert reports.parts_named(tx, "U1") == [("OFF-SAMR-1", "OFF-SAMR-1", "SAMR", "市场监管局"), ("OFF-FIRE-1", "OFF-FIRE-1", "FIRE", "消防救援支队")]
    assert reports.fleet(tx, "SAMR") == [("DEV-S", "phone", "SAMR", 1, 5, '{"outbox_depth": 3}')]
    assert [r[0] for r in reports.fleet(tx, None)] == ["DEV-F", "DEV-S"] and reports.fleet(tx, None)[0][3] == 0
    admin = Principal(username="admin-SAMR", role="agency_admin", agency_id="SAMR")
    view = live.snapshot(tx, admin, NOW)  # the rule module on this backend
    assert [u["inspection_id"] for u in view["under_way"]] == ["U1"] and view["under_way"][0]["joint"] and view["under_way"][0]["recorded"]
    assert [(a["kind"], a["label_en"] != "") for a in view["alerts"]] == [("device_offline", True)]
    assert [d["device_id"] for d in view["fleet"]] == ["DEV-S"] and view["fleet"][0]["backlog"] == 3
    assert type(view["today"]["joint_inspections"]) is int
    everyone = live.snapshot(tx, Principal(username="sup", role="supervisor"), NOW)
    assert len(everyone["alerts"]) == 2 and len(everyone["under_way"]) == 2
