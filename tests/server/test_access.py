"""Roles and their limits, through the API: each sees only what its role allows, refused by the server."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from protocol import topics
from protocol.codec import seal
from protocol.messages import EnterpriseScanned
from protocol.signing import SigningKey
from server import db as dbmod
from protocol import merkle
from server.evidence.log import LEAF_COLUMNS, leaf_data
from server.ingest.store import DeviceKeys, Incoming
from server.ingest.batch import store_batch
from tests.server.conftest import PLAIN, Api


def open_inspection(api: Api, officer: str, credit_code: str = PLAIN, field: str = "food") -> str:
    text = api.get(f"/api/v1/enterprises/{credit_code}/qr.txt").text
    r = api.as_(officer).post("/api/v1/scans", json={"code_text": text, "field": field})
    assert r.status_code == 200 and r.json()["inspection_id"], r.text
    return r.json()["inspection_id"]


def test_nothing_without_signing_in(api: Api) -> None:
    for url in ("/api/v1/inspections", "/api/v1/alerts", "/api/v1/devices", "/api/v1/events", "/api/v1/jobs", "/api/v1/scans"):
        r = api.client.get(url)
        assert r.status_code == 401 and "sign in" in r.text, url
    assert api.client.post("/api/v1/scans", json={"field": "food", "code_text": "x"}).status_code == 401
    # Public: health, the evidence log's heads and proofs, draw pages.
    assert api.client.get("/health").status_code == 200
    assert api.client.get("/api/v1/evidence/tree-head").status_code == 200


def test_wrong_user_and_wrong_password_get_the_same_answer(api: Api) -> None:
    a = api.client.post("/api/v1/auth/login", json={"username": "sup", "password": "wrong-password"})
    b = api.client.post("/api/v1/auth/login", json={"username": "no-such-user", "password": "wrong-password"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()
    assert "用户名或密码错误" in a.text


def test_an_agency_never_sees_another_agencys_inspection(api: Api) -> None:
    samr_only = open_inspection(api, "OFF-SAMR-1")
    r = api.as_("admin-FIRE").get(f"/api/v1/inspections/{samr_only}")
    assert r.status_code == 403 and "其他执法机关" in r.text
    assert api.as_("admin-FIRE").get(f"/api/v1/inspections/{samr_only}/media").status_code == 403
    assert api.as_("admin-SAMR").get(f"/api/v1/inspections/{samr_only}").status_code == 200
    assert api.get(f"/api/v1/inspections/{samr_only}").status_code == 200  # the supervisor sees all
    assert api.as_("admin-FIRE").get("/api/v1/inspections").json() == []
    assert [i["inspection_id"] for i in api.as_("admin-SAMR").get("/api/v1/inspections").json()] == [samr_only]
    # Once the fire brigade joins, it is theirs to see too.
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    assert api.as_("OFF-FIRE-1").post("/api/v1/scans", json={"code_text": text, "field": "fire"}).json()["outcome"] == "join"
    assert api.as_("admin-FIRE").get(f"/api/v1/inspections/{samr_only}").status_code == 200


def test_officers_see_and_act_for_themselves_only(api: Api) -> None:
    mine = open_inspection(api, "OFF-SAMR-1")
    assert api.as_("OFF-SAMR-2").get(f"/api/v1/inspections/{mine}").status_code == 403
    assert api.as_("OFF-SAMR-2").get("/api/v1/inspections").json() == []
    text = api.get(f"/api/v1/enterprises/{PLAIN}/qr.txt").text
    as_other = api.as_("OFF-SAMR-2").post("/api/v1/scans", json={"officer_id": "OFF-SAMR-1", "code_text": text, "field": "food"})
    assert as_other.status_code == 403 and "本人" in as_other.text
    assert api.as_("OFF-SAMR-2").post(f"/api/v1/inspections/{mine}/end", json={"officer_id": "OFF-SAMR-1", "result": "no_violation"}).status_code == 403
    assert api.as_("sup").post("/api/v1/scans", json={"code_text": text, "field": "food"}).status_code == 403  # supervisors do not scan
    assert [s["officer_id"] for s in api.as_("OFF-SAMR-1").get("/api/v1/scans").json()] == ["OFF-SAMR-1"]
    assert api.as_("OFF-SAMR-1").get("/api/v1/alerts").status_code == 403


def test_an_enterprise_sees_the_inspections_of_itself(api: Api) -> None:
    own = open_inspection(api, "OFF-SAMR-1", PLAIN)
    assert [i["inspection_id"] for i in api.as_("ent-plain").get("/api/v1/inspections").json()] == [own]
    assert api.as_("ent-plain").get(f"/api/v1/inspections/{own}").status_code == 200
    assert api.as_("ent-plain").get("/api/v1/scans").status_code == 403


def test_supervisor_only_operations(api: Api) -> None:
    for url in ("/api/v1/events", "/api/v1/rejected", "/api/v1/evidence/verify", "/api/v1/jobs", "/api/v1/overview"):
        assert api.as_("admin-SAMR").get(url).status_code == 403, url
        assert api.get(url).status_code == 200, url
    d = api.as_("admin-FIRE").post("/api/v1/decisions", json={"decision_id": "X-1", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-02-10"})
    assert d.status_code == 403 and "本机关" in d.text
    assert api.as_("admin-SAMR").post("/api/v1/decisions", json={"decision_id": "X-1", "agency_id": "SAMR", "kind": "penalty", "decided_on": "2026-02-10"}).status_code == 201


def test_an_auditor_rebuilds_a_leaf_from_the_record(api: Api, seeded_db: Path) -> None:
    key = SigningKey.generate()
    con = dbmod.connect(seeded_db)
    con.execute("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES ('BR-9', 'M', 'body_recorder', 'SAMR', ?, 0)", (key.public_hex,))
    msg = EnterpriseScanned(event_id=str(uuid.uuid4()), device_id="BR-9", seq=1, device_time_ms=1, clock_error_ms=5, officer_id="OFF-SAMR-1", code_text="c")
    store_batch(con, [Incoming(topics.device_up("BR-9"), seal(msg, key), 0)], DeviceKeys(con))
    con.close()
    record = api.get(f"/api/v1/evidence/record/{msg.event_id}").json()
    cols = record["columns"]
    row = [base64.b64decode(cols[k]) if k in ("body", "sig") else cols[k] for k in LEAF_COLUMNS]
    leaf = merkle.leaf_hash(leaf_data(row))
    assert leaf.hex() == record["leaf_hash"]
    proof = api.client.get(f"/api/v1/evidence/proof/{msg.event_id}").json()  # public
    assert proof["leaf_hash"] == leaf.hex()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    assert merkle.verify_inclusion(leaf, proof["log_index"], proof["tree_size"], path, bytes.fromhex(proof["root_hash"]))
    assert api.get("/api/v1/evidence/record/nope").status_code == 404
    assert api.as_("admin-SAMR").get(f"/api/v1/evidence/record/{msg.event_id}").status_code == 403


def test_request_bodies_have_a_size_limit(api: Api) -> None:
    r = api.as_("OFF-SAMR-1").post("/api/v1/inspections/x/end", content=b'{"result": "' + b"x" * (2 * 1024 * 1024) + b'"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 413
