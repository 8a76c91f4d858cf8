"""`fe-server demo-seed` and `fe-agent simulate`: the demo's devices scan real codes and inspect."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from tests.system.conftest import Stack
from tests.system.harness import ROOT, _env

pytestmark = pytest.mark.system


def test_simulated_district(stack: Stack) -> None:
    stack.server.start_and_wait()
    db = stack.server.db_path
    devices = stack.workdir / "devices"
    for model, agency, count in (("qr_terminal", "market-regulation", 2), ("phone", "emergency-management", 1), ("body_recorder", "market-regulation", 1)):
        out = subprocess.run(
            [sys.executable, "-m", "server.cli", "devices", "add", "--db", str(db), "--model", model, "--agency", agency, "--count", str(count),
             "--out", str(devices), "--mqtt-port", str(stack.broker.port)],
            capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    seeded = subprocess.run([sys.executable, "-m", "server.cli", "demo-seed", "--db", str(db), "--devices", str(devices), "--enterprises", "30"],
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
    con = sqlite3.connect(db)
    try:
        stored = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert stored == summary["accepted"] + con.execute("SELECT COUNT(*) FROM events WHERE type IN ('provisional_decision', 'device_status')").fetchone()[0]
        assert con.execute("SELECT COUNT(*) FROM scans WHERE channel = 'terminal' AND code LIKE 'code_%'").fetchone()[0] == 0  # every door code verified
        assert con.execute("SELECT COUNT(*) FROM inspections").fetchone()[0] > 0
        bad = con.execute("SELECT kind, message_en FROM alerts WHERE kind IN ('inspection_without_scan', 'unknown_inspection')").fetchall()
        assert bad == []
        assert con.execute("SELECT COUNT(*) FROM events WHERE device_id LIKE 'BR-%' AND type = 'media_captured'").fetchone()[0] > 0
    finally:
        con.close()
