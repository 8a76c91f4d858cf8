"""The broker's access control (server/broker/access.py) against hostile clients, with a real Mosquitto 2.0.11,
a real `fe-server run` and real `fe-agent run` processes: every attack below is refused by the broker.

The broker's checks do not depend on the server's database: they run on SQLite; the revocation, which the command
line makes in the register and in the broker's files of the key folder, runs on both backends.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol import topics
from protocol.config import load_device_config
from protocol.signing import SigningKey
from server.broker import access as security
from server.broker.ca import client_cert, init_ca, server_cert
from server.storage.engine import sql
from tests.support.backends import BACKENDS
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, assert_exactly_once, http_json, read_all, server_events, tune, write_config

pytestmark = pytest.mark.system

CODE_TEXT = "FE1:91110108MA01ABCD0X"
#: MQTT v5 reason codes the broker answers with.
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


class Raw:
    """A raw MQTT v5 client: an attacker, or a device speaking for itself."""

    def __init__(
        self, port: int, client_id: str, username: str | None = None, password: str | None = None, *, ca: Path | None = None, cert: tuple[Path, Path] | None = None
    ) -> None:
        self.connacks: list[int] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: list[list[int]] = []
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects: list[int] = []
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        c.on_connect = lambda cl, u, f, rc, p: self.connacks.append(rc.value)
        c.on_disconnect = lambda cl, u, f, rc, p: self.disconnects.append(rc.value)
        c.on_connect_fail = lambda cl, u: self.disconnects.append(-1)  # e.g. the TLS handshake failed
        c.on_publish = lambda cl, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        c.on_subscribe = lambda cl, u, mid, rcs, p: self.subacks.append([r.value for r in rcs])
        c.on_message = lambda cl, u, m: self.messages.append((m.topic, bytes(m.payload)))
        if username is not None:
            c.username_pw_set(username, password)
        if ca is not None:
            c.tls_set(ca_certs=str(ca), certfile=str(cert[0]) if cert else None, keyfile=str(cert[1]) if cert else None)
        c.reconnect_delay_set(60, 60)  # an attacker refused once is not retried within a test
        self.client = c
        c.connect_async("127.0.0.1", port)
        c.loop_start()
        wait_for(lambda: self.connacks or self.disconnects, 10, message=f"{client_id}: neither CONNACK nor disconnection")

    @property
    def accepted(self) -> bool:
        """The broker answered CONNACK success and the connection is still up."""
        return bool(self.connacks) and self.connacks[-1] == 0 and self.client.is_connected()

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.pubacks, 10, message=f"no PUBACK for {topic}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> list[int]:
        """Subscribe QoS 1 and return the SUBACK's reason codes."""
        n = len(self.subacks)
        self.client.subscribe(topic, qos=1)
        wait_for(lambda: len(self.subacks) > n, 10, message=f"no SUBACK for {topic}")
        return self.subacks[n]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raws() -> Iterator[list[Raw]]:
    made: list[Raw] = []
    yield made
    for r in made:
        r.close()


def creds(dev: DeviceRun) -> tuple[str, str]:
    """The broker account written into a device's bundle."""
    m = load_device_config(dev.config_path).mqtt
    return m.username, m.password


def submit(dev: DeviceRun) -> str:
    eid = str(uuid.uuid4())
    code, body = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": CODE_TEXT}, eid)
    assert code == 202, body
    return eid


_REJECTED_TOPICS = sql("SELECT topic FROM rejected ORDER BY id")


def rejected_topics(db: str) -> list[str]:
    return [t for (t,) in read_all(db, _REJECTED_TOPICS)]


def handshake(port: int, ca: Path, host: str, cert: tuple[Path, Path] | None = None) -> None:
    """A TLS handshake with the broker as a device makes it (server certificate and host name checked)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # so that a refused client certificate fails the handshake itself
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host):
        pass


def fe_server(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)


@pytest.fixture
def secure(stack_factory, request: pytest.FixtureRequest) -> Stack:  # type: ignore[no-untyped-def]
    """A secure broker with a running server and two devices (agents not started), on SQLite unless the test
    parametrises it with backends (indirect)."""
    s: Stack = stack_factory(secure=True, persistence=True, backend=getattr(request, "param", "sqlite"))
    s.server.start_and_wait()
    s.add_devices(2)
    return s


def test_bundles_carry_their_own_account_and_the_server_its_own(secure: Stack) -> None:
    a, b = secure.devices
    (ua, pa), (ub, pb) = creds(a), creds(b)
    assert (ua, ub) == (a.device_id, b.device_id) and pa and pb and pa != pb
    passwd = (secure.server.broker_dir / security.PASSWD_FILE).read_text()
    assert pa not in passwd and pb not in passwd  # hashes only, made by mosquitto_passwd
    assert {line.split(":")[0] for line in passwd.splitlines()} == {a.device_id, b.device_id, security.SERVER_ACCOUNT}
    assert all(line.split(":")[1].startswith("$7$") for line in passwd.splitlines())


def test_anonymous_and_wrong_passwords_are_refused(secure: Stack, raws: list[Raw]) -> None:
    a, _ = secure.devices
    user, password = creds(a)
    port = secure.broker.port
    raws += [Raw(port, "anon"), Raw(port, a.device_id), Raw(port, "x", user, password + "x"), Raw(port, "y", user, ""), Raw(port, "z", "nobody", password)]
    # Mosquitto 2.0.11 answers CONNACK 0x87 (not authorized) to all of them; 0x86 would do as well.
    assert all(r.connacks and r.connacks[0] in (NOT_AUTHORIZED, BAD_CREDENTIALS) for r in raws), [r.connacks for r in raws]
    assert not any(r.accepted for r in raws)
    # The server's account, with a wrong password, is refused too.
    wrong_server = Raw(port, "fe-server", security.SERVER_ACCOUNT, "guess")
    raws.append(wrong_server)
    assert not wrong_server.accepted
    ok = Raw(port, "whatever", user, password)
    raws.append(ok)
    assert ok.accepted


def test_a_device_cannot_publish_on_another_devices_topics(secure: Stack, raws: list[Raw]) -> None:
    a, b = secure.devices
    mallory = Raw(secure.broker.port, a.device_id, *creds(a))
    raws.append(mallory)
    junk = b'{"not": "an envelope"}'
    assert mallory.publish(topics.device_up(b.device_id), junk) == NOT_AUTHORIZED
    assert mallory.publish(topics.device_presence(b.device_id), b"offline") == NOT_AUTHORIZED
    assert mallory.publish(topics.device_time(b.device_id), junk) == NOT_AUTHORIZED
    assert mallory.publish(topics.device_down(b.device_id), junk) == NOT_AUTHORIZED  # forging the server's downlink
    assert mallory.publish("fe/v1/lists/no-disturb", junk) == NOT_AUTHORIZED
    # Its own uplink is allowed: the server receives it (and rejects this junk), which shows the server
    # was listening; what came before on b's topic never reached it.
    assert mallory.publish(topics.device_up(a.device_id), junk) in (0, 0x10)
    db = secure.server.db
    wait_for(lambda: topics.device_up(a.device_id) in rejected_topics(db), 15, message="the server did not see the allowed publish")
    assert topics.device_up(b.device_id) not in rejected_topics(db)
    assert server_events(db, b.device_id) == []


def test_a_device_subscribing_to_others_or_everything_gets_nothing(secure: Stack, raws: list[Raw]) -> None:
    a, b = secure.devices
    spy = Raw(secure.broker.port, a.device_id, *creds(a))
    raws.append(spy)
    for topic in (topics.device_down(b.device_id), topics.all_devices_up(), "#", "fe/v1/dev/+/down"):
        assert spy.subscribe(topic)[0] in (1, NOT_AUTHORIZED)  # granted-but-filtered or refused: either way nothing
    b.start()
    eid = submit(b)
    wait_for(lambda: [e for e, _ in server_events(secure.server.db, b.device_id)] == [eid], 30, message="b's event not stored")
    wait_for(lambda: b.outbox_state()[0] == 0, 30, message="b never got its receipt")
    assert [t for t, _ in spy.messages if b.device_id in t or t.endswith("/up")] == []


def test_nobody_takes_a_devices_or_the_servers_session(secure: Stack, raws: list[Raw]) -> None:
    a, b = secure.devices
    a.start()
    wait_for(lambda: a.status()["connected"], 20, message="a did not connect")
    connects_before = a.status()["connects"]
    port = secure.broker.port
    # Without a password: refused, whatever client id is asked for.
    anon = Raw(port, a.device_id)
    raws.append(anon)
    assert not anon.accepted
    # With b's account asking for a's and the server's client ids: the broker uses b's username as its id.
    thief = Raw(port, a.device_id, *creds(b))
    raws.append(thief)
    assert thief.accepted
    assert f"as {b.device_id} (p5" in secure.broker.log_text()
    server_thief = Raw(port, "fe-server", *creds(b))
    raws.append(server_thief)
    assert server_thief.accepted
    # The second one took over b's session, never the server's: it was b all along (and so was the first).
    wait_for(lambda: thief.disconnects, 10, message="the same account connecting twice did not take over its own session")
    assert secure.broker.log_text().count(f"Client {b.device_id} already connected, closing old connection") == 1
    # a's agent and the server stay connected and keep delivering.
    eid = submit(a)
    wait_for(lambda: [e for e, _ in server_events(secure.server.db, a.device_id)] == [eid], 30, message="a's event not stored")
    assert a.status()["connects"] == connects_before and a.status()["connected"]
    assert "disconnected from the broker" not in secure.server.log_tail(200)
    assert all(b.device_id in t for t, _ in thief.messages + server_thief.messages)


@pytest.mark.parametrize("secure", BACKENDS, indirect=True)
def test_revoke_disconnects_the_device_at_once_and_for_good(secure: Stack, raws: list[Raw]) -> None:
    a, b = secure.devices
    a.start()
    b.start()
    wait_for(lambda: a.status()["connected"] and b.status()["connected"], 20, message="agents did not connect")
    stored = submit(a)
    wait_for(lambda: a.outbox_state()[0] == 0, 30, message="a's event not receipted")
    reloads = secure.broker.reloads
    done = fe_server("devices", "revoke", *secure.server.db_args, a.device_id)
    assert done.returncode == 0 and "the broker disconnected it" in done.stdout, done
    secure.broker.wait_reloaded(reloads)
    wait_for(lambda: not a.status()["connected"], 10, message="the revoked device is still connected")
    late = submit(a)  # kept in its outbox: the device cannot deliver any more
    again = Raw(secure.broker.port, "again", *creds(a))
    raws.append(again)
    assert not again.accepted
    assert not a.status()["connected"]
    # Nothing of it reached the server: not stored, not even kept aside as rejected.
    assert [e for e, _ in server_events(secure.server.db, a.device_id)] == [stored]
    assert topics.device_up(a.device_id) not in rejected_topics(secure.server.db)
    assert a.outbox_state()[0] == 1 and late
    # The other device is untouched.
    b.submitted.clear()
    submit(b)
    assert_exactly_once(secure.server.db, [b])


def test_broker_config_writes_a_config_mosquitto_runs(stack_factory, tmp_path: Path, raws: list[Raw]) -> None:  # type: ignore[no-untyped-def]
    """`fe-server broker-config` from the register: removes revoked devices' accounts; the config starts."""
    s: Stack = stack_factory(secure=True, persistence=True)
    a, b = s.add_devices(2)
    out = s.server.broker_dir
    security.add_accounts(out, {"stranger": "x"})  # an account no device in the register has
    done = fe_server("broker-config", *s.server.db_args, "--port", "1", "--bind", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    assert "removed the broker account of stranger" in done.stdout
    conf = (out / "mosquitto.conf").read_text()
    for line in ("allow_anonymous false", "use_username_as_clientid true", f"password_file {out / 'passwd'}", f"acl_file {out / 'acl'}", "listener 1 127.0.0.1"):
        assert line in conf.splitlines(), line
    assert "allow_anonymous true" not in conf.splitlines()
    assert security.accounts(out) == {a.device_id, b.device_id, security.SERVER_ACCOUNT}
    # Mosquitto accepts the written config (listener, storage and log replaced by the test broker's own).
    real = stack_factory(base_config=conf, security_dir=out).broker
    ok = Raw(real.port, "x", *creds(b))
    anon = Raw(real.port, "y")
    raws += [ok, anon]
    assert ok.accepted and not anon.accepted
    assert ok.publish(topics.device_up(a.device_id), b"x") == NOT_AUTHORIZED


def test_tls_devices_verify_the_broker_and_the_server_delivers(stack_factory, tmp_path: Path, raws: list[Raw]) -> None:  # type: ignore[no-untyped-def]
    ca_dir = tmp_path / "ca"
    ca = init_ca(ca_dir)
    crt, key = server_cert(ca_dir, ["127.0.0.1", "localhost"])
    tls = [f"cafile {ca}", f"certfile {crt}", f"keyfile {key}", "tls_version tlsv1.2"]
    s: Stack = stack_factory(secure=True, persistence=True, extra_config=tls)
    s.server.argv += ["--mqtt-ca", str(ca)]
    s.server.start_and_wait()
    (dev,) = s.add_devices(1)
    # A bundle provisioned with --ca carries the CA and uses TLS.
    done = fe_server("devices", "add", *s.server.db_args, "--model", "qr_terminal", "--agency", "AG-TEST", "--out", str(tmp_path / "b"), "--ca", str(ca))
    assert done.returncode == 0, done.stderr
    bundle = next((tmp_path / "b").iterdir())
    cfg = load_device_config(bundle / "device.toml")
    assert cfg.mqtt.ca_file == "ca.crt" and (bundle / "ca.crt").read_bytes() == ca.read_bytes()
    write_config(dev.config_path, tune(load_device_config(dev.config_path), {"mqtt__ca_file": str(ca)}))
    dev.start()
    submit(dev)
    assert_exactly_once(s.server.db, [dev])
    # Plain TCP gets nowhere; the right CA does.
    plain = Raw(s.broker.port, "p", *creds(dev))
    right = Raw(s.broker.port, "r", *creds(dev), ca=ca)
    raws += [plain, right]
    assert not plain.accepted and right.accepted
    # A device trusting only the project CA refuses a broker with another CA's certificate, or one whose
    # certificate is not for the host it dialled (paho's tls_set checks both, as this context does).
    handshake(s.broker.port, ca, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(s.broker.port, init_ca(tmp_path / "other"), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="match|mismatch"):
        handshake(s.broker.port, ca, "broker.example")


def test_client_certificates_can_be_required(stack_factory, tmp_path: Path, raws: list[Raw]) -> None:  # type: ignore[no-untyped-def]
    """With require_certificate + use_identity_as_username, the certificate's CN is the account."""
    ca_dir = tmp_path / "ca"
    ca = init_ca(ca_dir)
    crt, key = server_cert(ca_dir, ["127.0.0.1"])
    tls = [f"cafile {ca}", f"certfile {crt}", f"keyfile {key}", "tls_version tlsv1.2", "require_certificate true", "use_identity_as_username true"]
    s: Stack = stack_factory(secure=True, persistence=True, extra_config=tls)
    server_dir = tmp_path / "server-cert"
    server_dir.mkdir()
    client_cert(ca_dir, security.SERVER_ACCOUNT, server_dir)
    s.server.argv += ["--mqtt-ca", str(ca), "--mqtt-cert", str(server_dir / "client.crt"), "--mqtt-key", str(server_dir / "client.key")]
    s.server.start_and_wait()
    (dev,) = s.add_devices(1)
    client_cert(ca_dir, dev.device_id, dev.bundle)
    cfg = load_device_config(dev.config_path)
    write_config(dev.config_path, msgspec.structs.replace(cfg, mqtt=msgspec.structs.replace(cfg.mqtt, ca_file=str(ca), cert_file="client.crt", key_file="client.key")))
    dev.start()
    submit(dev)
    assert_exactly_once(s.server.db, [dev])
    # Without a client certificate the TLS handshake fails: the device's password is not even asked.
    with pytest.raises(ssl.SSLError):
        handshake(s.broker.port, ca, "127.0.0.1")
    handshake(s.broker.port, ca, "127.0.0.1", cert=(dev.bundle / "client.crt", dev.bundle / "client.key"))
    # Another device's certificate makes the connection that device, never this one.
    (other,) = s.add_devices(1)
    client_cert(ca_dir, other.device_id, other.bundle)
    as_other = Raw(s.broker.port, dev.device_id, ca=ca, cert=(other.bundle / "client.crt", other.bundle / "client.key"))
    raws.append(as_other)
    assert as_other.accepted and as_other.publish(topics.device_up(dev.device_id), b"x") == NOT_AUTHORIZED
    code, health = http_json(s.server.url + "/health")
    assert code == 200 and health["mqtt_connected"]


def test_a_device_registers_only_its_own_public_key(secure: Stack, tmp_path: Path) -> None:
    """The device makes its key pair; the server gets only the public key, and its events verify with it."""
    own = SigningKey.generate()  # made on the device: never passed to fe-server
    db = secure.server.db_args
    out = secure.workdir / "devices"
    bad = fe_server("devices", "add", *db, "--model", "body_recorder", "--agency", "AG-TEST", "--id", "BR-OWN", "--out", str(out), "--public-key", "zz")
    assert bad.returncode == 1 and "--public-key" in bad.stderr and not (out / "BR-OWN").exists()
    reloads = secure.broker.reloads
    done = fe_server(
        "devices", "add", *db, "--model", "body_recorder", "--agency", "AG-TEST", "--id", "BR-OWN", "--out", str(out),
        "--mqtt-port", str(secure.broker.port), "--public-key", own.public_hex,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    secure.broker.wait_reloaded(reloads)
    bundle = out / "BR-OWN"
    assert not (bundle / "device.key").exists()
    own.save(bundle / "device.key")  # the device puts its own key beside the bundle's config
    write_config(bundle / "device.toml", tune(load_device_config(bundle / "device.toml"), {"local_api__port": 0, "delivery__resend_after_s": 1.0}))
    dev = DeviceRun("BR-OWN", bundle)
    secure.devices.append(dev)
    dev.start()
    submit(dev)
    assert_exactly_once(secure.server.db, [dev])


def test_broker_config_with_tls_and_client_certificates_runs(stack_factory, tmp_path: Path, raws: list[Raw]) -> None:  # type: ignore[no-untyped-def]
    """`fe-server broker-config --tls CA --require-certificate`: the listener Mosquitto runs checks both sides."""
    s: Stack = stack_factory(secure=True, persistence=True)
    (dev,) = s.add_devices(1)
    ca_dir = tmp_path / "ca"
    for argv in (["ca", "init", "--dir", str(ca_dir)], ["ca", "server-cert", "--dir", str(ca_dir), "--host", "127.0.0.1"],
                 ["ca", "client-cert", "--dir", str(ca_dir), "--device", dev.device_id, "--out", str(dev.bundle)]):
        done = fe_server(*argv)
        assert done.returncode == 0, done.stderr
    done = fe_server("broker-config", *s.server.db_args, "--tls", str(ca_dir), "--require-certificate")
    assert done.returncode == 0 and "listener 8883 (TLS)" in done.stdout, done
    conf = (s.server.broker_dir / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf.splitlines() and "use_identity_as_username true" in conf.splitlines()
    real = stack_factory(base_config=conf, security_dir=s.server.broker_dir).broker
    ca = ca_dir / "ca.crt"
    with pytest.raises(ssl.SSLError):
        handshake(real.port, ca, "127.0.0.1")  # no client certificate
    mine = (dev.bundle / "client.crt", dev.bundle / "client.key")
    handshake(real.port, ca, "127.0.0.1", cert=mine)
    as_dev = Raw(real.port, "anything", ca=ca, cert=mine)
    raws.append(as_dev)
    assert as_dev.accepted and f"as {dev.device_id} (p5" in real.log_text()  # the certificate's CN is the account
    assert as_dev.publish(topics.device_up(dev.device_id), b"x") in (0, 0x10)
    assert as_dev.publish(topics.device_up("BR-99999"), b"x") == NOT_AUTHORIZED
