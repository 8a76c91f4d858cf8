"""Fixtures for system tests: a server process and device agents, all killed at teardown."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.broker import access as broker_security
from server.settings import key_base
from server.storage.engine import close_storage
from tests.support.backends import BACKENDS
from tests.support.broker import Broker
from tests.system.harness import DeviceRun, ServerProc, make_devices


#: Stacks run on the secure broker (server/broker/access.py) unless a test asks otherwise; FE_TEST_SECURE_BROKER=0
#: turns that default off.
SECURE_BY_DEFAULT = os.environ.get("FE_TEST_SECURE_BROKER", "1") == "1"
#: A test-only broker account allowed every topic: it plays what a misconfigured or compromised broker would
#: let through, for tests of the server's and agents' own checks (signatures, topics, receipts).
SUPERUSER = "fe-test-superuser"
_stack_dbs = itertools.count(1)


class Stack:
    """A broker, a server and devices, wired together for one test."""

    def __init__(self, workdir: Path, broker: Broker, db: str | None = None, drop: Callable[[], None] | None = None) -> None:
        self.workdir = workdir
        #: Drops the stack's PostgreSQL database at teardown (None on SQLite: the file goes with tmp_path).
        self._drop = drop
        self.broker = broker
        self.server = ServerProc(workdir, broker.port, db=db)
        #: More server processes of other roles (tests/system/test_scale_out.py), killed at teardown.
        self.servers: list[ServerProc] = []
        self.devices: list[DeviceRun] = []

    @property
    def secure(self) -> bool:
        """The broker checks accounts and ACLs (server/broker/access.py)."""
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
        made = make_devices(self.workdir, self.server.db, mqtt_port or self.broker.port, count, **overrides)
        if self.secure and self.broker.is_running:
            self.broker.wait_reloaded(reloads)
        self.devices += made
        return made

    def add_server(self, name: str, *role_args: str) -> ServerProc:
        """One more ``fe-server run`` process on the stack's database and broker, e.g. ``add_server("ingest-1",
        "--role", "ingest", "--ingest-worker", "1")`` (not started)."""
        proc = ServerProc(self.workdir, self.broker.port, db=self.server.db, extra=role_args, name=name)
        self.servers.append(proc)
        return proc

    def teardown(self, failed: bool) -> None:
        if failed:
            for proc in [self.server, *self.servers]:
                print(f"=== {proc.name} log ===\n{proc.log_tail(60)}")
            for d in self.devices:
                if d.proc:
                    print(f"=== {d.device_id} log ===\n{d.proc.log_tail(30)}")
        for d in self.devices:
            if d.proc:
                d.proc.kill()
        for proc in [self.server, *self.servers]:
            proc.kill()
        close_storage(self.server.db)  # this process's pool of the database (tests read through the seam)
        if self._drop is not None:
            self._drop()


def _drop_database(cluster: Any, name: str) -> None:
    """Drop a stack's database once its processes are gone (a killed cluster has nothing left to drop)."""
    if cluster.is_running:
        cluster.drop_database(name)


@pytest.fixture
def stack_factory(tmp_path: Path, broker_factory: Callable[..., Broker], request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """``stack_factory(secure=None, backend="sqlite", **broker_kwargs) -> Stack`` with a fresh private broker;
    ``secure`` (default SECURE_BY_DEFAULT): the broker refuses anonymous clients and checks the accounts and ACL that
    the server's register makes; ``backend="postgresql"``: the server's database is a fresh one on the run's private
    PostgreSQL cluster, already migrated (``empty=True``: not migrated, the server's first start does it)."""
    made: list[Stack] = []

    def make(*, secure: bool | None = None, backend: str = "sqlite", ingest_workers: int = 0, empty: bool = False, **broker_kwargs: Any) -> Stack:
        workdir = tmp_path / f"stack{len(made)}"
        workdir.mkdir()
        db, drop = None, None
        if backend == "postgresql":
            cluster = request.getfixturevalue("postgres_cluster")
            name = f"stack_{os.getpid()}_{next(_stack_dbs)}"
            # A copy of the run's migrated template: migrating a fresh PostgreSQL database costs the server seconds
            # at each start; ``empty=True`` leaves that to the server.
            db = cluster.create_database(name, template=None if empty else request.getfixturevalue("postgres_template"))
            drop = functools.partial(_drop_database, cluster, name)
        if (SECURE_BY_DEFAULT if secure is None else secure) and "security_dir" not in broker_kwargs:
            security_dir = broker_security.broker_dir_for(key_base(db or str(workdir / "server.db"), workdir))
            broker_security.prepare(security_dir, ingest_workers=ingest_workers)
            broker_kwargs["security_dir"] = security_dir
        s = Stack(workdir, broker_factory(**broker_kwargs), db, drop)
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


@pytest.fixture(params=BACKENDS)
def any_stack(stack_factory: Callable[..., Stack], request: pytest.FixtureRequest) -> Stack:
    """``stack`` on each backend in turn (SQLite, then a private PostgreSQL database)."""
    return stack_factory(persistence=True, backend=request.param)
