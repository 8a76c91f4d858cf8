"""Shared fixtures: private Mosquitto brokers and fault-injecting proxies, always cleaned up."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Make `tests.support` importable however pytest was started (`pytest`, `python -m pytest`, from any dir).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from hypothesis import HealthCheck, settings  # noqa: E402

from tests.support.backends import BACKENDS  # noqa: E402
from tests.support.broker import Broker, mosquitto_children  # noqa: E402
from tests.support.proxy import TcpProxy  # noqa: E402

# Property tests, fuzz targets and schemathesis (all hypothesis): the default run is reproducible and
# bounded (each test sets its own max_examples) and writes no example database into the work tree;
# `HYPOTHESIS_PROFILE=explore scripts/test.sh tests/...` searches ten times longer with fresh randomness.
settings.register_profile("ci", database=None, deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", database=None, deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item, so fixtures can tell at teardown whether the test failed.
    report = yield
    setattr(item, f"_fe_report_{report.when}", report)
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"_fe_report_{when}", None), "failed", False) for when in ("setup", "call")
    )


def _kill_leftover_mosquittos() -> list[int]:
    """SIGKILL (and reap) any mosquitto still running as a child of this process."""
    pids = mosquitto_children()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid  # already reaped (by its Popen)
            if done:
                pending.discard(pid)
        if pending:
            time.sleep(0.02)
    return pids


@pytest.fixture
def broker_factory(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Callable[..., Broker]]:
    """``broker_factory(**kwargs) -> Broker``: a started private Mosquitto (kwargs go to ``Broker``;
    pass ``start=False`` to get it unstarted). Every broker made is killed at teardown, even if the test
    failed; if it failed, their log tails are printed (shown in the test's report)."""
    made: list[Broker] = []

    def make(*, start: bool = True, **kwargs: Any) -> Broker:
        broker = Broker(tmp_path_factory.mktemp("mosquitto"), **kwargs)
        made.append(broker)
        if start:
            broker.start()
        return broker

    yield make

    if _test_failed(request):
        for broker in made:
            print(f"\n=== {broker!r}: log tail ===\n" + "\n".join(broker.log_text().splitlines()[-30:]))
    for broker in made:
        broker.close()
    leftovers = _kill_leftover_mosquittos()
    if leftovers:
        print(f"killed leftover mosquitto processes: {leftovers}")


@pytest.fixture
def broker(broker_factory: Callable[..., Broker]) -> Broker:
    """A started private Mosquitto with persistence on (autosave_interval 1800: only a graceful stop saves)."""
    return broker_factory(persistence=True)


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., TcpProxy]]:
    """``proxy_factory(target_host, target_port, **kwargs) -> TcpProxy``, started; all closed at teardown."""
    made: list[TcpProxy] = []

    def make(target_host: str, target_port: int, **kwargs: Any) -> TcpProxy:
        proxy = TcpProxy(target_host, target_port, **kwargs)
        made.append(proxy)
        return proxy.start()

    yield make

    errors = []
    for proxy in made:
        try:
            proxy.close()
        except Exception as e:  # noqa: BLE001 - close all, then report
            errors.append(e)
    if errors:
        raise errors[0]


# -- Private PostgreSQL clusters (tests/support/postgres.py); never the machine's own service. -------------

import itertools  # noqa: E402

from tests.support.postgres import Postgres, reap_orphans  # noqa: E402

_postgres_orphans_reaped = False
_postgres_db_names = itertools.count(1)


def _reap_postgres_orphans_once() -> None:
    """Remove clusters left by an earlier run that was killed before its teardown (once per run)."""
    global _postgres_orphans_reaped
    if not _postgres_orphans_reaped:
        reaped = reap_orphans()
        _postgres_orphans_reaped = True
        if reaped:
            print(f"removed orphaned PostgreSQL clusters: {[str(d) for d in reaped]}")


@pytest.fixture
def postgres_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Postgres]]:
    """``postgres_factory(**kwargs) -> Postgres``: a started private PostgreSQL cluster (kwargs go to
    ``Postgres``; ``start=False`` gives it unstarted). Every cluster made is killed and its folder removed
    at teardown, even if the test failed; if it failed, their log tails are printed."""
    _reap_postgres_orphans_once()
    made: list[Postgres] = []

    def make(*, start: bool = True, **kwargs: Any) -> Postgres:
        cluster = Postgres(**kwargs)
        made.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make

    if _test_failed(request):
        for cluster in made:
            print(f"\n=== {cluster!r}: log tail ===\n" + "\n".join(cluster.log_text().splitlines()[-30:]))
    errors = []
    for cluster in made:
        try:
            cluster.close()
        except Exception as e:  # noqa: BLE001 - close all, then report
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def postgres(postgres_factory: Callable[..., Postgres]) -> Postgres:
    """A started private PostgreSQL cluster; ``.url`` is its ``postgresql://`` URL of an empty database."""
    return postgres_factory()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Postgres]:
    """One private cluster for the whole run (an initdb costs seconds), for tests that need only a database of
    their own (``postgres_url``). Tests that stop or kill PostgreSQL take their own from ``postgres_factory``."""
    _reap_postgres_orphans_once()
    cluster = Postgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def postgres_url(postgres_cluster: Postgres) -> Iterator[str]:
    """``postgresql://`` URL of a fresh, empty database on the run's shared cluster; dropped after the test."""
    name = f"test_{next(_postgres_db_names)}"
    url = postgres_cluster.create_database(name)
    yield url
    if postgres_cluster.is_running:
        postgres_cluster.drop_database(name)


# -- databases on both backends (issue 12) ---------------------------------------------------------------------

_POSTGRES_TEMPLATE = "fe_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run; each test copies it (a copy costs far less than a migration)."""
    from server import db as dbmod

    path = tmp_path_factory.mktemp("template") / "server.db"
    dbmod.migrate(path)
    con = dbmod.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, so copying it alone is enough
    con.close()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: Any) -> str:
    """A database of the run's cluster migrated once; tests get copies of it (CREATE DATABASE ... TEMPLATE)."""
    from server import db as dbmod

    dbmod.migrate(postgres_cluster.create_database(_POSTGRES_TEMPLATE))
    return _POSTGRES_TEMPLATE


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty server database on each backend in turn: a SQLite file's path, or a ``postgresql://`` URL
    of a database of its own on the run's private cluster (dropped after the test)."""
    import shutil

    from server.storage.engine import close_storage

    if request.param == "sqlite":
        path = tmp_path / "server.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield str(path)
        close_storage(path)
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"test_{next(_postgres_db_names)}"
    url = cluster.create_database(name, template=request.getfixturevalue("postgres_template"))
    yield url
    close_storage(url)
    if cluster.is_running:
        cluster.drop_database(name)


@pytest.fixture
def store(db_url: str) -> Any:
    """The ``Storage`` of ``db_url`` (this process's shared one, as the server's code would find it)."""
    from server.storage.engine import storage_for

    return storage_for(db_url)
