"""What the case tests share: more officers and their accounts (a third officer of SAMR who reviews, a second of FIRE
so that FIRE can take a transferred case), an ended inspection with a recording, and shortcuts over the API."""

from __future__ import annotations

import json
from typing import Any

from server.console.auth import add_user
from server.storage.engine import sql, storage_for
from tests.server.conftest import DAY_MS, NOW_MS, PLAIN, Api, password, password_hash

CASES = "/api/v1/cases"
_OFFICER = sql(
    "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms)"
    " VALUES (:id, :name, :agency, :credential, :fields, :valid_from, :valid_to, NULL)"
)
_INSPECTION = sql(
    "INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms)"
    " VALUES (:id, :code, '110108', :agency, 'food', :status, :opened, :ended)"
)
_PART = sql(
    "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, matter, joined_ms, ended_ms, result)"
    " VALUES (:id, :officer, :agency, 'food', '', :opened, :ended, :result)"
)
_MEDIA = sql(
    "INSERT INTO media(event_id, device_id, officer_id, inspection_id, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms)"
    " VALUES (:event, 'DEV-1', 'OFF-SAMR-1', :id, 'rec-001.mp4', 'video', :sha, 1024, :opened, :ended)"
)


def seed_case_people(url: str) -> None:
    """OFF-SAMR-3 (a legal reviewer to be) and OFF-FIRE-2, with their sign-in accounts."""
    with storage_for(url).writing() as tx:
        for officer, agency, name in (("OFF-SAMR-3", "SAMR", "王审核"), ("OFF-FIRE-2", "FIRE", "李消防")):
            tx.run(_OFFICER, id=officer, name=name, agency=agency, credential=f"C-{officer}", fields=json.dumps(["food", "fire"]), valid_from=NOW_MS - 365 * DAY_MS, valid_to=NOW_MS + 365 * DAY_MS)
            add_user(tx, officer, password(officer), "officer", agency_id=agency, officer_id=officer, password_hash=password_hash(officer))


def seed_inspection(url: str, inspection_id: str, *, result: str = "case_opened", ended: bool = True) -> None:
    """An inspection of PLAIN by SAMR's OFF-SAMR-1, ended (or not) with ``result``, with one recording."""
    opened = NOW_MS - 3 * 3600_000
    end = opened + 3600_000 if ended else None
    with storage_for(url).writing() as tx:
        tx.run(_INSPECTION, id=inspection_id, code=PLAIN, agency="SAMR", status="ended" if ended else "open", opened=opened, ended=end)
        tx.run(_PART, id=inspection_id, officer="OFF-SAMR-1", agency="SAMR", opened=opened, ended=end, result=result if ended else None)
        tx.run(_MEDIA, event=f"ev-{inspection_id}", id=inspection_id, sha="ab" * 32, opened=opened, ended=end)


def open_case(api: Api, **over: Any) -> dict[str, Any]:
    body = {"kind": "penalty", "title": "销售过期食品", "field": "food", "credit_code": PLAIN, "officer_ids": ["OFF-SAMR-1", "OFF-SAMR-2"], **over}
    r = api.as_("OFF-SAMR-1").post(CASES, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def post(api: Api, user: str, url: str, body: Any = None, status: int = 200) -> dict[str, Any]:
    r = api.as_(user).post(url, json=body if body is not None else {})
    assert r.status_code == status, r.text
    return r.json() if r.content else {}


CLEAN = {k: {"ok": True, "note": ""} for k in (
    "lawful_body", "qualified_officers", "lawful_procedure", "facts_evidence", "law_discretion", "within_powers", "documents_complete", "crime_transfer",
)}  # fmt: skip


def make_reviewer(api: Api) -> None:
    post(api, "admin-SAMR", f"{CASES}/reviewers", {"officer_id": "OFF-SAMR-3", "qualification_no": "法审-2026-001"}, 201)


def investigating(api: Api, **over: Any) -> str:
    c = open_case(api, **over)
    post(api, "OFF-SAMR-1", f"{CASES}/{c['case_id']}/transitions", {"to": "investigating"})
    return c["case_id"]
