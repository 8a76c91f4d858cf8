"""The broker's credential files (server/broker/access.py), the CA (server/broker/ca.py) and their commands, without
a running broker (tests/system/test_broker_security.py runs them against a real Mosquitto)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.broker import access as broker
from server.broker.ca import CaError, client_cert, init_ca, server_cert
from server.cli import main
from server.evidence.keys import load_or_create_server_key
from server.rules.registry import RegistryError, provision, revoke


def test_passwords_are_hashed_by_mosquitto_passwd_and_checkable(tmp_path: Path) -> None:
    broker.add_accounts(tmp_path, {"dev-1": "s3cret", "dev-2": "other"})
    text = (tmp_path / broker.PASSWD_FILE).read_text()
    assert "s3cret" not in text and all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())
    assert oct((tmp_path / broker.PASSWD_FILE).stat().st_mode & 0o777) == "0o600"
    # Replacing a password keeps one line per account.
    broker.add_accounts(tmp_path, {"dev-1": "new"})
    assert broker.accounts(tmp_path) == {"dev-1", "dev-2"} and len((tmp_path / broker.PASSWD_FILE).read_text().splitlines()) == 2


@pytest.mark.parametrize("user", ["", "a:b", "a\nb"])
def test_usernames_that_would_break_the_file_are_refused(tmp_path: Path, user: str) -> None:
    with pytest.raises(broker.BrokerSecurityError, match="username"):
        broker.add_accounts(tmp_path, {user: "x"})
    assert broker.accounts(tmp_path) == set()


def test_a_newline_in_a_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(broker.BrokerSecurityError):
        broker.add_accounts(tmp_path, {"dev": "a\ndev-2:b"})  # would smuggle a second account in


def test_concurrent_changes_lose_no_account(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            broker.add_accounts(tmp_path, {f"dev-{i}": "pw"})
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and broker.accounts(tmp_path) == {f"dev-{i}" for i in range(8)}


def test_remove_and_keep_only(tmp_path: Path) -> None:
    broker.prepare(tmp_path)
    broker.add_accounts(tmp_path, {"a": "1", "b": "2", "c": "3"})
    assert broker.remove_accounts(tmp_path, ["b", "zz"]) == ["b"]
    assert broker.keep_only(tmp_path, {"a", broker.SERVER_ACCOUNT}) == ["c"]
    assert broker.accounts(tmp_path) == {"a", broker.SERVER_ACCOUNT}


def test_server_password_is_made_once(tmp_path: Path) -> None:
    first = broker.server_password(tmp_path)
    assert broker.server_password(tmp_path) == first and broker.SERVER_ACCOUNT in broker.accounts(tmp_path)
    assert oct((tmp_path / broker.SERVER_PASSWORD_FILE).stat().st_mode & 0o777) == "0o600"


def test_reload_never_signals_a_process_that_is_not_mosquitto(tmp_path: Path) -> None:
    # A stale pid file naming a live process that is not Mosquitto (here: a sleeping child): no SIGHUP,
    # which would kill it.
    other = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / broker.PID_FILE).write_text(f"{other.pid}\n")
        assert broker.reload(tmp_path) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    (tmp_path / broker.PID_FILE).write_text("not a pid\n")
    assert broker.reload(tmp_path) is False
    (tmp_path / broker.PID_FILE).unlink()
    assert broker.reload(tmp_path) is False


def test_acl_gives_devices_their_own_topics_only() -> None:
    lines = [line for line in broker.acl_text().splitlines() if line and not line.startswith("#")]
    device_rules = [line for line in lines[: lines.index(f"user {broker.SERVER_ACCOUNT}")]]
    assert device_rules == [
        "pattern write fe/v1/dev/%u/up",
        "pattern write fe/v1/dev/%u/time",
        "pattern readwrite fe/v1/dev/%u/presence",
        "pattern read fe/v1/dev/%u/down",
        "pattern read fe/v1/lists/+",
    ]
    server_rules = lines[lines.index(f"user {broker.SERVER_ACCOUNT}") + 1 :]
    assert server_rules == [
        "topic read fe/v1/dev/+/up",
        "topic read fe/v1/dev/+/time",
        "topic read fe/v1/dev/+/presence",
        "topic write fe/v1/dev/+/down",
        "topic write fe/v1/lists/+",
    ]


def test_provision_and_revoke_keep_the_password_file_in_step(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    key = load_or_create_server_key(tmp_path / "s.key")
    made = provision(db, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "out", count=2)
    bdir = broker.broker_dir_for(db)
    assert broker.accounts(bdir) == {p.device_id for p in made}
    assert all(oct((p.bundle_dir / "device.toml").stat().st_mode & 0o777) == "0o600" for p in made)  # it holds the password
    with pytest.raises(RegistryError, match="server's broker account"):
        provision(db, key, model="qr_terminal", agency_id="AG", out_dir=tmp_path / "out", device_id=broker.SERVER_ACCOUNT)
    assert revoke(db, made[0].device_id) is False  # no broker running: nothing to tell, the account is gone
    assert broker.accounts(bdir) == {made[1].device_id}


def test_provision_with_a_bad_public_key_registers_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    key = load_or_create_server_key(tmp_path / "s.key")
    for bad in ("zz", "ab" * 31, "ab" * 33):
        with pytest.raises(RegistryError, match="--public-key"):
            provision(db, key, model="phone", agency_id="AG", out_dir=tmp_path / "out", device_id="PH-1", public_key=bad)
    with pytest.raises(RegistryError, match="--count"):
        provision(db, key, model="phone", agency_id="AG", out_dir=tmp_path / "out", count=2, public_key="ab" * 32)
    assert not (tmp_path / "out").exists() and broker.accounts(broker.broker_dir_for(db)) == set()


def test_ca_server_and_client_certificates(tmp_path: Path) -> None:
    ca = init_ca(tmp_path / "ca")
    with pytest.raises(CaError, match="already holds a CA"):
        init_ca(tmp_path / "ca")
    crt, key = server_cert(tmp_path / "ca", ["127.0.0.1", "broker.example"])
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"] and sans.get_values_for_type(x509.DNSName) == ["broker.example"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.read_bytes()))
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # A client certificate for a key the device made itself: no private key is written here.
    device_key = ec.generate_private_key(ec.SECP256R1())
    pem = device_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = tmp_path / "bundle"
    out.mkdir()
    c = x509.load_pem_x509_certificate(client_cert(tmp_path / "ca", "QT-1", out, pem).read_bytes())
    assert c.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "QT-1"
    assert c.public_key().public_numbers() == device_key.public_key().public_numbers()
    assert not (out / "client.key").exists()
    with pytest.raises(CaError, match="no CA"):
        server_cert(tmp_path / "nothing", ["x"])


def test_broker_config_command_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "s.db")
    assert main(["broker-config", "--db", db, "--require-certificate"]) == 1
    assert "--require-certificate needs --tls" in capsys.readouterr().err
    assert main(["broker-config", "--db", db, "--tls", str(tmp_path / "no-ca")]) == 1
    assert "is missing" in capsys.readouterr().err
    assert main(["ca", "server-cert", "--dir", str(tmp_path / "no-ca"), "--host", "x"]) == 1
    assert "holds no CA" in capsys.readouterr().err
    assert main(["broker-config", "--db", db, "--port", "18883"]) == 0
    conf = (tmp_path / "s.db.broker" / "mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert conf.index("listener 18883") + 1 == conf.index("use_username_as_clientid true")  # a listener option
    assert os.access(tmp_path / "s.db.broker" / broker.PASSWD_FILE, os.R_OK)


def test_revoking_again_removes_an_account_left_behind(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    key = load_or_create_server_key(tmp_path / "s.key")
    (made,) = provision(db, key, model="phone", agency_id="AG", out_dir=tmp_path / "out")
    bdir = broker.broker_dir_for(db)
    revoke(db, made.device_id)
    broker.add_accounts(bdir, {made.device_id: "left behind"})  # as if the first revoke died before this step
    with pytest.raises(RegistryError, match="already revoked"):
        revoke(db, made.device_id)
    assert made.device_id not in broker.accounts(bdir)
    with pytest.raises(RegistryError, match="not registered"):
        revoke(db, "NOBODY")


def test_a_missing_ca_file_is_a_clear_refusal(tmp_path: Path) -> None:
    key = load_or_create_server_key(tmp_path / "s.key")
    with pytest.raises(RegistryError, match="--ca: .* is not a file"):
        provision(tmp_path / "s.db", key, model="phone", agency_id="AG", out_dir=tmp_path / "out", ca_file=tmp_path / "nope.crt")
    assert not (tmp_path / "out").exists()


def test_ingest_workers_get_accounts_of_their_own_with_the_servers_topics(tmp_path: Path) -> None:
    assert broker.prepare(tmp_path, ingest_workers=2) == [broker.SERVER_ACCOUNT, "fe-ingest-1", "fe-ingest-2"]
    assert broker.ingest_workers(tmp_path) == 2
    passwords = {a: (tmp_path / broker.password_file_name(a)).read_text().strip() for a in ("fe-ingest-1", "fe-ingest-2")}
    assert len(set(passwords.values())) == 2 and all(len(p) >= 32 for p in passwords.values())
    broker.prepare(tmp_path, ingest_workers=2)  # again: the same passwords, not new ones
    assert {a: (tmp_path / broker.password_file_name(a)).read_text().strip() for a in passwords} == passwords
    acl = (tmp_path / broker.ACL_FILE).read_text().splitlines()
    blocks = {line.split()[1]: acl[i + 1 : i + 6] for i, line in enumerate(acl) if line.startswith("user ")}
    assert blocks["fe-ingest-1"] == blocks["fe-ingest-2"] == blocks[broker.SERVER_ACCOUNT]
    with pytest.raises(broker.BrokerSecurityError, match="start at 1"):
        broker.ingest_account(0)


def test_broker_config_keeps_ingest_accounts_and_drops_those_no_longer_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    out = tmp_path / "b"
    assert main(["broker-config", "--db", str(db), "--out", str(out), "--ingest-workers", "3"]) == 0
    assert "3 ingest worker account(s)" in capsys.readouterr().out
    assert main(["broker-config", "--db", str(db), "--out", str(out)]) == 0  # default: as many as there are
    assert broker.ingest_workers(out) == 3
    assert main(["broker-config", "--db", str(db), "--out", str(out), "--ingest-workers", "1"]) == 0
    assert broker.accounts(out) == {broker.SERVER_ACCOUNT, "fe-ingest-1"}
    assert sorted(p.name for p in out.glob("*.password")) == ["fe-ingest-1.password", "fe-server.password"]
    assert main(["broker-config", "--db", str(db), "--out", str(out), "--ingest-workers", "-1"]) == 1
    assert main(["broker-config", "--db", str(db), "--out", str(out), "--ingest-workers", "100000"]) == 1
    assert broker.accounts(out) == {broker.SERVER_ACCOUNT, "fe-ingest-1"}  # refused before any account was made
