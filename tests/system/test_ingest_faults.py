"""The ingest under hostile input and storage faults, with a real Mosquitto and real processes.

- Junk is bounded: messages of 4 MB grow the server's database by a few KiB each (when a broker lets them
  through at all: the shipped configuration refuses them).
- A full disk pauses the ingest (health "degraded", the broker and the outboxes keep the messages) and it
  resumes by itself when space returns; no restart, nothing lost, nothing twice.
- A publish cut off mid-way through a proxy is never stored in part; the device resends it and it is
  stored once.

These run on SQLite only: the junk tests measure the SQLite file's growth, the full disk is a full partition under
the SQLite file, and the cut publish is the broker's and the agent's concern (what the server stores of it is read
through the seam all the same).
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from protocol import topics
from server.evidence.keys import load_or_create_server_key
from server.storage.engine import sql
from server.ingest.store import REJECTED_PREFIX_BYTES
from tests.server.conftest import seed_users
from tests.support.proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import DeviceRun, assert_exactly_once, http_json, read_all, server_events, write

pytestmark = pytest.mark.system

SHIPPED_CONF = Path(__file__).resolve().parents[2] / "server" / "broker" / "mosquitto.conf"
JUNK_BYTES = 4 * 1024 * 1024


def scan_fields(n: int = 0) -> dict[str, str]:
    return {"officer_id": "OFF-1", "code_text": f"FE1:junk-test-{n}"}


_REJECTED_KEPT = sql("SELECT size, raw, sha256 FROM rejected ORDER BY id")
_REJECTED_COUNTS = sql("SELECT reason_code, count FROM rejected_counts ORDER BY reason_code")


def db_bytes(path: Path) -> int:
    """The SQLite database's size with its WAL folded in."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return path.stat().st_size


class Publisher:
    """A raw MQTT v5 client (the test's superuser on a secure broker) that records how its connection ends."""

    def __init__(self, stack: Stack, host: str, port: int) -> None:
        self.disconnects: list[int] = []
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"junk-{uuid.uuid4().hex[:6]}", protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.append(rc.value)
        if stack.secure:
            self.client.username_pw_set(*stack.superuser())
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(host, port)
        self.client.loop_start()
        wait_for(self.client.is_connected, 10, message="junk publisher did not connect")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- oversize and junk


def test_junk_of_4_mb_reaching_the_server_grows_its_database_by_a_prefix_each(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(persistence=True)  # a broker without the shipped size limit: the server's own bound
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    before = db_bytes(stack.server.db_path)
    pub = Publisher(stack, stack.broker.host, stack.broker.port)
    try:
        for i in range(20):
            pub.client.publish(topics.device_up(dev.device_id), bytes([0x7B]) + os.urandom(JUNK_BYTES - 1), qos=1).wait_for_publish(30)
    finally:
        pub.close()
    wait_for(lambda: stack.server.metric("fe_messages_rejected_total", 'reason="oversized"') == 20, 60, message="not every junk message was refused")
    grown = db_bytes(stack.server.db_path) - before
    assert grown < 5 * 1024 * 1024, grown
    code, rows = http_json(stack.server.url + "/health")
    assert code == 200, rows
    kept = [(size, len(raw), len(sha256)) for size, raw, sha256 in read_all(stack.server.db, _REJECTED_KEPT)]
    assert kept == [(JUNK_BYTES, REJECTED_PREFIX_BYTES, 64)] * 20
    assert read_all(stack.server.db, _REJECTED_COUNTS) == [("oversized", 20)]
    # and the ingest goes on
    dev.start()
    assert dev.submit("enterprise_scanned", scan_fields(), str(uuid.uuid4()))[0] == 202
    assert_exactly_once(stack.server.db, [dev])


def test_the_shipped_broker_config_refuses_junk_of_4_mb(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(base_config=SHIPPED_CONF.read_text(), secure=True)  # the shipped file refuses anonymous clients
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    before = db_bytes(stack.server.db_path)
    for _ in range(20):  # each costs the sender its connection
        pub = Publisher(stack, stack.broker.host, stack.broker.port)
        try:
            pub.client.publish(topics.device_up(dev.device_id), b"{" + b"x" * (JUNK_BYTES - 1), qos=0)
            wait_for(lambda pub=pub: pub.disconnects, 10, message="the broker did not refuse a 4 MB publish")
            assert pub.disconnects[0] >= 0x80  # 0x95 "Packet too large", or the socket closed under a 4 MB write
        finally:
            pub.close()
    dev.start()
    assert dev.submit("enterprise_scanned", scan_fields(), str(uuid.uuid4()))[0] == 202
    assert_exactly_once(stack.server.db, [dev])  # the server took what came after, and no junk at all
    assert stack.server.metric("fe_messages_rejected_total", 'reason="oversized"') == 0
    assert db_bytes(stack.server.db_path) - before < 1024 * 1024
    assert stack.broker.log_text().count("disconnected due to oversize packet") == 20


# --------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs of our own, unmounted at the end (needs root, as scripts/test.sh runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file keeps what the last write could not place and fails again at close.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


class Pump:
    """Submits events to devices from a thread until stopped; the agents accept them into their outboxes."""

    def __init__(self, devices: list[DeviceRun]) -> None:
        self.devices = devices
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for dev in self.devices:
                n += 1
                eid = str(uuid.uuid4())
                try:
                    dev.submit("enterprise_scanned", scan_fields(n), eid)
                except (OSError, http.client.HTTPException):  # killed mid-answer: a reset or a cut-short body
                    dev.submitted[eid] = -1
            self.stop.wait(0.01)  # a device's pace, not a wait for a condition

    def accepted(self) -> int:
        return sum(1 for d in self.devices for c in list(d.submitted.values()) if c == 202)

    def __enter__(self) -> Pump:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def health(stack: Stack) -> tuple[int, dict[str, object]]:
    return http_json(stack.server.url + "/health")


def test_a_full_disk_pauses_the_ingest_and_it_resumes_by_itself(stack: Stack, small_disk: Path) -> None:
    # The database lives on the small filesystem (SQLite follows the link and keeps its WAL beside the real file).
    # The server resolves the link, so what it keeps beside its database (key, broker account) links back.
    (small_disk / "server.db").touch()
    stack.server.db_path.symlink_to(small_disk / "server.db")
    key = stack.workdir / "server.db.server.key"
    load_or_create_server_key(key)
    (small_disk / key.name).symlink_to(key)
    if (stack.workdir / "server.db.broker").exists():
        (small_disk / "server.db.broker").symlink_to(stack.workdir / "server.db.broker")
    stack.server.start_and_wait()
    pid = stack.server.popen.pid  # type: ignore[union-attr]
    write(stack.server.db, lambda tx: seed_users(tx, []))
    devices = stack.add_devices(2)
    for dev in devices:
        dev.start()
    with Pump(devices) as pump:
        wait_for(lambda: stack.server.metric("fe_events_stored_total") >= 20, 30, message="nothing stored before the disk filled")
        filler = fill(small_disk)
        wait_for(lambda: health(stack)[0] == 503, 60, message=lambda: f"the server did not notice the full disk: {health(stack)}")
        code, body = health(stack)
        assert body["status"] == "degraded" and "full" in str(body["reason"]) and body["ingest_writer"] == "paused", body
        # Devices keep sending; the server takes no more than its in-flight window off the broker meanwhile.
        accepted = pump.accepted()
        received = stack.server.metric("fe_messages_received_total") + health(stack)[1]["ingest_queue"]  # type: ignore[operator]
        wait_for(lambda: pump.accepted() >= accepted + 100, 60, message="the devices stopped accepting")
        assert health(stack)[1]["status"] == "degraded"
        taken = stack.server.metric("fe_messages_received_total") + health(stack)[1]["ingest_queue"] - received  # type: ignore[operator]
        assert taken <= 50, taken  # not the 100+ events sent meanwhile: they wait at the broker and in the outboxes
        filler.unlink()  # space returns
        wait_for(lambda: health(stack)[0] == 200, 60, message=lambda: f"the ingest did not resume: {health(stack)}")
        wait_for(lambda: pump.accepted() >= accepted + 150, 60, message="the devices stopped accepting after the pause")
    assert_exactly_once(stack.server.db, devices, timeout=120)
    assert stack.server.running and stack.server.popen.pid == pid  # type: ignore[union-attr]  # no restart
    alerts = stack.server.api("/api/v1/alerts?kind=storage_full")
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical", alerts
    assert "磁盘已满" in alerts[0]["message_zh"] and "disk was full" in alerts[0]["message_en"]
    assert stack.server.metric("fe_ingest_storage_ok") == 1 and stack.server.metric("fe_ingest_storage_failures_total") >= 1


# --------------------------------------------------------------------------- truncation through the proxy


class CuttingProxy(TcpProxy):
    """The test proxy, forwarding the device's bytes in small fragments, and able to cut a connection after half of
    the next large write (a packet truncated mid-way, then FIN and RST): the faults of a bad mobile link."""

    def __init__(self, *args: object, fragment: int = 7, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.fragment = fragment
        self.cut_next_over: int | None = None  # arm: cut in the middle of the next upstream write larger than this
        self.truncated: list[int] = []  # how many bytes of each cut write went through

    def _send(self, pipe, sock) -> None:  # type: ignore[no-untyped-def]  # runs in the proxy thread
        buf = pipe.to_up if sock is pipe.upstream else pipe.to_down
        if sock is not pipe.upstream:
            return super()._send(pipe, sock)
        if self.cut_next_over is not None and len(buf) > self.cut_next_over:
            half = len(buf) // 2
            sock.setblocking(True)
            sock.sendall(bytes(buf[:half]))
            self.bytes_up += half
            self.cut_next_over = None
            self.truncated.append(half)
            sock.shutdown(socket.SHUT_WR)  # the broker reads half a packet, then the end of the stream
            raise OSError("cut by the test")  # the proxy resets both sides
        while buf:
            try:
                n = sock.send(buf[: self.fragment])
            except (BlockingIOError, InterruptedError):
                return
            del buf[:n]
            self.bytes_up += n
        return None


def test_a_publish_cut_mid_way_is_never_stored_in_part_and_fragments_are_fine(stack: Stack) -> None:
    stack.server.start_and_wait()
    with CuttingProxy(stack.broker.host, stack.broker.port) as proxy:
        (dev,) = stack.add_devices(1, mqtt_port=proxy.port)
        dev.start()  # everything the agent sends reaches the broker in 7-byte fragments
        ids = [str(uuid.uuid4()) for _ in range(3)]
        assert dev.submit("enterprise_scanned", scan_fields(1), ids[0])[0] == 202
        wait_for(lambda: len(server_events(stack.server.db, dev.device_id)) == 1, 30, message="a fragmented publish was not stored")
        accepted_before = proxy.accepted
        proxy.cut_next_over = 2000  # the next event is about 4 KiB: cut after half of it
        assert dev.submit("enterprise_scanned", {**scan_fields(2), "reason": "长" * 1000}, ids[1])[0] == 202
        wait_for(lambda: proxy.truncated, 20, message="the publish was not cut")
        assert dev.submit("enterprise_scanned", scan_fields(3), ids[2])[0] == 202
        wait_for(lambda: proxy.accepted > accepted_before, 30, message="the agent did not reconnect")
        assert_exactly_once(stack.server.db, [dev])  # the cut event was resent and stored once, in order
    assert [e for e, _ in server_events(stack.server.db, dev.device_id)] == ids
    assert 1000 < proxy.truncated[0] < 4000
    assert stack.server.metric("fe_messages_rejected_total", 'reason="undecodable"') == 0  # no part reached the server
    assert stack.server.metric("fe_messages_rejected_total", 'reason="bad_signature"') == 0
