"""The console's read queries (server/storage/console.py) on both backends."""

from __future__ import annotations

from server.storage import console
from server.storage.inspections import device_agency
from server.storage.engine import Storage, sql

DEVICE = sql(
    "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms, revoked_ms)"
    " VALUES (:id, 'BR-1', 'body_recorder', :agency, 'ab', 1000, :revoked)"
)
STATE = sql("INSERT INTO device_state(device_id, last_seen_ms, max_seq, stored_count) VALUES (:id, :seen, :max_seq, :stored)")
EVENT = sql(
    "INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms,"
    " wire_format, body, sig, body_json) VALUES (:id, :device, :seq, 'status', 5, 0, 6, :stored, 'json', :body, :sig, '{}')"
)
SUSPECT = sql(
    "INSERT INTO clock_suspects(event_id, device_id, reason, detail, device_time_ms, received_ms)"
    " VALUES (:id, 'D1', 'device time before registration', '', 5, 6)"
)
FIELD = sql("INSERT INTO fields(field_id, name, name_en) VALUES (:id, :name, :en)")
AGENCY = sql("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES ('SAMR', '市场监管局', 'Market regulation', '', '[]')")
OFFICER = sql(
    "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms)"
    " VALUES ('O1', '张三', 'SAMR', 'C1', '[\"food\"]', 0, 1)"
)
ENTERPRISE = sql("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES ('E1', '某餐馆', '', '', 'low', 'A')")
INSPECTION = sql(
    "INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms)"
    " VALUES (:id, 'E1', 'SAMR', 'food', 'ended', :opened)"
)
PART = sql(
    "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, joined_ms, result)"
    " VALUES (:id, 'O1', 'SAMR', :field, :opened, :result)"
)


def test_devices_events_and_totals(store: Storage) -> None:
    with store.writing() as tx:
        tx.many(DEVICE, [{"id": "D2", "agency": "FIRE", "revoked": 5}, {"id": "D1", "agency": "SAMR", "revoked": None}])
        tx.run(STATE, id="D1", seen=9, max_seq=3, stored=2)
        tx.many(EVENT, [{"id": f"e{s}", "device": "D1", "seq": s, "stored": 100 * s, "body": b"\x00b", "sig": b"s"} for s in (1, 3)])
        tx.run(SUSPECT, id="e3")
    with store.reading() as tx:
        assert console.devices(tx) == [
            ("D1", "BR-1", "body_recorder", "SAMR", "json", 1000, 0, 9, 3, 2, 0),
            ("D2", "BR-1", "body_recorder", "FIRE", "json", 1000, 1, None, 0, 0, 0),
        ]
        assert console.device(tx, "D2") == console.devices(tx)[1]
        assert console.device(tx, "nope") is None
        assert device_agency(tx, "D1") == "SAMR" and device_agency(tx, "nope") is None
        assert [r[0] for r in console.events(tx, device_id="D1", limit=5)] == ["e3", "e1"]
        assert [r[8] for r in console.events(tx, device_id=None, limit=1)] == ["device time before registration"]
        assert console.events_stored(tx) == 2
        assert console.totals(tx, since_ms=150) == (2, 2, 1, 1)


def test_an_enterprise_history_and_an_officers_fields(store: Storage) -> None:
    with store.writing() as tx:
        tx.many(FIELD, [{"id": "food", "name": "食品安全", "en": "food safety"}, {"id": "fire", "name": "消防安全", "en": "fire safety"}])
        tx.run(AGENCY)
        tx.run(OFFICER)
        tx.run(ENTERPRISE)
        for n in range(3):
            tx.run(INSPECTION, id=f"I{n}", opened=n)
            tx.run(PART, id=f"I{n}", field="food", opened=n, result="no_issue")
    with store.reading() as tx:
        assert console.officer_fields(tx, "O1") == '["food"]'
        assert console.officer_fields(tx, None) is None
        assert console.field_names(tx) == {"fire": "消防安全", "food": "食品安全"}
        assert console.enterprise_name(tx, "E1") == "某餐馆"
        assert console.enterprise_name(tx, "E2") is None
        assert console.visits(tx, "E1", 2) == [
            ("I2", 2, "SAMR", "市场监管局", "Market regulation", "food", "食品安全", "food safety", "no_issue"),
            ("I1", 1, "SAMR", "市场监管局", "Market regulation", "food", "食品安全", "food safety", "no_issue"),
        ]
