"""The command lines as a user runs them: provisioning, submitting, status, bad config files. Provisioning and
listing run on both backends; the agent's own database and the QR command on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.storage.engine import close_storage, sql
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, assert_exactly_once, read_all, server_events, write

pytestmark = pytest.mark.system
_BODY = sql("SELECT body_json FROM events WHERE event_id = :event_id")
_ENTERPRISE = sql("INSERT INTO enterprises(credit_code, name) VALUES (:code, :name)")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)


@pytest.mark.parametrize("module", ["server.cli", "edge_agent.cli"])
def test_help_explains_every_subcommand(module: str) -> None:
    out = run(module, "--help")
    assert out.returncode == 0
    for word in (["run", "devices", "gaps", "rejected", "key"] if module == "server.cli" else ["run", "submit", "status", "simulate", "check-config"]):
        assert word in out.stdout
    sub = run(module, "run", "--help").stdout
    assert "--mqtt-host" in sub and "--mqtt-port" in sub
    if module == "server.cli":
        assert "--db" in sub and "--http-port" in sub


def test_provision_submit_and_status_through_the_clis(any_stack: Stack, tmp_path: Path) -> None:
    stack = any_stack
    stack.server.start_and_wait()
    out = run("server.cli", "devices", "add", *stack.server.db_args, "--model", "qr_terminal", "--agency", "AG-1",
              "--id", "QT-CLI-1", "--out", str(tmp_path / "bundles"), "--mqtt-port", str(stack.broker.port))
    assert out.returncode == 0, out.stderr
    bundle = tmp_path / "bundles" / "QT-CLI-1"
    assert (bundle / "device.key").stat().st_mode & 0o077 == 0  # the private key is readable by its owner only
    text = (bundle / "device.toml").read_text().replace("port = 8470", "port = 0")
    (bundle / "device.toml").write_text(text)
    dev = DeviceRun("QT-CLI-1", bundle)
    stack.devices.append(dev)  # killed at teardown
    dev.start()
    sub = run("edge_agent.cli", "submit", "--config", str(dev.config_path), "enterprise_scanned",
              "--json", json.dumps({"officer_id": "OFF-7", "code_text": "FE1:91110108MA01ABCD0X"}), "--event-id", "cli-event-000001")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert json.loads(sub.stdout)["status"] == "accepted"
    dev.submitted["cli-event-000001"] = 202
    bad = run("edge_agent.cli", "submit", "--config", str(dev.config_path), "enterprise_scanned", "--json", '{"officer_id": 5}')
    assert bad.returncode == 1 and "officer_id" in bad.stdout
    assert_exactly_once(stack.server.db, [dev])
    status = json.loads(run("edge_agent.cli", "status", "--config", str(dev.config_path)).stdout)
    assert status["connected"] and status["outbox_depth"] == 0 and status["last_receipt_ms"]
    # the QR terminal model speaks MessagePack; the server stored it and answered in kind
    assert server_events(stack.server.db, "QT-CLI-1") == [("cli-event-000001", 1)]
    listed = [json.loads(line) for line in run("server.cli", "devices", "list", *stack.server.db_args).stdout.splitlines()]
    assert listed == [{"device_id": "QT-CLI-1", "model": "QT-310", "agency_id": "AG-1", "stored": 1, "max_seq": 1, "last_seen_ms": listed[0]["last_seen_ms"], "revoked_ms": None}]
    again = run("server.cli", "devices", "add", *stack.server.db_args, "--model", "qr_terminal", "--agency", "AG-1", "--id", "QT-CLI-1", "--out", str(tmp_path / "b2"))
    assert again.returncode == 1 and "already registered" in again.stderr


def test_bad_config_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "recorder.toml"
    cfg.write_text('model = "X"\nkind = "body_recorder"\n[mqtt]\nkepalive_s = 30\n')
    out = run("edge_agent.cli", "check-config", str(cfg))
    assert out.returncode == 1
    assert str(cfg) in out.stderr and "mqtt.kepalive_s" in out.stderr and "keepalive_s" in out.stderr
    cfg.write_text('model = "X"\nkind = "body_recorder"\n')  # valid, but a model file: no [identity]
    out = run("edge_agent.cli", "run", "--config", str(cfg))
    assert out.returncode == 1 and "[identity]" in out.stderr
    bundle = tmp_path / "device.toml"
    bundle.write_text(f'model = "X"\nkind = "body_recorder"\n[identity]\ndevice_id = "BR-1"\nagency_id = "A"\nserver_public_key = "{"ab" * 32}"\n')
    out = run("edge_agent.cli", "run", "--config", str(bundle))
    assert out.returncode == 1 and "device.key" in out.stderr and "Traceback" not in out.stderr


def test_unknown_model_is_refused(tmp_path: Path) -> None:
    out = run("server.cli", "devices", "add", "--db", str(tmp_path / "s.db"), "--model", "toaster", "--agency", "A", "--out", str(tmp_path / "b"))
    assert out.returncode == 1 and "toaster" in out.stderr and "body_recorder" in out.stderr


def test_corrupt_agent_database_is_kept_aside_with_an_alarm(stack: Stack) -> None:
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    dev.start()
    for _ in range(5):
        assert dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": "x"})[0] == 202
    wait_for(lambda: len(server_events(stack.server.db, dev.device_id)) == 5, timeout=20)
    dev.proc.stop()  # type: ignore[union-attr]  # (a graceful stop checkpoints the WAL into the main file)
    with open(dev.outbox_path, "r+b") as f:
        f.write(b"\xba\xad" * 8192)
    dev.start()
    st = dev.status()
    assert st["alarms"] and "outbox_corrupt" in st["alarms"][0]
    assert list(dev.bundle.glob("outbox.db.corrupt-*"))  # kept aside, never deleted
    wait_for(lambda: len(server_events(stack.server.db, dev.device_id)) == 6, timeout=20)
    stored = server_events(stack.server.db, dev.device_id)
    assert stored[-1][1] > 5  # numbering continued above everything used before
    ((text,),) = read_all(stack.server.db, _BODY, event_id=stored[-1][0])
    body = json.loads(text)
    assert body["type"] == "device_alarm" and body["alarm"] == "outbox_corrupt"


def test_qr_codes_from_the_cli(tmp_path: Path) -> None:
    from server import db as dbmod

    db = tmp_path / "s.db"
    dbmod.migrate(db)
    write(db, lambda tx: tx.run(_ENTERPRISE, code="91350100M000100Y43", name="福州市某某食品有限公司"))
    close_storage(db)
    text = run("server.cli", "qr", "--db", str(db), "91350100M000100Y43")
    assert text.returncode == 0 and text.stdout.startswith("FE1:91350100M000100Y43:K1:")
    for ext, magic in ((".png", b"\x89PNG"), (".svg", b"<svg")):
        out = run("server.cli", "qr", "--db", str(db), "91350100M000100Y43", "--out", str(tmp_path / f"code{ext}"))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / f"code{ext}").read_bytes().startswith(magic)
    bad = run("server.cli", "qr", "--db", str(db), "91350100M000100Y44")
    assert bad.returncode == 1 and "check character" in bad.stderr
    unknown = run("server.cli", "qr", "--db", str(db), "91110108MA01ABCD0B")
    assert unknown.returncode == 1 and "no enterprise" in unknown.stderr
    revoked = run("server.cli", "qr", "--db", str(db), "91350100M000100Y43", "--revoke", "贴纸遗失")
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout


def test_bad_policy_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("repeat_window_day = 30\n")
    out = run("server.cli", "run", "--db", str(tmp_path / "s.db"), "--policy", str(policy), "--http-port", "1")
    assert out.returncode == 1
    assert str(policy) in out.stderr and "repeat_window_day" in out.stderr and "repeat_window_days" in out.stderr
