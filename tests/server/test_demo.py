"""``fe-server demo-seed`` (server/demo.py) on both backends: the registers for the provisioned devices, the scenario,
and a second run that adds no officer, user or enterprise twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server import db as dbmod
from server.demo import DEMO_PASSWORD, seed_demo
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
    with dbmod.reading(db_url) as tx:
        first = tx.one(COUNTS)
    assert first == (24, 1, 7, len(scenario["no_disturb"][:3]), 6, 4)
    with dbmod.reading(db_url) as tx:
        assert [s for (s,) in tx.all(LETTERS)] == ["accepted", "issued", "overdue", "replied"] and summary["letters"] == 4
        assert tx.scalar(TICKETS) == summary["hotline_tickets"] == 3 and (tmp_path / "devices" / "hotline-demo.csv").is_file()
    again = seed_demo(db_url, tmp_path / "devices", enterprises=24, key_base=key_base)
    with dbmod.reading(db_url) as tx:
        assert tx.one(COUNTS) == first and len(tx.all(LETTERS)) == 4 and again["letters"] == 0 and tx.scalar(TICKETS) == 3


def test_postgresql_needs_a_key_folder(db_url: str, tmp_path: Path) -> None:
    if backend_of(db_url) is Backend.SQLITE:
        pytest.skip("the SQLite file names the key files")
    with pytest.raises(ConfigError, match="--key-dir"):
        seed_demo(db_url, tmp_path / "devices")
