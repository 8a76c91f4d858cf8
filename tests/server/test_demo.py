"""``fe-server demo-seed`` (server/demo.py) on both backends: the registers for the provisioned devices, the scenario,
and a second run that adds no officer, user or enterprise twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from edge_agent import simulate
from protocol.ids import new_event_id
from protocol.messages import DeviceMessage
from server.console import stats
from server.evidence.coverage import coverage
from server.ingest.projector import Projector
from protocol.config import load_toml
from protocol.decision import Policy
from server.settings import ServerSettings

from server import db as dbmod
from server.demo import DEMO_OFFICER, DEMO_PASSWORD, seed_demo
from server.settings import ConfigError
from server.storage import device_register
from server.storage.device_register import DeviceRegistration
from server.storage.engine import Backend, backend_of, sql

COUNTS = sql(
    "SELECT (SELECT count(*) FROM enterprises), (SELECT count(*) FROM officers), (SELECT count(*) FROM users),"
    " (SELECT count(*) FROM complaints), (SELECT count(*) FROM fields), (SELECT count(*) FROM agencies)"
)
LETTERS = sql("SELECT status FROM letters ORDER BY status")
TICKETS = sql("SELECT count(*) FROM hotline_tickets")


def test_seed_twice(db_url: str, tmp_path: Path) -> None:
    with dbmod.writing(db_url) as tx:
        device_register.add_devices(tx, [DeviceRegistration("QT-00001", "QR-1", "qr_terminal", "ecology", "ab" * 32, "json", 1, "110108")])
    key_base = None if backend_of(db_url) is Backend.SQLITE else tmp_path / "keys" / "server"
    if key_base is not None:
        key_base.parent.mkdir()
    summary = seed_demo(db_url, tmp_path / "devices", enterprises=24, key_base=key_base)
    assert (summary["devices"], summary["enterprises"], summary["password"]) == (1, 24, DEMO_PASSWORD)
    scenario = json.loads((tmp_path / "devices" / "scenario.json").read_text())
    assert scenario["devices"] == {"QT-00001": {"officer_id": "OFF-QT-00001", "fields": ["pollution"], "kind": "qr_terminal"}}
    assert len(scenario["codes"]) == 24 and scenario["codes"][0]["text"]
    assert set(scenario["complaints"]) == set(scenario["no_disturb"][:3])
    assert summary["officer_for_the_phone_page"] == DEMO_OFFICER and DEMO_OFFICER in summary["users"]
    assert sorted(p.name for p in (tmp_path / "doors").glob("*.png")) == ["door-no-disturb.png", "door-ordinary.png"]
    with dbmod.reading(db_url) as tx:
        first = tx.one(COUNTS)
    # the demo officer is one more officer and user; so are the three market-regulation officers of the demo's cases
    assert first == (24, 5, 11, len(scenario["no_disturb"][:3]), 6, 4)
    assert summary["cases"] == 6 and summary["case_officers"] == ["OFF-MR-1", "OFF-MR-2", "OFF-MR-3"]
    with dbmod.reading(db_url) as tx:
        assert [s for (s,) in tx.all(LETTERS)] == ["accepted", "issued", "overdue", "replied"] and summary["letters"] == 4
        assert tx.scalar(TICKETS) == summary["hotline_tickets"] == 3 and (tmp_path / "devices" / "hotline-demo.csv").is_file()
    again = seed_demo(db_url, tmp_path / "devices", enterprises=24, key_base=key_base)
    with dbmod.reading(db_url) as tx:
        assert tx.one(COUNTS) == first and len(tx.all(LETTERS)) == 4 and again["letters"] == 0 and tx.scalar(TICKETS) == 3
        assert again["cases"] == 0


def test_postgresql_needs_a_key_folder(db_url: str, tmp_path: Path) -> None:
    if backend_of(db_url) is Backend.SQLITE:
        pytest.skip("the SQLite file names the key files")
    with pytest.raises(ConfigError, match="--key-dir"):
        seed_demo(db_url, tmp_path / "devices")


# --- the simulated district, in process: the simulator's stories fed to the server's own projector -------------------


class _Link:
    """Stands in for a device's agent, broker and ingest: each submission becomes the device's message and is stored
    through the server's projector at the test's clock."""

    def __init__(self, db: Path, device_id: str, agency_id: str, kind: str, clock: list[int]) -> None:
        self.db, self.device_id, self.clock, self.seq = db, device_id, clock, 0
        self.identity = SimpleNamespace(agency_id=agency_id)
        self.config = SimpleNamespace(can_scan=kind != "body_recorder", can_record=kind != "qr_terminal")
        self.projector = Projector(load_toml(ServerSettings(db_path=db).policy_file, Policy))

    def submit(self, sub: Any) -> list[Any]:
        self.seq += 1
        body = {"type": sub.type, "event_id": sub.event_id or new_event_id(), "device_id": self.device_id, "seq": self.seq,
                "device_time_ms": self.clock[0], "clock_error_ms": 50, **sub.fields}  # fmt: skip
        msg = msgspec.convert(body, DeviceMessage)  # type: ignore[arg-type]
        with dbmod.writing(self.db) as tx:
            return self.projector.stored(tx, msg, self.clock[0])


class _Scanner:
    def __init__(self, agent: _Link) -> None:
        self.agent = agent

    def scan(self, officer_id: str, field: str, *, code_text: str, exception: Any = None) -> dict[str, Any]:
        scan_id = new_event_id()
        fields = {"officer_id": officer_id, "code_text": code_text, "field": field}
        if exception is not None:
            fields["exception_basis"] = msgspec.to_builtins(exception)
        (notice,) = self.agent.submit(SimpleNamespace(type="enterprise_scanned", fields=fields, event_id=scan_id))
        return {"scan_id": scan_id, **msgspec.to_builtins(notice)}


_ALERT_KINDS = sql("SELECT DISTINCT kind FROM alerts")
_ENDED = sql("SELECT inspection_id FROM inspections WHERE status = 'ended'")


def test_the_simulated_district_is_recorded_and_raises_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's story: recordings with start and end times (a phone records itself; a QR terminal's officer wears a
    body recorder; another terminal's officer has none), no-disturb scans and repeats, so that coverage is neither 0 %
    nor the alerts empty; and the officer printed for the phone page has no part in any of it."""
    db = tmp_path / "server.db"
    dbmod.migrate(db)
    devices = [("QT-00001", "market-regulation", "qr_terminal"), ("BR-00001", "market-regulation", "body_recorder"),
               ("PH-00001", "emergency-management", "phone"), ("QT-00002", "ecology", "qr_terminal")]  # fmt: skip
    with dbmod.writing(db) as tx:
        device_register.add_devices(tx, [DeviceRegistration(d, f"SN-{d}", k, a, f"{i:02x}" * 32, "json", 1, "110108") for i, (d, a, k) in enumerate(devices)])
    seed_demo(db, tmp_path / "devices", enterprises=40)
    scenario = json.loads((tmp_path / "devices" / "scenario.json").read_text())
    assert scenario["devices"]["BR-00001"]["worn_by"] == "OFF-QT-00001"
    clock = [int(time.time() * 1000) - 3_600_000]
    monkeypatch.setattr(simulate, "_now_ms", lambda: clock[0])
    monkeypatch.setattr(simulate, "Scanner", _Scanner)
    recorders: dict[str, Any] = {}
    officers = [simulate.SimulatedOfficer(_Link(db, d, a, k, clock), 1.0, seed=i, scenario=scenario, recorders=recorders) for i, (d, a, k) in enumerate(devices)]  # type: ignore[arg-type]
    stories = [(o, o.story()) for o in officers]
    steps = [next(s) for _, s in stories]
    for _ in range(120):
        for n, (o, story) in enumerate(stories):
            clock[0] += 2_000  # a step every 2 s per device, as the demo's default rate
            step, answer = steps[n], None
            if isinstance(step, simulate.ScanStep):
                assert o.scanner is not None
                answer = o.scanner.scan(o.officer_id, step.field, code_text=step.code_text, exception=step.exception)
            elif step is not None:
                o.agent.submit(step)
            steps[n] = story.send(answer)
    with dbmod.reading(db) as tx:
        ended = [i for (i,) in tx.all(_ENDED)]
        covered = [coverage(tx, i) for i in ended]
        kinds = {k for (k,) in tx.all(_ALERT_KINDS)}
        figures = stats.summary(tx, clock[0] - 86_400_000, clock[0] + 1)
    complete = sum(c.complete for c in covered)
    assert ended and 0 < complete < len(ended), (complete, len(ended))  # recorded from start to end, not all of them
    assert figures["recording_coverage_rate"] > 0
    assert {"repeat_inspection"} <= kinds and kinds & {"no_disturb_attempt", "no_disturb_exception"}, kinds
    with dbmod.reading(db) as tx:
        assert tx.scalar(sql("SELECT count(*) FROM inspection_parts WHERE officer_id = 'OFF-DEMO-1'")) == 0
        assert tx.scalar(sql("SELECT count(*) FROM scans WHERE officer_id = 'OFF-DEMO-1'")) == 0
