"""Fixtures for system tests: a server process and device agents, all killed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server import broker as broker_security
from tests.support.broker import Broker
from tests.system.harness import DeviceRun, ServerProc, make_devices


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
    """``stack_factory(secure=False, **broker_kwargs) -> Stack`` with a fresh private broker; ``secure``:
    the broker refuses anonymous clients and checks the accounts and ACL that the server's register makes."""
    made: list[Stack] = []

    def make(*, secure: bool = False, **broker_kwargs: Any) -> Stack:
        workdir = tmp_path / f"stack{len(made)}"
        workdir.mkdir()
        if secure:
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
