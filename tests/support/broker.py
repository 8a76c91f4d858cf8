"""A private Mosquitto process for system tests (never the machine's own broker on 1883).

Each ``Broker`` owns a directory holding its generated ``mosquitto.conf``, its log, its console output
and its persistence file (``mosquitto.db``), and listens on a free port on 127.0.0.1 that it keeps for
its whole life, across ``kill()`` / ``restart()``.

Mosquitto facts these tests rely on (checked against 2.0.11, see tests/system/test_support.py):

* With ``persistence true`` the in-memory database is written to disk only every ``autosave_interval``
  seconds (default 1800) and on a graceful exit (SIGTERM). A QoS 1 PUBACK says nothing about the disk:
  on SIGKILL everything since the last save is gone, including persistent sessions and their queues.
* ``autosave_on_changes true`` turns ``autosave_interval`` into a *count* of changes instead of seconds.
* With ``security_dir`` (server/broker/access.py), the broker refuses anonymous clients, checks the password and
  ACL files in that folder, makes each client's username its client id, and writes its pid file there;
  SIGHUP makes it reread both files and disconnect clients whose account is gone.
* Run as root, Mosquitto drops privileges to the ``mosquitto`` user unless the config says
  ``user root``, and then cannot write its persistence file in a root-owned temp dir.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

MOSQUITTO = os.environ.get("FE_TEST_MOSQUITTO", "/usr/sbin/mosquitto")
HOST = "127.0.0.1"
#: The machine's own broker: never handed out.
_FORBIDDEN_PORTS = frozenset({1883, 8883})
#: Ports handed out by this process (a killed broker's port must not go to another broker).
_handed_out: set[int] = set()

_DEFAULT = object()
#: Logged once the listeners are open.
_RUNNING = re.compile(r"mosquitto version \S+ running")
#: Keys of a base config that are always replaced by the Broker's own lines.
_ALWAYS_REPLACED = frozenset(
    {"listener", "port", "bind_address", "bind_interface", "socket_domain", "persistence_location", "log_dest",
     "log_type", "user", "pid_file", "log_timestamp", "log_timestamp_format"}
)


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR: stricter than Mosquitto, so a port with TIME_WAIT leftovers is skipped too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, reserved for this process (never 1883).

    Chosen below the kernel's ephemeral range, so that no outgoing connection (from any test client)
    can be given it as its local port while its broker is down between kill() and restart().
    """
    lo_ephemeral, _ = _ephemeral_range()
    lo, hi = 10000, lo_ephemeral - 1
    if hi - lo > 1000:
        for _ in range(200):
            port = random.randint(lo, hi)
            if port in _FORBIDDEN_PORTS or port in _handed_out:
                continue
            if _bindable(port):
                _handed_out.add(port)
                return port
    for _ in range(50):  # fall back to the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _FORBIDDEN_PORTS and port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


def _port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


class BrokerError(RuntimeError):
    """Mosquitto did not start (or stop) as asked; the message carries the tail of its log."""


class Broker:
    """A private Mosquitto: ``start()``, ``stop()`` (SIGTERM: saves), ``kill()`` (SIGKILL: loses unsaved
    state), ``restart()`` on the same port and directory. Use as a context manager, or via the
    ``broker`` / ``broker_factory`` fixtures, which always clean up.

    ``base_config`` is the text of a mosquitto.conf to start from (e.g. the shipped
    ``server/broker/mosquitto.conf``): its listener, persistence location, logging and user lines are replaced
    by the Broker's own; everything else is kept. With a base config, ``persistence``,
    ``autosave_interval`` and ``autosave_on_changes`` are only written when passed explicitly.
    ``extra_config`` lines are appended verbatim.
    """

    host = HOST

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        persistence: bool | None = _DEFAULT,  # type: ignore[assignment]
        autosave_interval: int | None = _DEFAULT,  # type: ignore[assignment]
        autosave_on_changes: bool | None = None,
        max_queued_messages: int | None = None,
        extra_config: Iterable[str] = (),
        base_config: str | None = None,
        port: int | None = None,
        start_timeout: float = 10.0,
        executable: str = MOSQUITTO,
        security_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._owns_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="fe-mosquitto-")) if directory is None else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory = self.directory.resolve()
        if persistence is _DEFAULT:
            persistence = None if base_config is not None else True
        if autosave_interval is _DEFAULT:
            autosave_interval = None if base_config is not None else 1800
        self.persistence: bool | None = persistence
        self.autosave_interval: int | None = autosave_interval
        self.autosave_on_changes = autosave_on_changes
        self.max_queued_messages = max_queued_messages
        self.extra_config = list(extra_config)
        self.base_config = base_config
        self.start_timeout = start_timeout
        self.executable = executable
        #: The folder of the password file, ACL and pid file (server/broker/access.py); None: an open broker.
        self.security_dir = None if security_dir is None else Path(security_dir).resolve()
        self.port = free_port() if port is None else port
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times the process was started (successfully)

    # -- paths -------------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def output_path(self) -> Path:
        """Mosquitto's stdout/stderr (config errors and notes printed before logging starts)."""
        return self.directory / "mosquitto.out"

    @property
    def db_path(self) -> Path:
        return self.directory / "mosquitto.db"

    # -- state -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def log_text(self) -> str:
        """The whole Mosquitto log of this broker (all its starts), or '' if there is none yet."""
        return _read(self.log_path)

    def output_text(self) -> str:
        return _read(self.output_path)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "stopped"
        return f"<Broker {self.host}:{self.port} {state} {self.directory}>"

    # -- config ------------------------------------------------------------------------------------

    def config_text(self) -> str:
        """The mosquitto.conf this broker is (re)started with."""
        own = [f"listener {self.port} {self.host}"]
        if self.security_dir is not None:
            from server.broker.access import CLIENTID_LINE

            own.append(CLIENTID_LINE)  # a listener option: right below the listener it belongs to
        managed: list[str] = []
        if os.geteuid() == 0:
            managed.append("user root")
        managed += [
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_path}",
            *(f"log_type {t}" for t in ("error", "warning", "notice", "information")),
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if self.security_dir is not None:
            from server.broker.access import security_lines

            managed += security_lines(self.security_dir)
        elif self.base_config is None:
            managed.append("allow_anonymous true")
        if self.persistence is not None:
            managed.append(f"persistence {'true' if self.persistence else 'false'}")
        if self.autosave_interval is not None:
            managed.append(f"autosave_interval {self.autosave_interval}")
        if self.autosave_on_changes is not None:
            managed.append(f"autosave_on_changes {'true' if self.autosave_on_changes else 'false'}")
        if self.max_queued_messages is not None:
            managed.append(f"max_queued_messages {self.max_queued_messages}")
        lines = ["# Generated by tests/support/broker.py"]
        if self.base_config is None:
            lines += own + managed
        else:
            replaced = _ALWAYS_REPLACED | {line.split()[0] for line in managed}
            placed_listener = False
            for raw in self.base_config.splitlines():
                words = raw.split()
                if not words or words[0].startswith("#"):
                    lines.append(raw)
                elif words[0] == "listener":
                    if not placed_listener:  # our listener takes the place of the first one
                        lines += own
                        placed_listener = True
                    else:
                        lines.append(f"# (dropped) {raw}")
                elif words[0] in replaced:
                    lines.append(f"# (replaced) {raw}")
                else:
                    lines.append(raw)
            if not placed_listener:
                lines = lines[:1] + own + lines[1:]
            lines += ["", "# Test overrides", *managed]
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    @property
    def reloads(self) -> int:
        """How many times this broker reread its configuration (SIGHUP), over all its starts."""
        return self.log_text().count("Reloading config.")

    def wait_reloaded(self, before: int, timeout: float = 5.0) -> None:
        """Wait until the broker has reloaded since ``before`` (a value of ``reloads``)."""
        deadline = time.monotonic() + timeout
        while self.reloads <= before:
            if time.monotonic() >= deadline:
                raise BrokerError(self._failure(f"did not reload within {timeout:g} s"))
            time.sleep(0.02)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Broker:
        """Start Mosquitto and wait until it accepts connections on ``port``.

        Retries while the port is still held (e.g. right after a kill), up to ``start_timeout``;
        raises BrokerError with the log tail if Mosquitto exits or never becomes ready.
        """
        if self.is_running:
            raise BrokerError(f"{self!r} is already running")
        self._reap()
        self.config_path.write_text(self.config_text())
        deadline = time.monotonic() + self.start_timeout
        port_busy = False
        while True:
            log_offset = _size(self.log_path)
            out_offset = _size(self.output_path)
            with open(self.output_path, "ab") as out:
                self._proc = subprocess.Popen(
                    [self.executable, "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            while True:
                if self._proc.poll() is not None:
                    break
                if _RUNNING.search(_read(self.log_path, log_offset)) and _port_accepts(self.port):
                    self.starts += 1
                    return self
                if time.monotonic() >= deadline:
                    self._kill_proc()
                    why = f"port {self.port} still in use" if port_busy else "did not accept connections"
                    raise BrokerError(self._failure(f"{why} after {self.start_timeout:g} s"))
                time.sleep(0.02)
            # Mosquitto exited.
            rc = self._proc.returncode
            self._proc = None
            new_output = _read(self.log_path, log_offset) + _read(self.output_path, out_offset)
            if "Address already in use" in new_output:
                port_busy = True
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise BrokerError(self._failure(f"port {self.port} still in use after {self.start_timeout:g} s"))
            raise BrokerError(self._failure(f"exited with status {rc} while starting"))

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its in-memory database if persistence is on."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_proc()
                raise BrokerError(self._failure(f"did not exit within {timeout:g} s of SIGTERM; killed")) from None
        self._proc = None

    def kill(self) -> None:
        """Abrupt stop (SIGKILL): whatever was not yet saved to disk is lost."""
        self._kill_proc()

    def restart(self, persistence: bool | None = None) -> Broker:
        """Start again on the same port and directory (after ``stop()`` or ``kill()``; if still running,
        it is stopped gracefully first). ``persistence`` changes that setting for this and later starts."""
        if self.is_running:
            self.stop()
        self._reap()
        if persistence is not None:
            self.persistence = persistence
        return self.start()

    def close(self) -> None:
        """Kill the process if running; remove the directory if the Broker made it itself."""
        self._kill_proc()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Broker:
        if not self.is_running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _kill_proc(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _failure(self, what: str) -> str:
        return (
            f"mosquitto {self.host}:{self.port} ({self.directory}) {what}\n"
            f"--- output tail ---\n{_tail(self.output_text())}\n"
            f"--- log tail ---\n{_tail(self.log_text())}"
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read(path: Path, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def mosquitto_children(parent: int | None = None) -> list[int]:
    """Pids of live ``mosquitto`` processes whose parent is ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces or parentheses, so split at the last ')'.
        m = re.match(r"\d+ \((.*)\) (\S) (\d+)", stat, re.S)
        if m and m.group(1) == "mosquitto" and m.group(2) != "Z" and int(m.group(3)) == parent:
            found.append(int(entry.name))
    return found
