"""A publish the broker refuses (MQTT v5 PUBACK reason >= 0x80) is an alarm, not an acknowledgement.

A real Mosquitto whose ACL denies the device's uplink: the agent counts the denials, raises one alarm per
kind of denial, shows them in `fe-agent status`, and keeps every event in its outbox; once the ACL is fixed
(rewritten, SIGHUP) the same events are delivered and receipted exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from server.broker import access as broker_security
from tests.support.waiting import wait_for
from tests.system.conftest import Stack
from tests.system.harness import ROOT, _env, assert_exactly_once, server_events

pytestmark = pytest.mark.system

UPLINK_RULE = "pattern write fe/v1/dev/%u/up\n"
#: Mosquitto's answer to a publish its ACL denies (MQTT v5 "Not authorized").
NOT_AUTHORIZED = 0x87


def rewrite_acl(stack: Stack, text: str) -> None:
    """Write the broker's ACL and have it reread (SIGHUP)."""
    d = stack.broker.security_dir
    assert d is not None
    reloads = stack.broker.reloads
    (d / broker_security.ACL_FILE).write_text(text)
    assert broker_security.reload(d)
    stack.broker.wait_reloaded(reloads)


def test_a_denied_publish_is_alarmed_kept_and_delivered_once_the_acl_is_fixed(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(secure=True, persistence=True)
    stack.server.start_and_wait()
    (dev,) = stack.add_devices(1)
    acl = (stack.broker.security_dir / broker_security.ACL_FILE).read_text()
    assert UPLINK_RULE in acl
    rewrite_acl(stack, acl.replace(UPLINK_RULE, ""))  # a broken ACL: the device may not publish its events
    dev.start()
    for n in range(3):
        assert dev.submit("enterprise_scanned", {"officer_id": "OFF-1", "code_text": f"c{n}"}, event_id=f"denied-{n:04d}-event")[0] == 202

    # Every attempt is refused, including the resends: counted as denied, never as acknowledged.
    st = wait_for(lambda: (s := dev.status())["publish_denied"] >= 6 and s, timeout=30, message=lambda: dev.proc.log_tail() if dev.proc else "")
    assert st["last_denial"]["reason_code"] == NOT_AUTHORIZED and st["last_denial"]["topic"] == f"fe/v1/dev/{dev.device_id}/up"
    alarms = [json.loads(line) for line in st["alarms"]]
    assert [(a["alarm"], a["reason_code"]) for a in alarms] == [("publish_denied", NOT_AUTHORIZED)]  # one per kind, not per message
    assert st["receipted_total"] == 0 and st["outbox_depth"] == 3
    assert server_events(stack.server.db, dev.device_id) == []
    assert "ALARM" in dev.proc.log_tail(200) and "refused a publish" in dev.proc.log_tail(200)  # type: ignore[union-attr]
    assert (dev.bundle / "outbox.db.alarms").read_text().count("publish_denied") == 1
    # `fe-agent status` shows it too.
    out = subprocess.run([sys.executable, "-m", "edge_agent.cli", "status", "--config", str(dev.config_path)], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["publish_denied"] >= 6 and shown["last_denial"]["reason_code"] == NOT_AUTHORIZED and shown["outbox_depth"] == 3

    rewrite_acl(stack, acl)  # fixed: the events still in the outbox go through on their next resend
    assert_exactly_once(stack.server.db, [dev])
    assert dev.status()["receipted_total"] == 3
