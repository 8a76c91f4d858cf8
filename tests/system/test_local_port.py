"""Several agents on one machine: each bundle's local interface gets its own port, found by the CLI.

Bundles provisioned one at a time used to share the model's port 8470, so the second agent could not start.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from protocol.config import load_device_config
from server.evidence.keys import load_or_create_server_key
from server.rules.registry import provision
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, assert_exactly_once, tune, write_config

pytestmark = pytest.mark.system

#: Test-friendly timings; the local interface is left as provisioning wrote it.
TIMINGS = {"delivery__resend_after_s": 1.0, "delivery__resend_max_backoff_s": 4.0, "mqtt__keepalive_s": 5, "status__heartbeat_s": 3600.0}


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent.cli", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)


def provision_one(stack: Stack, device_id: str) -> DeviceRun:
    """`fe-server devices add` for one device, as an operator does it, one bundle at a time."""
    key = load_or_create_server_key(stack.server.server_key_path)
    reloads = stack.broker.reloads
    (p,) = provision(
        stack.server.db, key, model="body_recorder", agency_id="AG-TEST", out_dir=stack.workdir / "devices", device_id=device_id,
        mqtt_port=stack.broker.port, broker_dir=stack.server.broker_dir,
    )  # fmt: skip
    if stack.secure:
        stack.broker.wait_reloaded(reloads)
    path = p.bundle_dir / "device.toml"
    write_config(path, tune(load_device_config(path), TIMINGS))
    dev = DeviceRun(device_id, p.bundle_dir)
    stack.devices.append(dev)  # killed at teardown
    return dev


def test_two_bundles_provisioned_one_at_a_time_run_on_one_host(stack: Stack) -> None:
    stack.server.start_and_wait()
    first, second = provision_one(stack, "BR-HOST-1"), provision_one(stack, "BR-HOST-2")
    first.start()
    second.start()  # used to fail: both bundles said port 8470
    assert first.url != second.url
    for n, dev in enumerate((first, second)):
        event_id = f"host-event-{n:06d}"
        out = cli("submit", "--config", str(dev.config_path), "enterprise_scanned", "--json", json.dumps({"officer_id": "OFF-1", "code_text": "c"}), "--event-id", event_id)
        assert out.returncode == 0, out.stdout + out.stderr
        dev.submitted[event_id] = 202
    assert_exactly_once(stack.server.db, [first, second])
    for dev in (first, second):
        status = json.loads(cli("status", "--config", str(dev.config_path)).stdout)
        assert status["device_id"] == dev.device_id and status["outbox_depth"] == 0


def test_a_second_agent_on_the_same_bundle_is_refused(stack: Stack) -> None:
    stack.server.start_and_wait()
    dev = provision_one(stack, "BR-HOST-3")
    dev.start()
    again = cli("run", "--config", str(dev.config_path))
    assert again.returncode == 1
    assert "already running" in again.stderr and str(dev.proc.popen.pid) in again.stderr and "Traceback" not in again.stderr  # type: ignore[union-attr]
    assert dev.status()["connected"] is not None  # the first one runs on


def test_a_taken_fixed_port_fails_naming_the_port_and_the_key(stack: Stack) -> None:
    dev = provision_one(stack, "BR-HOST-4")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_config(dev.config_path, tune(load_device_config(dev.config_path), {"local_api__port": port}))
        out = cli("run", "--config", str(dev.config_path))
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr and "local_api.port" in out.stderr and "taken" in out.stderr and "Traceback" not in out.stderr
