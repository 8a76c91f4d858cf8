"""Alert rows on both backends: recorded, read newest first, filtered by kind, and scoped to an agency (its own
alerts, its devices' and its officers')."""

from __future__ import annotations


import pytest

from server.rules.alerts import SEVERITY, raise_alert
from server.storage.alerts import ALERT_COLUMNS, insert_alert, recent_alerts
from server.storage.engine import Storage, sql
from tests.server.conftest import NOW_MS, PLAIN, seed

_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'qr_terminal', :agency_id, '00', 0)")


@pytest.fixture
def seeded(store: Storage) -> Storage:
    with store.writing() as tx:
        seed(tx)
        tx.run(_DEVICE, device_id="QT-SAMR", agency_id="SAMR")
        tx.run(_DEVICE, device_id="QT-FIRE", agency_id="FIRE")
    return store


def _ids(found: list[tuple[object, ...]]) -> list[object]:
    return [r[ALERT_COLUMNS.index("ref")] for r in found]


def test_an_alert_comes_back_as_it_was_recorded(seeded: Storage) -> None:
    with seeded.writing() as tx:
        insert_alert(
            tx, created_ms=NOW_MS, kind="forged_code", severity="critical", message_zh="疑似伪造", message_en="forged?", credit_code=PLAIN,
            agency_id="SAMR", device_id="QT-SAMR", officer_id="OFF-SAMR-1", ref="s-1",
        )  # fmt: skip
        insert_alert(tx, created_ms=NOW_MS + 1, kind="device_alarm", severity="critical", message_zh="告警", message_en="alarm")
    with seeded.reading() as tx:
        found = recent_alerts(tx, agency_id=None, everyone=True, limit=10)
    assert [dict(zip(ALERT_COLUMNS, r, strict=True)) for r in found][1] == {
        "id": found[1][0], "created_ms": NOW_MS, "kind": "forged_code", "severity": "critical", "credit_code": PLAIN, "agency_id": "SAMR",
        "device_id": "QT-SAMR", "officer_id": "OFF-SAMR-1", "ref": "s-1", "message_zh": "疑似伪造", "message_en": "forged?",
    }  # fmt: skip
    assert found[0][2:4] == ("device_alarm", "critical") and found[0][4:9] == (None,) * 5
    assert isinstance(found[0][0], int) and found[0][0] > found[1][0]  # ids grow: the newest first


def test_alerts_are_filtered_by_kind_limited_and_scoped_to_an_agency(seeded: Storage) -> None:
    rows = [
        ("samr-own", "joint_inspection", {"agency_id": "SAMR"}),
        ("samr-device", "device_alarm", {"device_id": "QT-SAMR"}),
        ("samr-officer", "chain_break", {"officer_id": "OFF-SAMR-2"}),
        ("fire-own", "joint_inspection", {"agency_id": "FIRE"}),
        ("fire-device", "device_alarm", {"device_id": "QT-FIRE"}),
        ("fire-officer", "repeat_inspection", {"officer_id": "OFF-FIRE-1"}),
        ("nobody", "storage_full", {}),
    ]
    with seeded.writing() as tx:
        for n, (ref, kind, who) in enumerate(rows):
            insert_alert(tx, created_ms=NOW_MS + n, kind=kind, severity="warning", message_zh="…", message_en="...", ref=ref, **who)  # type: ignore[arg-type]
    with seeded.reading() as tx:
        assert _ids(recent_alerts(tx, agency_id=None, everyone=True, limit=100)) == [r[0] for r in reversed(rows)]
        assert _ids(recent_alerts(tx, agency_id=None, everyone=True, limit=2)) == ["nobody", "fire-officer"]
        assert _ids(recent_alerts(tx, agency_id="SAMR", everyone=False, limit=100)) == ["samr-officer", "samr-device", "samr-own"]
        assert _ids(recent_alerts(tx, agency_id="FIRE", everyone=False, limit=100)) == ["fire-officer", "fire-device", "fire-own"]
        assert _ids(recent_alerts(tx, agency_id="FIRE", everyone=False, kind="joint_inspection", limit=100)) == ["fire-own"]
        assert _ids(recent_alerts(tx, agency_id=None, everyone=True, kind="joint_inspection", limit=100)) == ["fire-own", "samr-own"]
        assert recent_alerts(tx, agency_id=None, everyone=False, limit=100) == []  # an agency scope without an agency sees nothing
        assert recent_alerts(tx, agency_id="SAMR", everyone=False, kind="storage_full", limit=100) == []


def test_raise_alert_gives_the_kind_its_severity(seeded: Storage) -> None:
    with seeded.writing() as tx:
        raise_alert(tx, "forged_code", NOW_MS, "伪造", "forged", credit_code=PLAIN, ref="a")
        raise_alert(tx, "no_such_kind", NOW_MS, "其他", "other", ref="b")
        raise_alert(tx, "joint_inspection", NOW_MS, "联合", "joint", ref="c")
    with seeded.reading() as tx:
        found = {r[8]: r[3] for r in recent_alerts(tx, agency_id=None, everyone=True, limit=10)}
    assert found == {"a": SEVERITY["forged_code"], "b": "warning", "c": "info"} and SEVERITY["forged_code"] == "critical"
