"""The device register on both backends: server/storage/device_register.py, and server/rules/registry.py's rules over it
(``devices add``, ``devices revoke``, the broker accounts that should exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.signing import SigningKey
from server.broker import access as broker
from server.rules import registry
from server import db as dbmod
from server.rules.registry import RegistryError, provision, revoke
from server.storage import device_register
from server.storage.device_register import DeviceRegistration
from server.storage.engine import Backend, Storage, backend_of, sql


def device(device_id: str, agency: str = "SAMR") -> DeviceRegistration:
    return DeviceRegistration(device_id, "QR-1", "qr_terminal", agency, "ab" * 32, "json", 1_000, "110108")


def test_add_registered_revoke_and_list(store: Storage) -> None:
    with store.writing() as tx:
        assert device_register.add_devices(tx, [device("QT-00002"), device("QT-00001"), device("qt-00009")]) == ["QT-00002", "QT-00001", "qt-00009"]
        # An id already there is left out, the others still go in: the caller decides what that means.
        assert device_register.add_devices(tx, [device("QT-00001", "FIRE"), device("PH-00001")]) == ["PH-00001"]
    with store.reading() as tx:
        assert device_register.registered(tx, ["QT-00001", "NOPE"]) == {"QT-00001"}
        assert device_register.registered(tx, []) == set()
        assert {"QT-00001", "QT-00002"} <= set(device_register.ids_starting(tx, "QT"))
        assert "PH-00001" not in device_register.ids_starting(tx, "QT")
    with store.writing() as tx:
        assert device_register.revoke(tx, "QT-00002", 5_000) is True
        assert device_register.revoke(tx, "QT-00002", 6_000) is False  # already revoked: kept as it was
        assert device_register.revoke(tx, "NOPE", 6_000) is False
    with store.reading() as tx:
        assert device_register.active_devices(tx) == [("PH-00001", "SAMR", "qr_terminal"), ("QT-00001", "SAMR", "qr_terminal"), ("qt-00009", "SAMR", "qr_terminal")]
        assert device_register.active_device_ids(tx) == {"PH-00001", "QT-00001", "qt-00009"}
        assert tx.all(sql("SELECT agency_id, revoked_ms FROM devices WHERE device_id = 'QT-00002'")) == [("SAMR", 5_000)]


# --- registry.py's rules ---------------------------------------------------------------------------------------------


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def test_provision_numbers_devices_and_revoke_removes_accounts(db_url: str, tmp_path: Path, key: SigningKey) -> None:
    bdir = tmp_path / "broker"
    made = provision(db_url, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "out", count=2, broker_dir=bdir)
    assert [m.device_id for m in made] == ["QT-00001", "QT-00002"]
    more = provision(db_url, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "out", broker_dir=bdir)
    assert [m.device_id for m in more] == ["QT-00003"]
    assert (more[0].bundle_dir / "device.toml").is_file()
    assert broker.accounts(bdir) == {"QT-00001", "QT-00002", "QT-00003"} == registry.active_device_ids(db_url)
    with pytest.raises(RegistryError, match="already registered"):
        provision(db_url, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "again", device_id="QT-00002", broker_dir=bdir)
    assert revoke(db_url, "QT-00002", bdir) is False  # no broker running: nothing to tell
    assert broker.accounts(bdir) == {"QT-00001", "QT-00003"} == registry.active_device_ids(db_url)
    with pytest.raises(RegistryError, match="already revoked"):
        revoke(db_url, "QT-00002", bdir)
    with pytest.raises(RegistryError, match="not registered"):
        revoke(db_url, "NOBODY", bdir)


def test_an_id_taken_meanwhile_registers_nothing(db_url: str, tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another `devices add` registers QT-00002 after this one chose its ids: all or none, and no account is left.
    bdir = tmp_path / "broker"
    add_accounts = broker.add_accounts

    def someone_else_registers_first(folder: Path, creds: dict[str, str]) -> None:
        add_accounts(folder, creds)
        with dbmod.writing(db_url) as tx:
            device_register.add_devices(tx, [device("QT-00002")])

    monkeypatch.setattr(broker, "add_accounts", someone_else_registers_first)
    with pytest.raises(RegistryError, match="'QT-00002' was registered meanwhile"):
        provision(db_url, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "out", count=3, broker_dir=bdir)
    assert registry.active_device_ids(db_url) == {"QT-00002"}
    assert broker.accounts(bdir) == set()


def test_postgresql_needs_a_broker_folder(db_url: str, tmp_path: Path, key: SigningKey) -> None:
    if backend_of(db_url) is Backend.SQLITE:
        made = provision(db_url, key, model="phone", agency_id="AG", out_dir=tmp_path / "out")
        assert broker.accounts(broker.broker_dir_for(Path(db_url))) == {made[0].device_id}
        return
    with pytest.raises(RegistryError, match="--broker-dir"):
        provision(db_url, key, model="phone", agency_id="AG", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with dbmod.writing(db_url) as tx:
        device_register.add_devices(tx, [device("PH-00001")])
    with pytest.raises(RegistryError, match="--broker-dir"):  # refused before the device is revoked
        revoke(db_url, "PH-00001")
    assert registry.active_device_ids(db_url) == {"PH-00001"}
