"""QR terminals scanning through the edge agent and a real broker: online, offline (provisional), racing.

The decisions, the server's second look at offline decisions and the race run on both backends (``any_stack``);
the agent's own checks and the tour of every answer (each rule is tested on both backends in tests/server) run on
SQLite.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from server.rules.codes import render_png
from server.storage.engine import sql
from tests.server.conftest import FRAGILE, GOOD, PLAIN, seed
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import DeviceRun, assert_exactly_once, http_json, write

pytestmark = pytest.mark.system


def code_text(stack: Stack, credit_code: str) -> str:
    return stack.server.text(f"/api/v1/enterprises/{credit_code}/qr.txt")


def terminal_scan(dev: DeviceRun, officer: str, field: str = "food", **body: Any) -> dict[str, Any]:
    code, answer = http_json(dev.url + "/v1/scan", {"officer_id": officer, "field": field, **body}, timeout=30)
    assert code == 200, answer
    return answer


_REVOKE_OFFICER = sql("UPDATE officers SET revoked_ms = :now WHERE officer_id = :officer_id")
SQLITE_ONLY = pytest.mark.parametrize("any_stack", ["sqlite"], indirect=True)


@pytest.fixture
def terminals(any_stack: Stack) -> list[DeviceRun]:
    """Two QR terminals on a running server with the registers seeded, on each backend in turn."""
    stack = any_stack
    stack.server.start_and_wait()
    write(stack.server.db, seed)
    devs = stack.add_devices(2, model="qr_terminal")
    for d in devs:
        d.start()
    for d in devs:  # each got its decision snapshot when it came online
        wait_for(lambda d=d: (d.bundle / "decision_snapshot.json").exists(), timeout=20, message="no decision snapshot arrived")
    return devs


def test_online_decisions_through_the_agent(any_stack: Stack, terminals: list[DeviceRun], tmp_path: Path) -> None:
    stack = any_stack
    t1, t2 = terminals
    photo = tmp_path / "door-sticker.png"
    photo.write_bytes(render_png(code_text(stack, PLAIN), "海淀某餐饮公司"))
    first = terminal_scan(t1, "OFF-SAMR-1", image_path=str(photo))
    assert (first["provisional"], first["outcome"], first["code"]) == (False, "allowed", "allowed")
    joined = terminal_scan(t2, "OFF-FIRE-1", field="fire", code_text=code_text(stack, PLAIN))
    assert (joined["outcome"], joined["inspection_id"], joined["joined_agency_id"]) == ("join", first["inspection_id"], "SAMR")
    refused = terminal_scan(t1, "OFF-SAMR-2", code_text=code_text(stack, GOOD))
    assert (refused["provisional"], refused["code"]) == (False, "no_disturb") and "无事不扰" in refused["message_zh"]
    expired = terminal_scan(t1, "OFF-EXPIRED", code_text=code_text(stack, FRAGILE))
    assert expired["code"] == "credential_expired"
    # the officers end their parts through their devices' outboxes
    for dev, officer in ((t1, "OFF-SAMR-1"), (t2, "OFF-FIRE-1")):
        code, _ = dev.submit("inspection_ended", {"inspection_id": first["inspection_id"], "officer_id": officer, "result": "no_violation"})
        assert code == 202
    wait_for(lambda: stack.server.api(f"/api/v1/inspections/{first['inspection_id']}")["status"] == "ended", timeout=20)
    repeat = terminal_scan(t2, "OFF-FIRE-1", code_text=code_text(stack, PLAIN))  # food again, within the window
    assert repeat["code"] == "repeat"
    made_up = terminal_scan(t2, "OFF-FIRE-1", code_text=code_text(stack, GOOD), exception_basis={"kind": "superior_assignment", "reference": "x"})
    assert (made_up["provisional"], made_up["code"]) == (False, "exception_invalid")
    assert_exactly_once(stack.server.db, terminals)
    # the terminal path raises the same alerts as the phone's, naming the device, scoped by agency
    by_kind = {a["kind"]: a for a in stack.server.api("/api/v1/alerts")}
    for kind in ("joint_inspection", "no_disturb_attempt", "credential_refused", "repeat_inspection", "exception_invalid", "device_agency_mismatch"):
        assert by_kind[kind]["device_id"] in (t1.device_id, t2.device_id), kind
    assert by_kind["no_disturb_attempt"]["agency_id"] == "SAMR" and "守信示范企业" in by_kind["no_disturb_attempt"]["message_zh"]
    fire_admin = {a["kind"] for a in stack.server.api("/api/v1/alerts", as_="admin-FIRE")}
    assert "exception_invalid" in fire_admin and "no_disturb_attempt" not in fire_admin


@SQLITE_ONLY
def test_unreadable_photo_is_a_clear_error(terminals: list[DeviceRun], tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (640, 480), 255).save(blank)
    code, body = http_json(terminals[0].url + "/v1/scan", {"officer_id": "OFF-SAMR-1", "field": "food", "image_path": str(blank)})
    assert code == 422 and "no_code" in body["message"]
    code, body = http_json(terminals[0].url + "/v1/scan", {"officer_id": "OFF-SAMR-1", "field": "food"})
    assert code == 422 and "exactly one" in body["message"]


def test_offline_provisional_decision_then_the_server_decides_again(any_stack: Stack, terminals: list[DeviceRun]) -> None:
    stack = any_stack
    t1, _ = terminals
    plain, good = code_text(stack, PLAIN), code_text(stack, GOOD)
    stack.server.stop()
    # While the server is away, the officer's credential is revoked: the terminal's snapshot does not know.
    write(stack.server.db, lambda tx: tx.run(_REVOKE_OFFICER, now=int(time.time() * 1000), officer_id="OFF-SAMR-2"))
    started = time.monotonic()
    allowed = terminal_scan(t1, "OFF-SAMR-2", code_text=plain)
    assert time.monotonic() - started >= 2.5  # waited for the server first
    assert (allowed["provisional"], allowed["outcome"]) == (True, "allowed")
    blocked = terminal_scan(t1, "OFF-SAMR-1", code_text=good)
    assert (blocked["provisional"], blocked["code"]) == (True, "no_disturb") and "无事不扰" in blocked["message_zh"]
    forged = terminal_scan(t1, "OFF-SAMR-1", code_text=plain[:-3] + "AAA")
    assert (forged["provisional"], forged["code"]) == (True, "code_altered")

    stack.server.start_and_wait()
    assert_exactly_once(stack.server.db, terminals)

    def alerts() -> list[dict[str, Any]]:
        return stack.server.api(f"/api/v1/alerts?kind=provisional_overturned")

    wait_for(alerts, timeout=20)
    (alert,) = alerts()
    assert alert["ref"] == allowed["scan_id"] and "credential_revoked" in alert["message_en"] and "离线判定" in alert["message_zh"]
    scans = {s["scan_id"]: s for s in stack.server.api(f"/api/v1/scans?limit=10")}
    assert scans[allowed["scan_id"]]["code"] == "credential_revoked"
    assert scans[blocked["scan_id"]]["code"] == "no_disturb"  # the same answer: no alert for it


def test_two_terminals_scanning_at_once_share_one_inspection(any_stack: Stack, terminals: list[DeviceRun]) -> None:
    stack = any_stack
    text = code_text(stack, PLAIN)
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def go(dev: DeviceRun, officer: str, field: str) -> None:
        barrier.wait()
        results.append(terminal_scan(dev, officer, field=field, code_text=text))

    threads = [threading.Thread(target=go, args=(terminals[0], "OFF-SAMR-1", "food")), threading.Thread(target=go, args=(terminals[1], "OFF-FIRE-1", "fire"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["outcome"] for r in results) == ["allowed", "join"]
    assert len({r["inspection_id"] for r in results}) == 1
    assert all(not r["provisional"] for r in results)
    assert len(stack.server.api(f"/api/v1/inspections?credit_code={PLAIN}")) == 1


@SQLITE_ONLY
def test_every_other_answer_through_the_terminal(any_stack: Stack, terminals: list[DeviceRun]) -> None:
    stack = any_stack
    t1, t2 = terminals
    good, fragile, plain = code_text(stack, GOOD), code_text(stack, FRAGILE), code_text(stack, PLAIN)
    cases = [
        (dict(officer="NOBODY", code_text=plain), "credential_missing"),
        (dict(officer="OFF-FUTURE", code_text=plain), "credential_not_yet_valid"),
        (dict(officer="OFF-REVOKED", code_text=plain), "credential_revoked"),
        (dict(officer="OFF-SAMR-1", code_text=plain, field="fire"), "credential_field"),
        (dict(officer="OFF-SAMR-1", code_text=plain[:-3] + "AAA"), "code_altered"),
        (dict(officer="OFF-SAMR-1", code_text="https://example.com/qr"), "code_not_ours"),
        (dict(officer="OFF-SAMR-1", code_text=good, exception_basis={"kind": "complaint", "reference": "12345-2026-002"}), "exception_invalid"),
        (dict(officer="OFF-SAMR-1", code_text=good, exception_basis={"kind": "random_draw", "reference": "PLAN-2026-Q4"}), "allowed_exception"),
        (dict(officer="OFF-SAMR-2", code_text=fragile), "allowed"),
    ]
    answers = {}
    for kwargs, expected in cases:
        officer = kwargs.pop("officer")
        a = terminal_scan(t1, officer, **kwargs)
        assert (a["provisional"], a["code"]) == (False, expected), (officer, kwargs, a)
        assert a["message_zh"] and a["message_en"]
        answers[expected] = a
    code, _ = t1.submit("inspection_ended", {"inspection_id": answers["allowed"]["inspection_id"], "officer_id": "OFF-SAMR-2", "result": "no_violation"})
    assert code == 202
    wait_for(lambda: stack.server.api(f"/api/v1/inspections/{answers['allowed']['inspection_id']}")["status"] == "ended", timeout=20)
    capped = terminal_scan(t2, "OFF-FIRE-1", field="fire", code_text=fragile)
    assert (capped["outcome"], capped["code"]) == ("refused", "cap_reached")
    stack.server.api(f"/api/v1/enterprises/{PLAIN}/qr/revoke", {"reason": "lost"})
    assert terminal_scan(t2, "OFF-FIRE-1", field="fire", code_text=plain)["code"] == "code_revoked"
