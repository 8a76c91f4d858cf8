"""A case's evidence bundle (证据包 of a 案件), on both backends: its steps' server records and its inspection, who may
export it (whoever may see the case; 404 to others, as the cases API answers), and the verifier accepts it."""

from __future__ import annotations

import json

from protocol.verify_bundle import verify_bytes
from tests.server.api_backends import api  # noqa: F401  (a fixture: the API on both backends)
from tests.server.cases_support import investigating, seed_case_people, seed_inspection
from tests.server.conftest import Api
from tests.server.test_bundle import BUNDLES, members


def test_a_cases_bundle_holds_its_steps_and_verifies(api: Api, seeded_url: str) -> None:
    seed_case_people(seeded_url)
    seed_inspection(seeded_url, "INS-CASE-1")
    case_id = investigating(api, inspection_id="INS-CASE-1")
    key = api.get("/api/v1/evidence/tree-head").json()["public_key"]
    r = api.get(f"{BUNDLES}/case/{case_id}")
    assert r.status_code == 200, r.text
    files = members(r.content)
    manifest = json.loads(files["manifest.json"])
    assert manifest["selector"] == {"kind": "case", "case_id": case_id} and case_id in manifest["title"]["zh"]
    subjects = {x["record"]["subject"] for x in json.loads(files["records.json"])["items"]}
    assert subjects == {f"case:{case_id}"}, subjects
    assert json.loads(files["media.json"]) == []  # the seeded recording's event is not in the log: not in the bundle
    assert "案件" in files["summary.txt"].decode()
    report = verify_bytes(r.content, key)
    assert report.ok, report.failures
    for user in ("admin-SAMR", "OFF-SAMR-1", "ent-plain"):
        assert api.as_(user).get(f"{BUNDLES}/case/{case_id}").status_code == 200, user
    for user in ("admin-FIRE", "OFF-FIRE-1"):
        assert api.as_(user).get(f"{BUNDLES}/case/{case_id}").status_code == 404, user
    assert api.client.get(f"{BUNDLES}/case/{case_id}").status_code == 401
    assert api.get(f"{BUNDLES}/case/CASE-1999-00001").status_code == 404
