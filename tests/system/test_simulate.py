"""`fe-server demo-seed` and `fe-agent simulate`: the demo's devices scan real codes and inspect, on both backends
(the demo as a whole: every subcommand it needs over a PostgreSQL URL too)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server.db import reading
from server.storage.engine import sql
from tests.system.conftest import Stack
from tests.system.harness import ROOT, _env

pytestmark = pytest.mark.system


_COUNT_EVENTS = sql("SELECT count(*) FROM events")
_COUNT_SERVER_SIDE = sql("SELECT count(*) FROM events WHERE type IN ('provisional_decision', 'device_status')")
#: Terminal scans refused for their door code (code_altered, code_not_ours, ...): the demo's codes all verify.
_COUNT_BAD_CODES = sql("SELECT count(*) FROM scans WHERE channel = 'terminal' AND code LIKE 'code_%'")
_COUNT_INSPECTIONS = sql("SELECT count(*) FROM inspections")
_BAD_ALERTS = sql("SELECT kind, message_en FROM alerts WHERE kind IN ('inspection_without_scan', 'unknown_inspection') ORDER BY id")
_COUNT_RECORDINGS = sql("SELECT count(*) FROM events WHERE device_id LIKE 'BR-%' AND type = 'media_captured'")


def test_simulated_district(any_stack: Stack) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    db = stack.server.db_args
    devices = stack.workdir / "devices"
    for model, agency, count in (("qr_terminal", "market-regulation", 2), ("phone", "emergency-management", 1), ("body_recorder", "market-regulation", 1)):
        out = subprocess.run(
            [sys.executable, "-m", "server.cli", "devices", "add", *db, "--model", model, "--agency", agency, "--count", str(count),
             "--out", str(devices), "--mqtt-port", str(stack.broker.port)],
            capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    seeded = subprocess.run([sys.executable, "-m", "server.cli", "demo-seed", *db, "--devices", str(devices), "--enterprises", "30"],
                            capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    out = json.loads(seeded.stdout)
    assert (out["devices"], out["enterprises"]) == (4, 30) and "supervisor" in out["users"]
    sim = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "simulate", str(devices), "--rate", "20", "--events", "25", "--duration", "90", "--mqtt-port", str(stack.broker.port)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=180,
    )
    assert sim.returncode == 0, sim.stderr[-3000:]
    summary = json.loads(sim.stdout.strip().splitlines()[-1])
    assert summary["devices"] == 4 and summary["unreceipted"] == 0 and summary["refused"] == 0
    assert summary["scan_decisions"].get("allowed", 0) > 0
    with reading(stack.server.db) as tx:
        assert tx.scalar(_COUNT_EVENTS) == summary["accepted"] + tx.scalar(_COUNT_SERVER_SIDE)
        assert tx.scalar(_COUNT_BAD_CODES) == 0  # every door code verified
        assert tx.scalar(_COUNT_INSPECTIONS) > 0
        assert tx.all(_BAD_ALERTS) == []
        assert tx.scalar(_COUNT_RECORDINGS) > 0
