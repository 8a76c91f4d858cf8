"""Revoking a device on a running server: its next event is refused at once, what came before stays stored.

Real Mosquitto, a real `fe-server run`, real `fe-agent run` processes, and the revocation made with the
`fe-server devices revoke` command line while the ingest runs (no restart, no signal to the server).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from protocol.codec import decode_device_body, open_envelope
from server.storage.engine import sql
from tests.support.backends import BACKENDS
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, read_all, server_events

pytestmark = pytest.mark.system

CODE_TEXT = "FE1:91110108MA01ABCD0X"


def fe_server(*argv: str) -> subprocess.CompletedProcess[str]:
    """`fe-server ARGS` as an operator runs it, in its own process."""
    return subprocess.run([sys.executable, "-m", "server.cli", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)


def submit(dev: DeviceRun) -> str:
    """One scan accepted by the device's agent (202); returns its event id."""
    eid = str(uuid.uuid4())
    code, body = dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": CODE_TEXT}, eid)
    assert code == 202, body
    return eid


_REJECTED = sql("SELECT topic, reason_code, reason, raw FROM rejected ORDER BY id")


def rejected_of(db: str, device_id: str) -> list[tuple[str, str, bytes]]:
    """(reason_code, reason, raw) of every message rejected on the device's topic, oldest first."""
    return [(code, reason, bytes(raw)) for topic, code, reason, raw in read_all(db, _REJECTED) if f"/{device_id}/" in topic]


def replay_from_outbox(stack: Stack, dev: DeviceRun, event_id: str) -> None:
    """Publish the device's signed envelope of ``event_id`` (from its outbox) as the test superuser."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from protocol import topics

    con = sqlite3.connect(f"file:{dev.outbox_path}?mode=ro", uri=True)
    try:
        (payload,) = con.execute("SELECT payload FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
    finally:
        con.close()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="replay", protocol=MQTTProtocolVersion.MQTTv5)
    c.username_pw_set(*stack.superuser())
    c.connect(stack.broker.host, stack.broker.port)
    c.loop_start()
    try:
        c.publish(topics.device_up(dev.device_id), bytes(payload), qos=1).wait_for_publish(timeout=10)
    finally:
        c.disconnect()
        c.loop_stop()


def stored_ids(db: str, device_id: str) -> list[str]:
    return [e for e, _ in server_events(db, device_id)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_revoking_a_device_on_a_running_server_refuses_its_next_event(stack_factory: Callable[..., Stack], backend: str) -> None:
    # A broker that still lets the device in (not told of the revocation, or not yet reloaded): the server's
    # own check is what is tested here; the secure broker's refusal is tested in test_broker_security.py.
    # On PostgreSQL the revocation is made by another process over another connection: no cache may hide it.
    stack = stack_factory(secure=False, persistence=True, backend=backend)
    stack.server.start_and_wait()
    victim, honest = stack.add_devices(2)
    victim.start()
    honest.start()
    db = stack.server.db
    before = [submit(victim) for _ in range(3)]
    wait_for(lambda: stored_ids(db, victim.device_id) == before and victim.status()["outbox_depth"] == 0, timeout=30)

    revoked = fe_server("devices", "revoke", *stack.server.db_args, victim.device_id)
    assert revoked.returncode == 0, revoked.stderr
    assert stack.server.running  # the ingest was neither restarted nor told

    after = submit(victim)
    if stack.secure:
        # The broker disconnected the device and refuses it from now on (test_broker_security.py). The
        # register refuses it too, whatever gets through: its stored event, replayed by an account the
        # broker lets through (as a misconfigured or compromised broker would).
        wait_for(lambda: not victim.status()["connected"], timeout=10, message="the revoked device is still connected")
        replay_from_outbox(stack, victim, after)
    # Each copy that reaches the server is kept aside with the reason (and never receipted).
    wait_for(lambda: rejected_of(db, victim.device_id), timeout=30, message=lambda: stack.server.log_tail())
    code, reason, raw = rejected_of(db, victim.device_id)[0]
    assert code == "unknown_device" and f"{victim.device_id!r} was revoked at " in reason
    fmt, envelope = open_envelope(raw)
    assert decode_device_body(envelope.body, fmt).event_id == after  # it is that event, kept with its bytes
    listed = [json.loads(line) for line in fe_server("rejected", *stack.server.db_args).stdout.splitlines()]
    assert any(r["reason_code"] == "unknown_device" and "revoked" in r["reason"] and victim.device_id in r["topic"] for r in listed)

    # Not stored, not receipted (the event stays in the device's outbox); what came before stays stored.
    assert stored_ids(db, victim.device_id) == before
    status = victim.status()
    assert status["outbox_depth"] == 1
    # The other device is not affected, and the ingest goes on.
    other = submit(honest)
    wait_for(lambda: other in stored_ids(db, honest.device_id), timeout=30)
    assert stored_ids(db, victim.device_id) == before
    assert victim.status()["outbox_depth"] == 1

    again = fe_server("devices", "revoke", *stack.server.db_args, victim.device_id)
    assert again.returncode == 1 and "already revoked" in again.stderr
