"""Fixtures for system tests: a server process and device agents, all killed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server import broker as broker_security
from tests.support.broker import Broker
from tests.system.harness import DeviceRun, ServerProc, make_devices


#: Stacks run on the secure broker (server/broker.py) unless a test asks otherwise; FE_TEST_SECURE_BROKER=0
#: turns that default off.
SECURE_BY_DEFAULT = os.environ.get("FE_TEST_SECURE_BROKER", "1") == "1"
#: A test-only broker account allowed every topic: it plays what a misconfigured or compromised broker would
#: let through, for tests of the server's and agents' own checks (signatures, topics, receipts).
SUPERUSER = "fe-test-superuser"


class Stack:
    """A broker, a server and devices, wired together for one test."""

    def __init__(self, workdir: Path, broker: Broker) -> None:
        self.workdir = workdir
        self.broker = broker
        self.server = ServerProc(workdir, broker.port)
        self.devices: list[DeviceRun] = []

    @property
    def secure(self) -> bool:
        """The broker checks accounts and ACLs (server/broker.py)."""
        return self.broker.security_dir is not None

    def superuser(self) -> tuple[str, str]:
        """(username, password) of an account the broker lets publish and subscribe anywhere (see SUPERUSER)."""
        assert self.broker.security_dir is not None, "an open broker needs no account"
        d = self.broker.security_dir
        password = "superuser-" + d.name
        if SUPERUSER not in broker_security.accounts(d):
            reloads = self.broker.reloads
            broker_security.add_accounts(d, {SUPERUSER: password})
            with open(d / broker_security.ACL_FILE, "a") as acl:
                acl.write(f"\n# Test only (tests/system/conftest.py)\nuser {SUPERUSER}\ntopic readwrite #\n")
            if broker_security.reload(d):
                self.broker.wait_reloaded(reloads)
        return SUPERUSER, password

    def add_devices(self, count: int, *, mqtt_port: int | None = None, **overrides: Any) -> list[DeviceRun]:
        """Provision devices (their bundles point at the broker, or at ``mqtt_port``); a running secure broker
        has reread its password file (with their accounts) when this returns."""
        reloads = self.broker.reloads
        made = make_devices(self.workdir, self.server.db_path, mqtt_port or self.broker.port, count, **overrides)
        if self.secure and self.broker.is_running:
            self.broker.wait_reloaded(reloads)
        self.devices += made
        return made

    def teardown(self, failed: bool) -> None:
        if failed:
            print(f"=== server log ===\n{self.server.log_tail(60)}")
            for d in self.devices:
                if d.proc:
                    print(f"=== {d.device_id} log ===\n{d.proc.log_tail(30)}")
        for d in self.devices:
            if d.proc:
                d.proc.kill()
        self.server.kill()


@pytest.fixture
def stack_factory(tmp_path: Path, broker_factory: Callable[..., Broker], request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """``stack_factory(secure=None, **broker_kwargs) -> Stack`` with a fresh private broker; ``secure`` (default
    SECURE_BY_DEFAULT): the broker refuses anonymous clients and checks the accounts and ACL that the server's
    register makes."""
    made: list[Stack] = []

    def make(*, secure: bool | None = None, **broker_kwargs: Any) -> Stack:
        workdir = tmp_path / f"stack{len(made)}"
        workdir.mkdir()
        if (SECURE_BY_DEFAULT if secure is None else secure) and "security_dir" not in broker_kwargs:
            security_dir = broker_security.broker_dir_for(workdir / "server.db")
            broker_security.prepare(security_dir)
            broker_kwargs["security_dir"] = security_dir
        s = Stack(workdir, broker_factory(**broker_kwargs))
        made.append(s)
        return s

    yield make
    failed = any(getattr(getattr(request.node, f"_fe_report_{w}", None), "failed", False) for w in ("setup", "call"))
    for s in made:
        s.teardown(failed)


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    """A broker with persistence, a server (not started) and no devices yet."""
    return stack_factory(persistence=True)
