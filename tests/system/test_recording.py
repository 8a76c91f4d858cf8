"""Full-process recording and evidence integrity with real files, a real broker and real processes, on both
backends (``any_stack``): tampering behind the server's back is done through the storage seam, as someone with the
database's password would do it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol import merkle
from server.storage.engine import Tx, sql
from tests.server.conftest import PLAIN, seed
from tests.support.media import write_exif_jpeg, write_mp4, write_wav
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, DeviceRun, _env, assert_exactly_once, http_json, read_all, server_events, write

pytestmark = pytest.mark.system

CST = dt.timezone(dt.timedelta(hours=8))
MINUTE_MS = 60_000


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)


def api(stack: Stack, path: str, body: dict[str, Any] | None = None, as_: str = "sup") -> Any:
    return stack.server.api(path, body, as_=as_)


_SET_OPENED = sql("UPDATE inspections SET opened_ms = :ms WHERE inspection_id = :inspection_id")
_SET_ENDED = sql("UPDATE inspections SET ended_ms = :ms WHERE inspection_id = :inspection_id")
_MEDIA_BODIES = sql("SELECT body_json FROM events WHERE type = 'media_captured' ORDER BY seq")
_SHIFT_DEVICE_TIME = sql("UPDATE events SET device_time_ms = device_time_ms - 3600000 WHERE event_id = :event_id")
_DELETE_EVENT = sql("DELETE FROM events WHERE event_id = :event_id")


@pytest.fixture
def recorder(any_stack: Stack) -> DeviceRun:
    """A body recorder watching a folder, on a running server with the registers seeded, on each backend."""
    stack = any_stack
    stack.server.start_and_wait()
    write(stack.server.db, seed)
    (dev,) = stack.add_devices(1, model="body_recorder", media__watch_dir="recordings", media__poll_s=0.2, media__settle_polls=2, media__rehash_s=2.0)
    (dev.bundle / "recordings").mkdir()
    dev.start()
    return dev


def test_recordings_cover_an_inspection_and_tampering_is_named(any_stack: Stack, recorder: DeviceRun, tmp_path: Path) -> None:
    stack = any_stack
    # An inspection 30 minutes long, which ended an hour ago.
    scan = api(stack, "/api/v1/scans", {"officer_id": "OFF-SAMR-1", "field": "food", "code_text": stack.server.text(f"/api/v1/enterprises/{PLAIN}/qr.txt")}, as_="OFF-SAMR-1")
    inspection = scan["inspection_id"]
    start = dt.datetime.now(CST).replace(microsecond=0) - dt.timedelta(minutes=90)
    start_ms = int(start.timestamp() * 1000)
    write(stack.server.db, lambda tx: tx.run(_SET_OPENED, ms=start_ms, inspection_id=inspection))
    api(stack, f"/api/v1/inspections/{inspection}/end", {"officer_id": "OFF-SAMR-1", "result": "rectification_ordered"}, as_="OFF-SAMR-1")
    write(stack.server.db, lambda tx: tx.run(_SET_ENDED, ms=start_ms + 30 * MINUTE_MS, inspection_id=inspection))

    labels = {"officer_id": "OFF-SAMR-1", "inspection_id": inspection, "case_no": "京海市监罚〔2026〕118号", "collector": "张三", "proves": "现场检查全过程"}
    assert http_json(recorder.url + "/v1/context", labels)[0] == 200
    rec = recorder.bundle / "recordings"
    write_mp4(rec / "20261124_093000_ZFY0012.mp4", start, 12 * 60)  # minutes 0-12
    write_mp4(rec / "20261124_094700_ZFY0012.mp4", start + dt.timedelta(minutes=17), 13 * 60)  # 17-30: a 5-minute gap
    write_wav(rec / "interview.wav", 2.5)
    write_exif_jpeg(rec / "IMG_0001.jpg", start + dt.timedelta(minutes=5), 39.98, 116.31)

    def media() -> dict[str, Any]:
        return api(stack, f"/api/v1/inspections/{inspection}/media")

    wait_for(lambda: len(media()["media"]) == 4, timeout=30, message=lambda: json.dumps(media(), ensure_ascii=False)[:500])
    cov = media()
    assert cov["recorded"] and not cov["complete"]
    assert [g["minutes"] for g in cov["gaps"]] == [5.0] and cov["uncovered_minutes"] == 5.0
    by_name = {m["file_name"]: m for m in cov["media"]}
    assert by_name["20261124_093000_ZFY0012.mp4"]["started_ms"] == start_ms
    assert all(m["linked_by"] == "inspection_id" for m in cov["media"])
    (photo,) = [body for (text,) in read_all(stack.server.db, _MEDIA_BODIES) if (body := json.loads(text)).get("file_name") == "IMG_0001.jpg"]
    assert photo["case_no"] == labels["case_no"] and photo["collector"] == "张三" and photo["proves"] == "现场检查全过程"
    assert abs(photo["location"]["lat"] - 39.98) < 1e-3 and photo["started_ms"] == start_ms + 5 * MINUTE_MS

    # A recording changed after its hash was sent, another deleted: both reported as integrity events.
    with open(rec / "interview.wav", "ab") as f:
        f.write(b"\x00" * 16)
    (rec / "IMG_0001.jpg").unlink()
    wait_for(lambda: len(api(stack, "/api/v1/alerts?kind=media_integrity")) == 2, timeout=30)
    states = {m["file_name"]: m["integrity"] for m in media()["media"]}
    assert states["interview.wav"] == "modified" and states["IMG_0001.jpg"] == "deleted"

    # Receipts and proofs: the outside party checks a record's inclusion against the signed head.
    head = api(stack, "/api/v1/evidence/tree-head")
    event_id = server_events(stack.server.db, recorder.device_id)[0][0]
    proof = api(stack, f"/api/v1/evidence/proof/{event_id}")
    assert proof["tree_size"] == head["tree_size"] and proof["root_hash"] == head["root_hash"]
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), proof["log_index"], proof["tree_size"], [bytes.fromhex(h) for h in proof["audit_path"]], bytes.fromhex(head["root_hash"]))
    exported = tmp_path / "head.json"
    exported.write_text(json.dumps(head))
    assert_exactly_once(stack.server.db, [recorder])
    check = run("server.cli", "tree-head", *stack.server.db_args, "--check", str(exported))
    assert check.returncode == 0 and "extends the exported head" in check.stdout, check.stdout + check.stderr
    clean = run("server.cli", "verify", *stack.server.db_args, "--signatures")
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout

    # Tampering behind the server's back, straight in the database: verify names both rows.
    ids = [e for e, _ in server_events(stack.server.db, recorder.device_id)]
    changed, removed = ids[1], ids[2]

    def tamper(tx: Tx) -> None:
        tx.run(_SHIFT_DEVICE_TIME, event_id=changed)
        tx.run(_DELETE_EVENT, event_id=removed)

    write(stack.server.db, tamper)
    out = run("server.cli", "verify", *stack.server.db_args)
    assert out.returncode == 1
    assert f"TAMPERED changed: event {changed}" in out.stdout and f"TAMPERED removed: event {removed}" in out.stdout
    assert f"CHAIN BREAK device {recorder.device_id}" in out.stdout  # the deleted row also leaves a hole in the device's chain


def test_an_event_dropped_on_the_device_shows_as_a_chain_break(any_stack: Stack, recorder: DeviceRun) -> None:
    stack = any_stack
    stack.server.stop()
    stack.broker.stop()  # the device is offline: its events wait in its outbox
    for i in range(5):
        assert recorder.submit("device_status", {"outbox_depth": i, "oldest_unsent_age_s": 0, "free_storage_bytes": 1})[0] == 202
    recorder.proc.kill()  # type: ignore[union-attr]
    # Someone with access to the device deletes one recorded event before it was delivered.
    subprocess.run(["sqlite3", str(recorder.outbox_path), "DELETE FROM outbox WHERE seq = 3"], check=True, timeout=30)
    stack.broker.restart()
    stack.server.start_and_wait()
    recorder.start()
    wait_for(lambda: len(server_events(stack.server.db, recorder.device_id)) == 4, timeout=30)
    report = api(stack, "/api/v1/evidence/verify")
    (chain,) = [c for c in report["chains"] if c["device_id"] == recorder.device_id]
    assert chain["missing_predecessor"] == [4] and chain["verified_links"] == 2 and not report["ok"]
    gaps = api(stack, f"/api/v1/devices/{recorder.device_id}/gaps")
    assert gaps == [{"seq_from": 3, "seq_to": 3, "missing": 1}]
