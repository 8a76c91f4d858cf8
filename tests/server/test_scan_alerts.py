"""Every scan decision that supervisors must know of raises an alert, visible through the API and on the
dashboard at once, scoped by agency, on both backends (the terminal path is checked in
tests/system/test_scan_terminal.py)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from protocol import enterprise_code
from protocol.config import load_toml
from protocol.decision import Policy
from protocol.signing import SigningKey
from server import db as dbmod
from server.evidence.coverage import check_ended_recordings
from server.storage.engine import Tx, sql
from tests.server.conftest import FRAGILE, GOOD, PLAIN, Api
from tests.server.test_scans_api import api, end, qr, scan  # noqa: F401 - api: the fixture over both backends

POLICY = load_toml(Path(__file__).resolve().parents[2] / "server" / "policy.toml", Policy)

MINUTE_MS = 60_000


def kinds(api: Api) -> list[str]:
    return [a["kind"] for a in api.get("/api/v1/alerts").json()]


def only(api: Api, kind: str) -> dict[str, Any]:
    found = [a for a in api.get("/api/v1/alerts", params={"kind": kind}).json()]
    assert len(found) == 1, (kind, found)
    return found[0]


def test_no_disturb_attempts_are_alerted_and_seen_on_the_dashboard(api: Api) -> None:
    d = scan(api, "OFF-SAMR-1", GOOD)
    a = only(api, "no_disturb_attempt")
    assert (a["severity"], a["agency_id"], a["officer_id"], a["credit_code"], a["ref"]) == ("warning", "SAMR", "OFF-SAMR-1", GOOD, d["scan_id"])
    assert "守信示范企业" in a["message_zh"] and "市场监管局" in a["message_zh"] and "拦截" in a["message_zh"]
    live = api.get("/api/v1/live").json()
    assert live["alerts"][0]["kind"] == "no_disturb_attempt"
    # scoped: the agency's admin sees it, another agency's does not
    assert "no_disturb_attempt" in [x["kind"] for x in api.as_("admin-SAMR").get("/api/v1/alerts").json()]
    assert "no_disturb_attempt" not in [x["kind"] for x in api.as_("admin-FIRE").get("/api/v1/alerts").json()]
    assert "no_disturb_attempt" not in [x["kind"] for x in api.as_("admin-FIRE").get("/api/v1/live").json()["alerts"]]


def test_an_inspection_of_a_no_disturb_enterprise_on_an_exception_is_alerted(api: Api) -> None:
    scan(api, "OFF-SAMR-1", GOOD, exception_basis={"kind": "complaint", "reference": "12345-2026-001"})
    a = only(api, "no_disturb_exception")
    assert a["severity"] == "info" and "投诉举报 12345-2026-001" in a["message_zh"]


def test_repeat_inspections_are_alerted_refused_or_on_an_exception(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", PLAIN)
    end(api, first["inspection_id"], "OFF-SAMR-1")
    scan(api, "OFF-SAMR-2", PLAIN)  # refused as a repeat
    assert kinds(api).count("repeat_inspection") == 1
    now = int(time.time() * 1000)
    r = api.post(
        "/api/v1/exception-bases",
        json={"kind": "superior_assignment", "reference": "A-1", "credit_code": PLAIN, "issued_by": "市局", "valid_from_ms": now - 3_600_000, "valid_to_ms": now + 86_400_000},
    )
    assert r.status_code == 201, r.text
    ok = scan(api, "OFF-SAMR-2", PLAIN, exception_basis={"kind": "superior_assignment", "reference": "A-1"})
    assert ok["code"] == "allowed_exception"
    assert kinds(api).count("repeat_inspection") == 2


def test_yearly_cap_refusals_are_alerted(api: Api) -> None:
    first = scan(api, "OFF-SAMR-1", FRAGILE)
    end(api, first["inspection_id"], "OFF-SAMR-1")
    scan(api, "OFF-FIRE-1", FRAGILE, field="fire")
    a = only(api, "cap_refused")
    assert a["agency_id"] == "FIRE" and "上限" in a["message_zh"]


def test_joint_inspections_are_information(api: Api) -> None:
    scan(api, "OFF-SAMR-1", PLAIN)
    scan(api, "OFF-FIRE-1", PLAIN, field="fire")
    a = only(api, "joint_inspection")
    assert (a["severity"], a["agency_id"]) == ("info", "FIRE") and "综合查一次" in a["message_zh"]


@pytest.mark.parametrize("officer", ["NOBODY", "OFF-EXPIRED", "OFF-REVOKED"])
def test_credential_refusals_are_alerted(api: Api, officer: str) -> None:
    scan(api, officer, PLAIN)
    a = only(api, "credential_refused")
    assert a["officer_id"] == officer and "执法证" in a["message_zh"]


def test_forged_codes_are_critical(api: Api) -> None:
    forged = enterprise_code.issue(PLAIN, SigningKey.generate(), "K1", dt.date.today())
    r = api.as_("OFF-SAMR-1").post("/api/v1/scans", json={"code_text": forged, "field": "food"})
    assert r.json()["code"] == "code_altered"
    assert only(api, "forged_code")["severity"] == "critical"


def test_an_allowed_plain_scan_and_a_resent_one_raise_nothing(api: Api) -> None:
    scan(api, "OFF-SAMR-1", PLAIN, scan_id="plain-scan-1")
    scan(api, "OFF-SAMR-1", GOOD, scan_id="refused-1")
    scan(api, "OFF-SAMR-1", GOOD, scan_id="refused-1")  # resent: one alert, not two
    assert kinds(api) == ["no_disturb_attempt"]


_MEDIA = sql("""
    INSERT INTO media(event_id, device_id, officer_id, inspection_id, file_name, media_kind, sha256, size_bytes, started_ms, ended_ms)
    VALUES (:event_id, 'BR-1', :officer_id, :inspection_id, 'v.mp4', 'video', :sha256, 1, :started_ms, :ended_ms)
""")
_OPENED_MS = sql("SELECT opened_ms FROM inspections WHERE inspection_id = :inspection_id")


def _media(tx: Tx, event_id: str, officer: str, inspection_id: str, start: int, stop: int) -> None:
    tx.run(_MEDIA, event_id=event_id, officer_id=officer, inspection_id=inspection_id, sha256="0" * 64, started_ms=start, ended_ms=stop)


def test_inspections_ended_without_full_recording_are_alerted_after_the_grace_period(api: Api, seeded_url: str) -> None:
    unrecorded = scan(api, "OFF-SAMR-1", PLAIN)["inspection_id"]
    end(api, unrecorded, "OFF-SAMR-1")
    recorded = scan(api, "OFF-FIRE-1", FRAGILE, field="fire")["inspection_id"]
    with dbmod.writing(seeded_url) as tx:
        opened = tx.scalar(_OPENED_MS, inspection_id=recorded)
        _media(tx, "m-1", "OFF-FIRE-1", recorded, opened - 1000, opened + 3_600_000)
    end(api, recorded, "OFF-FIRE-1")
    now = int(time.time() * 1000)
    with dbmod.writing(seeded_url) as tx:
        assert check_ended_recordings(tx, now, grace_ms=10 * MINUTE_MS) == {"checked": 0, "unrecorded": 0}  # within the grace period
    with dbmod.writing(seeded_url) as tx:
        assert check_ended_recordings(tx, now + 11 * MINUTE_MS, grace_ms=10 * MINUTE_MS) == {"checked": 2, "unrecorded": 1}
    with dbmod.writing(seeded_url) as tx:
        assert check_ended_recordings(tx, now + 12 * MINUTE_MS, grace_ms=10 * MINUTE_MS) == {"checked": 0, "unrecorded": 0}  # once each
    a = only(api, "unrecorded_inspection")
    assert (a["ref"], a["agency_id"], a["credit_code"]) == (unrecorded, "SAMR", PLAIN) and "全程无录音录像" in a["message_zh"]


def test_the_recording_job_uses_the_policy_grace_period(api: Api, seeded_url: str) -> None:
    from server.jobs.tasks import JOBS, JobContext, JobSettings

    iid = scan(api, "OFF-SAMR-1", PLAIN)["inspection_id"]
    end(api, iid, "OFF-SAMR-1")
    ctx = JobContext(key=SigningKey.generate(), policy=POLICY, settings=JobSettings())
    now = int(time.time() * 1000)
    with dbmod.writing(seeded_url) as tx:
        assert JOBS["recording"][0](tx, ctx, now)["checked"] == 0
    with dbmod.writing(seeded_url) as tx:
        assert JOBS["recording"][0](tx, ctx, now + int(POLICY.recording_grace_minutes * MINUTE_MS) + 1000)["unrecorded"] == 1
    assert qr(api, PLAIN)  # the API still answers after the job's write transaction


def test_every_alert_kind_has_a_chinese_and_an_english_name_on_the_dashboard(api: Api) -> None:
    from server.rules.alerts import LABELS, SEVERITY

    assert set(SEVERITY) <= set(LABELS)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii() for zh, en in LABELS.values())
    scan(api, "OFF-SAMR-1", GOOD)
    [shown] = api.get("/api/v1/live").json()["alerts"]
    assert (shown["label_zh"], shown["label_en"]) == ("无事不扰拦截", "No-disturb attempt refused")


_DEVICE = sql("INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (:device_id, 'M', 'qr_terminal', :agency_id, '00', 0)")
_MISMATCHES = sql("SELECT device_id, agency_id FROM alerts WHERE kind = 'device_agency_mismatch' ORDER BY id")


def test_a_scan_on_another_agencys_device_is_alerted(seeded_url: str, tmp_path: Path) -> None:
    from server.rules.codes import issue_code
    from server.rules.scanning import ScanRequest, decide_scan

    now = int(time.time() * 1000)
    with dbmod.writing(seeded_url) as tx:
        for device, agency in (("QT-FIRE", "FIRE"), ("QT-SAMR", "SAMR")):
            tx.run(_DEVICE, device_id=device, agency_id=agency)
        text = issue_code(tx, tmp_path / "server", PLAIN)[0]
        for n, device in enumerate(("QT-SAMR", "QT-FIRE")):
            req = ScanRequest(scan_id=f"t-{n}", channel="terminal", officer_id="OFF-SAMR-1", code_text=text, field="food", scanned_ms=now, device_id=device)
            decide_scan(tx, req, POLICY, now)
    with dbmod.reading(seeded_url) as tx:
        assert tx.all(_MISMATCHES) == [("QT-FIRE", "SAMR")]
