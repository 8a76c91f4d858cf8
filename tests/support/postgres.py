"""A private PostgreSQL cluster for tests (never the machine's own service on 5432).

Each ``Postgres`` owns a directory holding its data folder (``data/``, made by ``initdb``), its Unix
socket folder (``sock/``) and its log (``postgres.log``), and listens on a free port on 127.0.0.1 that
it keeps for its whole life, across ``kill()`` / ``restart()``, like tests/support/broker.py's Mosquitto.

Facts these helpers rely on (checked against Debian's PostgreSQL 15, see
tests/system/test_support_postgres.py):

* ``initdb`` and ``postgres`` refuse to run as root. Tests and CI run as root, so both are started as an
  unprivileged OS user: ``postgres``, made by Debian's ``postgresql`` package (``FE_TEST_POSTGRES_USER``
  names another). The switch is done by ``subprocess.Popen(user=, group=, extra_groups=[])``, i.e.
  setuid in the child right before exec: no ``runuser`` / ``su`` in between, so the pid we hold IS the
  postmaster's (a SIGKILL reaches it, not a wrapper). The directory is made by ``tempfile.mkdtemp`` in
  the system temp folder (pytest's own ``/tmp/pytest-of-root`` is mode 0700, closed to that user) and
  chowned to it. Run as any other user, everything runs as that user.
* The postmaster's children put themselves in their own process groups (``setsid``), so a signal to the
  postmaster's group does not reach them; but every one of them has the data folder as its working
  directory, which ``processes()`` uses to find them all, whoever their parent is now.
* A SIGKILLed postmaster leaves its children running, attached to the shared memory, and a new
  postmaster refuses to start until they are gone. ``kill()`` therefore freezes the postmaster
  (SIGSTOP: it forks nothing more), SIGKILLs it and all its children at once (the database server dies
  as in a crash), and waits until none is left. A restart then runs crash recovery from the WAL:
  every committed transaction is there.
* A test run that is itself killed cannot clean up, and its postmasters would live on. Each cluster's folder
  names its maker (``owner``: pid and start time); ``reap_orphans()``, run once per test run by the fixtures,
  kills and removes the clusters whose maker is gone, never those of another live run.
* ``fsync=off`` by default: only a crash of the machine (not of processes) loses what the OS page cache
  held, and tests kill processes, not machines. Pass ``settings={"fsync": "on"}`` for benchmarks.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from tests.support.broker import _read, _tail, free_port

HOST = "127.0.0.1"
#: The machine's own PostgreSQL: never handed out.
SYSTEM_PORT = 5432
#: The OS user initdb and postgres run as when the tests run as root.
SERVICE_USER = os.environ.get("FE_TEST_POSTGRES_USER", "postgres")
#: The superuser role initdb makes, and the database ``url`` points at (made at the first start).
ROLE = "fe"
DATABASE = "fe"
#: Settings for test clusters: private, loopback only, no log collector (stderr goes to postgres.log).
DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "off",  # see the module docstring: process kills lose nothing committed without it
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
    "max_connections": "100",
}
#: How often the readiness and exit waits look again.
POLL_S = 0.05
#: In a cluster's directory: "<pid> <start time>" of the test process that made it.
OWNER_FILE = "owner"
#: Where clusters made without a directory go (the system temp folder), by name.
_PREFIX = "fe-postgres-"
_PG_ROOT = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """PostgreSQL did not start (or stop) as asked; the message carries the tail of its log."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's server binaries (Debian: /usr/lib/postgresql/<version>/bin).

    ``FE_TEST_PG_BIN`` overrides (a folder holding initdb and postgres)."""
    override = os.environ.get("FE_TEST_PG_BIN")
    if override:
        return Path(override)
    versions = []
    if _PG_ROOT.is_dir():
        for entry in _PG_ROOT.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "postgres").is_file() and (entry / "bin" / "initdb").is_file():
                versions.append(int(entry.name))
    if not versions:
        raise PostgresError(
            f"no PostgreSQL server binaries under {_PG_ROOT}/<version>/bin: run scripts/setup.sh "
            "(it installs Debian's postgresql package) or set FE_TEST_PG_BIN"
        )
    return _PG_ROOT / str(max(versions)) / "bin"


def available() -> bool:
    """Whether a private cluster can be made here (server binaries present)."""
    try:
        bin_dir()
    except PostgresError:
        return False
    return True


def _traversable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first ancestor of ``path`` that user ``uid`` cannot enter, or None if every one is open."""
    for folder in reversed(path.parents):
        mode = folder.stat()
        if mode.st_uid == uid:
            ok = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == gid:
            ok = mode.st_mode & stat.S_IXGRP
        else:
            ok = mode.st_mode & stat.S_IXOTH
        if not ok:
            return folder
    return None


def processes_in(data_dir: Path) -> list[int]:
    """Pids of live processes whose working directory is ``data_dir`` (a postmaster and its children)."""
    target = str(data_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != target:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone, or a zombie (whose cwd cannot be read)
        if state != "Z":
            found.append(int(entry.name))
    return found


class Postgres:
    """A private PostgreSQL: ``start()`` (initdb on the first), ``stop()`` (fast shutdown: clients are
    disconnected, a checkpoint written), ``kill()`` (SIGKILL of the postmaster and all its children),
    ``restart()`` on the same port and data. Use as a context manager, or via the ``postgres`` /
    ``postgres_factory`` fixtures, which always clean up.

    ``settings`` are passed as ``-c name=value`` and override ``DEFAULT_SETTINGS``.
    """

    host = HOST

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        service_user: str = SERVICE_USER,
    ) -> None:
        self._owns_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix=_PREFIX)) if directory is None else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory = self.directory.resolve()
        self.port = port if port is not None else _free_port()
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.start_timeout = start_timeout
        self.bin = bin_dir()
        self._as_root = os.geteuid() == 0
        self._user: pwd.struct_passwd | None = None
        if self._as_root:
            try:
                self._user = pwd.getpwnam(service_user)
            except KeyError:
                raise PostgresError(
                    f"running as root, PostgreSQL needs an unprivileged OS user to run as; {service_user!r} does not "
                    "exist (Debian's postgresql package makes 'postgres'; FE_TEST_POSTGRES_USER names another)"
                ) from None
            closed = _traversable_by(self.directory, self._user.pw_uid, self._user.pw_gid)
            if closed is not None:
                raise PostgresError(f"{closed} is closed to the OS user {service_user!r}: put the cluster elsewhere")
            for path in (self.directory, self.socket_dir):
                path.mkdir(exist_ok=True)
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        else:
            self.socket_dir.mkdir(exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times the postmaster was started (successfully)
        # Who made this cluster: reap_orphans() removes clusters whose test process died without cleaning up.
        (self.directory / OWNER_FILE).write_text(_identity(os.getpid()) or "")

    # -- paths and addresses ---------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "sock"

    @property
    def log_path(self) -> Path:
        """The postmaster's stderr over all its starts (and initdb's output, first)."""
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """``postgresql://`` URL of the test database over TCP (what ``--db`` will take)."""
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        """URL of another database of this cluster (see ``create_database``)."""
        return f"postgresql://{ROLE}@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """libpq keyword DSN of the test database over TCP."""
        return f"host={self.host} port={self.port} user={ROLE} dbname={DATABASE}"

    @property
    def socket_dsn(self) -> str:
        """libpq keyword DSN of the test database over the cluster's Unix socket."""
        return f"host={self.socket_dir} port={self.port} user={ROLE} dbname={DATABASE}"

    # -- state -----------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while one was started by this object."""
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def processes(self) -> list[int]:
        """Every live process of this cluster: the postmaster and its children, whoever reaped them."""
        return processes_in(self.data_dir)

    def log_text(self) -> str:
        return _read(self.log_path)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "stopped"
        return f"<Postgres {self.host}:{self.port} {state} {self.directory}>"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Postgres:
        """Start the postmaster (running initdb first if there is no data yet) and wait until a client can
        run a query; raises PostgresError with the log tail if it exits or is not ready in time."""
        if self.is_running:
            raise PostgresError(f"{self!r} is already running")
        self._reap()
        first = not (self.data_dir / "PG_VERSION").exists()
        if first:
            self._initdb()
        deadline = time.monotonic() + self.start_timeout
        self._spawn_postmaster()
        self._wait_ready(deadline, database="postgres" if first else DATABASE)
        if first:
            self._create_database(DATABASE)
        self.starts += 1
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT): open sessions are ended, a checkpoint is written, the postmaster exits."""
        if self._proc is None:
            return
        pids = self.processes()
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise PostgresError(self._failure(f"did not exit within {timeout:g} s of SIGINT; killed")) from None
        self._proc = None
        self._wait_no_processes(timeout, pids)

    def kill(self, timeout: float = 10.0) -> None:
        """Crash (SIGKILL) the postmaster and every child at once; returns when none of them is left."""
        pids = self.processes()
        if self._proc is not None and self._proc.poll() is None:
            # Frozen first, so that it forks no child between our look at /proc and its death.
            os.kill(self._proc.pid, signal.SIGSTOP)
            pids = sorted(set(self.processes()) | {self._proc.pid})
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._wait_no_processes(timeout, pids)

    def restart(self) -> Postgres:
        """Start again on the same port and data (after ``stop()`` or ``kill()``; stopped first if running)."""
        if self.is_running:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Kill the cluster if any process of it is left; remove the directory if this object made it."""
        if self._proc is not None or self.processes():
            self.kill()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Postgres:
        if not self.is_running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for tests -----------------------------------------------------------------------

    def connect(self, database: str = DATABASE, **kwargs: Any) -> Any:
        """A psycopg connection (autocommit unless told otherwise) to a database of this cluster."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.url_for(database), **kwargs)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (a fresh one per test on a shared cluster), empty or a copy of ``template`` (a database
        of this cluster nobody is connected to: copying it is far quicker than migrating); returns its URL."""
        for n in (name, template or "x"):
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", n):
                raise ValueError(f"database name {n!r}: lower-case letters, digits and _ only")
        self._create_database(name, template)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database``, ending its sessions first (PostgreSQL 13+ FORCE)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name in (DATABASE, "postgres"):
            raise ValueError(f"database name {name!r}: not one made by create_database")
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def databases(self) -> list[str]:
        """Names of the cluster's databases (templates excluded)."""
        with self.connect("postgres") as conn:
            return [n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")]

    # -- internals -------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # No PG* variable of the caller's (PGHOST, PGPORT, PGDATA...) may steer our binaries elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", TZ="UTC", HOME=str(self.directory))
        return env

    def _popen_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        # setuid/setgid in the child right before exec, dropping root's supplementary groups too.
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        cmd = [
            str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", ROLE, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
        ]
        with open(self.log_path, "ab") as log:
            rc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                env=self._env(), timeout=self.start_timeout, check=False, **self._popen_user(),
            ).returncode
        if rc != 0:
            raise PostgresError(self._failure(f"initdb exited with status {rc}"))

    def _spawn_postmaster(self) -> None:
        cmd = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
               "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={self.socket_dir}"]
        for name, value in self.settings.items():
            cmd += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                env=self._env(), **self._popen_user(),
            )

    def _wait_ready(self, deadline: float, database: str) -> None:
        """Wait until a query succeeds over TCP (the postmaster accepts connections only after recovery)."""
        import psycopg

        assert self._proc is not None
        last: Exception | None = None
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._proc = None
                raise PostgresError(self._failure(f"postgres exited with status {rc} while starting"))
            try:
                with psycopg.connect(self.url_for(database), connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as e:  # not listening yet, or "the database system is starting up"
                last = e
            if time.monotonic() >= deadline:
                self.kill()
                raise PostgresError(self._failure(f"not ready after {self.start_timeout:g} s (last error: {last})"))
            time.sleep(POLL_S)

    def _create_database(self, name: str, template: str | None = None) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def _wait_no_processes(self, timeout: float, pids: Collection[int] = ()) -> None:
        """Wait until no process works in the data folder and each of ``pids`` has exited. (An exiting process
        drops its working directory before it is a zombie, so it leaves processes() while still dying.)"""
        deadline = time.monotonic() + timeout
        known = {p: ident for p in pids if (ident := _identity(p)) is not None}  # pid and start time: reuse-proof
        while left := sorted(set(self.processes()) | {p for p, ident in known.items() if _identity(p) == ident}):
            if time.monotonic() >= deadline:
                raise PostgresError(self._failure(f"processes {left} still alive after {timeout:g} s"))
            time.sleep(POLL_S)

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _failure(self, what: str) -> str:
        return f"postgres {self.host}:{self.port} ({self.directory}) {what}\n--- log tail ---\n{_tail(self.log_text())}"


def _identity(pid: int) -> str | None:
    """"<pid> <start time>" of a live process (its pid alone could have been reused), or None if it is gone."""
    try:
        stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if stat_fields[0] == "Z":
        return None
    return f"{pid} {stat_fields[19]}"  # field 22 of stat: start time in clock ticks since boot


def reap_orphans(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Kill and remove the clusters in ``folder`` (default: the system temp folder) whose test process is gone.

    A test run that was itself killed (SIGKILL, CI's time limit) cannot clean up; its postmasters would hold
    their ports and memory forever. Clusters of live test processes (other runs on this machine) are left alone.
    """
    reaped = []
    for directory in sorted(Path(folder or tempfile.gettempdir()).glob(f"{_PREFIX}*")):
        try:
            owner = (directory / OWNER_FILE).read_text().strip()
        except OSError:
            continue  # not ours, or still being made
        pid = owner.split(" ", 1)[0]
        if not owner or not pid.isdigit() or _identity(int(pid)) == owner:
            continue
        data_dir = (directory / "data").resolve()
        deadline = time.monotonic() + 10
        while pids := processes_in(data_dir):  # a postmaster may fork while we kill: look again until none
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() >= deadline:
                raise PostgresError(f"orphaned cluster {directory}: processes {pids} survive SIGKILL")
            time.sleep(POLL_S)
        shutil.rmtree(directory, ignore_errors=True)
        reaped.append(directory)
    return reaped


def _free_port() -> int:
    """A free port from the broker helper's pool (shared, so a broker and a cluster never get the same)."""
    while (port := free_port()) == SYSTEM_PORT:
        pass
    return port

