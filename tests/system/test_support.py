"""The system-test tools work, and what they show about Mosquitto 2.0.11 (real broker, real paho clients).

Also checks that the shipped server/broker/mosquitto.conf is accepted by Mosquitto and does what it says.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion, MQTTMessage, MQTTv5, MQTTv311
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support import Broker, TcpProxy, wait_for
from tests.support.broker import mosquitto_children

pytestmark = pytest.mark.system

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "server" / "broker" / "mosquitto.conf"
_ids = itertools.count()


class Client:
    """A paho-mqtt 2.x client running its network loop in a thread, recording what happens to it."""

    def __init__(
        self,
        client_id: str | None = None,
        *,
        protocol: int = MQTTv5,
        clean: bool = True,
        session_expiry: int | None = None,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client_id = client_id or f"test-{next(_ids)}"
        self.protocol = protocol
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,  # type: ignore[arg-type]
            clean_session=None if protocol == MQTTv5 else clean,
        )
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)  # type: ignore[arg-type]
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connects: list[tuple[bool, ReasonCode]] = []  # (session_present, reason) per CONNACK
        self.disconnects: list[ReasonCode] = []
        self.messages: list[MQTTMessage] = []
        self.subacks: list[list[ReasonCode]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connects.append((flags.session_present, reason_code))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.disconnects.append(reason_code)

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        self.messages.append(message)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        self.subacks.append(reason_codes)

    @property
    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]

    @property
    def session_present(self) -> bool:
        return self.connects[-1][0]

    def connect(self, host: str, port: int, *, wait: bool = True) -> Client:
        properties = None
        if self.protocol == MQTTv5 and self.session_expiry is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry
        clean_start = self.clean if self.protocol == MQTTv5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        # connect_async + loop_start: the loop thread connects, and keeps reconnecting after failures.
        self.client.connect_async(host, port, self.keepalive, clean_start=clean_start, properties=properties)
        self.client.loop_start()
        if wait:
            wait_for(lambda: self.client.is_connected(), 5, message=f"{self.client_id} did not connect to {port}")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        before = len(self.subacks)
        self.client.subscribe(topic, qos)
        wait_for(lambda: len(self.subacks) > before, 5, message=f"no SUBACK for {topic}")
        assert all(not rc.is_failure for rc in self.subacks[-1]), self.subacks[-1]

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos)
        if wait:
            info.wait_for_publish(5)
            assert info.is_published(), f"{topic}: not acknowledged"
        return info

    def close(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()  # noqa: SLF001 - close now rather than at garbage collection


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    """``clients(client_id=None, **kwargs) -> Client`` (not yet connected); all closed at teardown."""
    made: list[Client] = []

    def make(client_id: str | None = None, **kwargs: object) -> Client:
        c = Client(client_id, **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _marker_roundtrip(sub: Client, pub: Client, topic: str) -> list[bytes]:
    """Publish a marker and wait for it: the broker delivers queued messages first, so everything that was
    going to arrive before it has arrived. Returns the payloads received before the marker."""
    marker = f"marker-{time.monotonic_ns()}".encode()
    pub.publish(topic, marker)
    wait_for(lambda: marker in sub.payloads, 5, message=f"marker not received on {topic}")
    return sub.payloads[: sub.payloads.index(marker)]


# --- Broker -----------------------------------------------------------------------------------------


def test_wait_for_returns_the_value_and_times_out_with_message_and_last_value() -> None:
    assert wait_for(lambda: 42, 1) == 42
    values = iter(range(1000))
    with pytest.raises(AssertionError, match=r"timed out after 0.2 s: never ready \(last value: 0\)"):
        wait_for(lambda: 0 * next(values), 0.2, interval=0.01, message="never ready")

    def boom() -> bool:
        raise ValueError("not yet")

    with pytest.raises(AssertionError, match=r"last exception: ValueError: not yet"):
        wait_for(boom, 0.1, message=lambda: "computed message")


def test_pub_sub_through_private_broker(broker: Broker, clients: Callable[..., Client]) -> None:
    assert broker.is_running and broker.port != 1883 and broker.host == "127.0.0.1"
    sub = clients().connect(broker.host, broker.port)
    sub.subscribe("fe/test/#")
    pub = clients(protocol=MQTTv311).connect(broker.host, broker.port)
    for i in range(3):
        pub.publish(f"fe/test/{i}", f"hello {i}".encode())
    wait_for(lambda: len(sub.messages) == 3, 5, message=lambda: f"got {sub.payloads}")
    assert sub.payloads == [b"hello 0", b"hello 1", b"hello 2"]
    assert "mosquitto version 2.0.11 running" in broker.log_text()
    assert f"listen socket on port {broker.port}." in broker.log_text()


def test_kill_then_restart_on_the_same_port(broker: Broker, clients: Callable[..., Client]) -> None:
    port, first_pid = broker.port, broker.pid
    c = clients().connect(broker.host, broker.port)
    broker.kill()
    assert not broker.is_running and broker.pid is None
    wait_for(lambda: c.disconnects, 5, message="client did not notice the kill")
    broker.restart()
    assert broker.is_running and broker.port == port and broker.pid != first_pid
    # The client's automatic reconnect reaches the new process on the same port.
    wait_for(lambda: len(c.connects) == 2 and c.client.is_connected(), 5, message="client did not reconnect")
    broker.stop()
    assert not broker.is_running
    broker.restart(persistence=False)
    assert broker.persistence is False and "persistence false" in broker.config_path.read_text()
    assert broker.starts == 3


def test_start_waits_for_a_busy_port(broker_factory: Callable[..., Broker]) -> None:
    b = broker_factory(start=False, start_timeout=5)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((b.host, b.port))
    holder.listen()
    release = threading.Timer(0.5, holder.close)
    release.start()
    try:
        b.start()
    finally:
        release.join()
        holder.close()
    assert b.is_running and "Address already in use" in b.log_text()
    b.kill()
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with busy:
        busy.bind((b.host, b.port))
        busy.listen()
        b.start_timeout = 0.5
        with pytest.raises(RuntimeError, match=f"port {b.port} still in use after 0.5 s"):
            b.restart()


def test_start_failure_raises_with_the_log(broker_factory: Callable[..., Broker]) -> None:
    bad = broker_factory(start=False, extra_config=["no_such_option 1"])
    with pytest.raises(RuntimeError, match=r"exited with status \d+ while starting(.|\n)*no_such_option"):
        bad.start()
    assert not bad.is_running


def test_broker_factory_makes_independent_brokers(broker_factory: Callable[..., Broker]) -> None:
    a = broker_factory()
    b = broker_factory(persistence=False, max_queued_messages=5, autosave_on_changes=True, autosave_interval=7)
    assert a.port != b.port and a.directory != b.directory
    conf = b.config_text()
    for line in ("persistence false", "max_queued_messages 5", "autosave_on_changes true", "autosave_interval 7",
                 f"listener {b.port} 127.0.0.1", "allow_anonymous true"):
        assert line in conf.splitlines()
    assert "max_queued_messages" not in a.config_text()
    assert sorted(mosquitto_children()) == sorted([a.pid, b.pid])


def test_context_manager_cleans_up() -> None:
    with Broker() as b:
        pid, directory = b.pid, b.directory
        assert b.is_running and pid in mosquitto_children()
    assert not b.is_running and pid not in mosquitto_children() and not directory.exists()


# --- What Mosquitto does with acknowledged messages when it dies ---------------------------------------


def _offline_session_with_acked_messages(
    broker: Broker, clients: Callable[..., Client], protocol: int, n: int = 5
) -> tuple[str, list[bytes]]:
    """A persistent-session subscriber goes offline; a publisher then gets PUBACKs for ``n`` QoS 1 messages."""
    sub_id = f"durable-sub-{protocol}"
    sub = clients(sub_id, protocol=protocol, clean=False, session_expiry=3600).connect(broker.host, broker.port)
    sub.subscribe("fe/durable", qos=1)
    sub.close()
    pub = clients(protocol=protocol).connect(broker.host, broker.port)
    payloads = [f"event {i}".encode() for i in range(n)]
    for p in payloads:
        pub.publish("fe/durable", p, qos=1)  # waits for the PUBACK
    pub.close()
    return sub_id, payloads


@pytest.mark.parametrize("protocol", [MQTTv5, MQTTv311], ids=["v5", "v311"])
def test_sigkill_loses_acknowledged_messages_and_sessions(
    broker: Broker, clients: Callable[..., Client], protocol: int
) -> None:
    """The trap: PUBACK means "in memory", not "on disk". With the default autosave_interval (1800 s),
    SIGKILL loses the persistent session and every message queued for it."""
    assert broker.persistence and broker.autosave_interval == 1800
    sub_id, _ = _offline_session_with_acked_messages(broker, clients, protocol)
    broker.kill()
    assert not broker.db_path.exists()  # nothing was ever saved
    broker.restart()
    sub = clients(sub_id, protocol=protocol, clean=False, session_expiry=3600).connect(broker.host, broker.port)
    assert sub.session_present is False
    # The subscription is gone too: subscribe again, then a marker proves nothing else is coming.
    sub.subscribe("fe/durable", qos=1)
    pub = clients(protocol=protocol).connect(broker.host, broker.port)
    assert _marker_roundtrip(sub, pub, "fe/durable") == []


@pytest.mark.parametrize("protocol", [MQTTv5, MQTTv311], ids=["v5", "v311"])
def test_graceful_stop_saves_sessions_and_messages(
    broker: Broker, clients: Callable[..., Client], protocol: int
) -> None:
    sub_id, payloads = _offline_session_with_acked_messages(broker, clients, protocol)
    broker.stop()  # SIGTERM: Mosquitto saves its database on the way out
    assert broker.db_path.exists()
    assert "Saving in-memory database" in broker.log_text()
    broker.restart()
    sub = clients(sub_id, protocol=protocol, clean=False, session_expiry=3600).connect(broker.host, broker.port)
    assert sub.session_present is True
    wait_for(lambda: len(sub.messages) >= len(payloads), 5, message=lambda: f"got {sub.payloads}")
    assert sub.payloads == payloads
    assert all(m.qos == 1 for m in sub.messages)


def test_messages_saved_by_autosave_survive_sigkill(
    broker_factory: Callable[..., Broker], clients: Callable[..., Client]
) -> None:
    """A short time-based autosave_interval narrows the window: once a save has happened after the PUBACKs,
    SIGKILL no longer loses them."""
    broker = broker_factory(autosave_interval=1)  # saves when more than 1 s has passed: every ~2 s
    sub_id, payloads = _offline_session_with_acked_messages(broker, clients, MQTTv5)
    # Mosquitto writes mosquitto.db.new and renames it, so once the file holds the last payload, the save
    # that follows the PUBACKs is complete.
    wait_for(lambda: broker.db_path.exists() and payloads[-1] in broker.db_path.read_bytes(), 5,
             message="no autosave after the publishes")
    assert "Saving in-memory database" in broker.log_text()
    broker.kill()
    broker.restart()
    sub = clients(sub_id, clean=False, session_expiry=3600).connect(broker.host, broker.port)
    assert sub.session_present is True
    wait_for(lambda: len(sub.messages) >= len(payloads), 5, message=lambda: f"got {sub.payloads}")
    assert sub.payloads == payloads


def test_default_queue_limit_drops_silently(broker: Broker, clients: Callable[..., Client]) -> None:
    """Mosquitto's default max_queued_messages (1000): beyond it, PUBACKed messages for an offline
    persistent session are discarded without telling anyone."""
    sub = clients("slow-sub", clean=False, session_expiry=3600).connect(broker.host, broker.port)
    sub.subscribe("fe/queue", qos=1)
    sub.close()
    pub = clients().connect(broker.host, broker.port)
    infos = [pub.publish("fe/queue", str(i).encode(), qos=1, wait=False) for i in range(1200)]
    wait_for(lambda: all(i.is_published() for i in infos), 10, message="not every publish was acknowledged")
    sub = clients("slow-sub", clean=False, session_expiry=3600).connect(broker.host, broker.port)
    assert sub.session_present
    wait_for(lambda: len(sub.messages) >= 1000, 10, message=lambda: f"only {len(sub.messages)} arrived")
    received = _marker_roundtrip(sub, pub, "fe/queue")
    assert len(received) == 1000, len(received)
    assert received == [str(i).encode() for i in range(1000)]  # the oldest are kept, the rest dropped


# --- Proxy ------------------------------------------------------------------------------------------


def test_messages_flow_through_the_proxy(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    assert proxy.port not in (None, broker.port)
    sub = clients().connect(*proxy.address)
    sub.subscribe("fe/proxy")
    pub = clients().connect(broker.host, broker.port)
    pub.publish("fe/proxy", b"x" * 100_000)
    wait_for(lambda: sub.messages, 5, message="nothing arrived through the proxy")
    assert sub.payloads == [b"x" * 100_000]
    # the proxy counts a chunk after sending it, so the subscriber may have the message before the count is made
    wait_for(lambda: proxy.bytes_down > 100_000 and proxy.bytes_up > 0, 5, message=lambda: f"counted {proxy!r}")
    assert proxy.accepted == 1 and proxy.active_connections == 1


def test_cut_resets_connections_and_clients_reconnect(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    c = clients("cut-me", clean=False, session_expiry=600).connect(*proxy.address)
    c.subscribe("fe/cut")
    assert proxy.cut() == 1
    wait_for(lambda: c.disconnects, 5, message="on_disconnect did not fire after cut()")
    wait_for(lambda: len(c.connects) == 2 and c.client.is_connected(), 5, message="no reconnect after cut()")
    assert c.session_present  # the broker kept the session: the reset was only on the network
    assert proxy.cuts == 1 and proxy.accepted == 2
    pub = clients().connect(broker.host, broker.port)
    pub.publish("fe/cut", b"after cut")
    wait_for(lambda: c.payloads == [b"after cut"], 5, message=lambda: f"got {c.payloads}")


def test_stall_is_detected_by_keepalive_and_resume_recovers(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    keepalive = 2
    c = clients(keepalive=keepalive).connect(*proxy.address)
    c.subscribe("fe/stall")
    proxy.stall()
    stalled_at = time.monotonic()
    wait_for(lambda: c.disconnects, 2 * keepalive + 2, message="a stalled link was not detected")
    detected_after = time.monotonic() - stalled_at
    assert keepalive * 0.9 <= detected_after <= 2 * keepalive + 1.5, detected_after
    assert proxy.active_connections >= 1  # the proxy never closed anything: the client gave up
    proxy.resume()
    wait_for(lambda: len(c.connects) >= 2 and c.client.is_connected(), 5, message="no reconnect after resume()")
    c.subscribe("fe/stall")
    pub = clients().connect(broker.host, broker.port)
    pub.publish("fe/stall", b"after stall")
    wait_for(lambda: b"after stall" in c.payloads, 5, message=lambda: f"got {c.payloads}")


def test_stall_holds_bytes_and_resume_delivers_them(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    sub = clients().connect(broker.host, broker.port)
    sub.subscribe("fe/held")
    pub = clients().connect(*proxy.address)
    proxy.stall()
    up_before = proxy.bytes_up
    info = pub.publish("fe/held", b"held", qos=0, wait=False)
    wait_for(info.is_published, 5, message="paho did not write the message")
    assert proxy.bytes_up == up_before  # written by paho, held by the stalled proxy
    assert pub.client.is_connected()
    proxy.resume()
    wait_for(lambda: sub.payloads == [b"held"], 5, message=lambda: f"got {sub.payloads}")
    assert proxy.bytes_up > up_before


def test_new_connections_while_stalled_are_accepted_but_not_forwarded(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    proxy.stall()
    c = clients().connect(*proxy.address, wait=False)
    wait_for(lambda: proxy.active_connections == 1, 5, message="connection not accepted while stalled")
    assert not c.connects and proxy.bytes_up == 0
    proxy.resume()
    wait_for(lambda: c.client.is_connected(), 5, message="CONNECT held during the stall did not go through")


def test_refusing_emulates_network_down(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    proxy.set_refusing(True)
    c = clients().connect(*proxy.address, wait=False)
    wait_for(lambda: proxy.refused >= 2, 5, message="connection attempts were not refused")
    assert not c.connects
    proxy.set_refusing(False)
    wait_for(lambda: c.client.is_connected(), 5, message="no connection once the network is back")
    assert proxy.accepted == 1


def test_proxy_to_a_dead_broker_resets_clients(
    broker: Broker, proxy_factory: Callable[..., TcpProxy], clients: Callable[..., Client]
) -> None:
    proxy = proxy_factory(broker.host, broker.port)
    c = clients().connect(*proxy.address)
    broker.kill()
    wait_for(lambda: c.disconnects, 5, message="client did not notice the broker's death through the proxy")
    wait_for(lambda: proxy.refused >= 1, 5, message="reconnects to a dead broker were not reset")
    broker.restart()
    wait_for(lambda: c.client.is_connected(), 5, message="no reconnect through the proxy after restart")


def test_proxy_close_is_clean_and_idempotent(broker: Broker, clients: Callable[..., Client]) -> None:
    with TcpProxy(broker.host, broker.port) as proxy:
        c = clients().connect(*proxy.address)
        proxy.stall()
    wait_for(lambda: c.disconnects, 5, message="client not disconnected by proxy close")
    proxy.close()
    with pytest.raises(RuntimeError, match="not running"):
        proxy.cut()


# --- The shipped config ------------------------------------------------------------------------------


def test_shipped_mosquitto_conf_starts(broker_factory: Callable[..., Broker], clients: Callable[..., Client], tmp_path: Path) -> None:
    """server/broker/mosquitto.conf is accepted by Mosquitto 2.0.11 (only its listener, storage, log and credential
    file lines are replaced), and its queue and size limits do what its comments say."""
    from server.broker.access import SERVER_ACCOUNT, add_accounts, prepare, server_password

    text = SHIPPED_CONF.read_text()
    security = tmp_path / "security"
    prepare(security)
    add_accounts(security, {"dev-1": "dev-1-password"})
    server_login = {"username": SERVER_ACCOUNT, "password": server_password(security)}
    device_login = {"username": "dev-1", "password": "dev-1-password"}
    broker = broker_factory(base_config=text, security_dir=security)
    conf = broker.config_text()
    for line in ("allow_anonymous false", "use_username_as_clientid true", "per_listener_settings false"):
        assert line in text.splitlines() and line in conf.splitlines(), line
    assert "allow_anonymous true" not in conf.splitlines()
    for line in ("persistence true", "autosave_interval 10", "max_queued_messages 1000000",
                 "max_queued_bytes 1073741824", "max_inflight_messages 20", "max_packet_size 66560",
                 "persistent_client_expiration 14d", "autosave_on_changes false"):
        assert line in text.splitlines() and line in conf.splitlines(), line
    assert "listener 1883" in text.splitlines() and "listener 1883" not in conf
    out = broker.output_text()
    assert "Error" not in out and "message_size_limit" not in out, out

    # More than the default 1000 messages are queued for an offline persistent session.
    sub = clients("server", clean=False, session_expiry=3600, **server_login).connect(broker.host, broker.port)
    sub.subscribe("fe/v1/dev/+/up", qos=1)
    sub.close()
    pub = clients("dev-1", **device_login).connect(broker.host, broker.port)
    infos = [pub.publish("fe/v1/dev/dev-1/up", str(i).encode(), qos=1, wait=False) for i in range(1500)]
    wait_for(lambda: all(i.is_published() for i in infos), 10, message="not every publish was acknowledged")
    sub = clients("server", clean=False, session_expiry=3600, **server_login).connect(broker.host, broker.port)
    assert sub.session_present
    wait_for(lambda: len(sub.messages) >= 1500, 10, message=lambda: f"only {len(sub.messages)} of 1500 arrived")
    assert sub.payloads == [str(i).encode() for i in range(1500)]

    # A payload just over the protocol's 64 KiB still reaches the subscriber (the server refuses it itself)...
    over = b"y" * (64 * 1024 + 1)
    pub.publish("fe/v1/dev/dev-1/up", over)
    wait_for(lambda: len(sub.messages) == 1501, 5, message="65 KiB message not delivered")
    assert sub.payloads[-1] == over
    # ...but a packet over max_packet_size costs the sender its connection, and is not delivered.
    # (QoS 0 here: paho would resend an unacknowledged QoS 1 message after reconnecting, and be
    # disconnected again, for ever.)
    pub.publish("fe/v1/dev/dev-1/up", b"z" * 200_000, qos=0, wait=False)
    wait_for(lambda: pub.disconnects, 5, message="oversized packet did not disconnect the publisher")
    assert pub.disconnects[0].value == 0x95, pub.disconnects[0]  # DISCONNECT "Packet too large" (v5)
    wait_for(lambda: len(pub.connects) == 2 and pub.client.is_connected(), 5, message="publisher did not reconnect")
    assert _marker_roundtrip(sub, pub, "fe/v1/dev/dev-1/up")[-1] == over
