"""Real processes for system tests: the server (`fe-server run`) and agents (`fe-agent run`), killable."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from protocol.config import DeviceConfig, encode_device_config, load_device_config
from server.broker.access import broker_dir_for
from server.evidence.keys import load_or_create_server_key
from server.rules.registry import provision
from server.settings import key_base
from server.storage.engine import Backend, Statement, Tx, backend_of, sql, storage_for
from tests.support.broker import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("FE_FAULT_PAUSE_BEFORE_COMMIT_S", None)
    env.update(extra or {})
    return env


def http_json(url: str, data: dict[str, Any] | None = None, timeout: float = 10.0, token: str | None = None) -> tuple[int, Any]:
    """GET (or POST JSON) and decode the JSON answer, whatever the status."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Proc:
    """A child process with a log file; SIGKILL-able and restartable."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name, self.argv, self.log_path, self.env = name, argv, log_path, env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (again), appending to the log."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        finally:
            log.close()

    @property
    def running(self) -> bool:
        """The process is alive."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (graceful)."""
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class ServerProc(Proc):
    """`fe-server run` on a free HTTP port, over a SQLite file in ``workdir`` or the PostgreSQL database ``db``
    (its key and broker files then live in ``workdir`` too: --key-dir)."""

    def __init__(
        self, workdir: Path, mqtt_port: int, *, fault_pause_s: float = 0.0, db: str | None = None, extra: tuple[str, ...] = (), name: str = "server"
    ) -> None:
        #: The database as --db takes it (a path or a URL); tests read it through the storage seam.
        self.db = db or str(workdir / "server.db")
        #: The folder of the key and broker files (--key-dir).
        self.key_dir = workdir
        #: What the server's key and broker files are named after (server.settings.key_base).
        self.key_base = key_base(self.db, workdir)
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        argv = [
            sys.executable, "-m", "server.cli", "run", "--db", self.db, "--key-dir", str(workdir), "--mqtt-port", str(mqtt_port),
            "--http-port", str(self.http_port), *extra,
        ]  # fmt: skip
        env = _env({"FE_FAULT_PAUSE_BEFORE_COMMIT_S": str(fault_pause_s)} if fault_pause_s else None)
        super().__init__(name, argv, workdir / f"{name}.log", env)
        self._tokens: dict[str, str] = {}

    @property
    def db_args(self) -> list[str]:
        """``--db`` and ``--key-dir`` as every ``fe-server`` subcommand takes them, for this server's database."""
        return ["--db", self.db, "--key-dir", str(self.key_dir)]

    @property
    def server_key_path(self) -> Path:
        """The server's Ed25519 key file (beside the SQLite file, or in the key folder)."""
        return self.key_base.with_name(self.key_base.name + ".server.key")

    @property
    def broker_dir(self) -> Path:
        """The folder of the broker's credential files the server's register keeps."""
        return broker_dir_for(self.key_base)

    @property
    def db_path(self) -> Path:
        """The SQLite file (tests that open it directly run on SQLite only)."""
        assert backend_of(self.db) is Backend.SQLITE, "this test reads the SQLite file directly: read through the seam instead"
        return Path(self.db)

    def token(self, username: str = "sup") -> str:
        """A session token of a test user (users and passwords as in tests/server/conftest.py)."""
        from tests.server.conftest import password

        if username not in self._tokens:
            code, body = http_json(self.url + "/api/v1/auth/login", {"username": username, "password": password(username)})
            assert code == 200, body
            self._tokens[username] = body["token"]
        return self._tokens[username]

    def api(self, path: str, body: dict[str, Any] | None = None, *, as_: str = "sup", expect: int = 200) -> Any:
        """Call the API as a test user; asserts the status."""
        code, answer = http_json(self.url + path, body, token=self.token(as_))
        assert code == expect, answer
        return answer

    def text(self, path: str, *, as_: str = "sup") -> str:
        """A plain-text answer (e.g. an enterprise's code) as a test user."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token(as_)}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def set_fault_pause(self, seconds: float) -> None:
        """Fault injection for the next start: pause before each commit."""
        self.env = _env({"FE_FAULT_PAUSE_BEFORE_COMMIT_S": str(seconds)} if seconds else None)

    def start_and_wait(self, *, connected: bool = True, timeout: float = 30.0) -> None:
        """Start and wait until /health answers (and the ingest is connected to the broker)."""
        self.start()

        def ready() -> bool:
            assert self.running, f"server exited:\n{self.log_tail()}"
            try:
                code, body = http_json(self.url + "/health", timeout=2)
            except OSError:
                return False
            return code == 200 and (body["mqtt_connected"] or not connected)

        wait_for(ready, timeout=timeout, message=lambda: f"server not ready:\n{self.log_tail()}")

    def metric(self, name: str, labels: str = "") -> float:
        """One value from /metrics (0 if absent)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        key = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return 0.0


@dataclass
class DeviceRun:
    """One provisioned device: its bundle and, when started, its agent process."""

    device_id: str
    bundle: Path
    proc: Proc | None = None
    submitted: dict[str, int] = field(default_factory=dict)  # event_id -> HTTP status

    @property
    def config_path(self) -> Path:
        return self.bundle / "device.toml"

    @property
    def outbox_path(self) -> Path:
        return self.bundle / "outbox.db"

    def start(self, mqtt_port: int | None = None) -> None:
        """Start (or restart) `fe-agent run` and wait for its local interface."""
        port_file = self.bundle / "local_api.port"
        port_file.unlink(missing_ok=True)
        if self.proc is None:
            argv = [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config_path)]
            if mqtt_port:
                argv += ["--mqtt-port", str(mqtt_port)]
            self.proc = Proc(self.device_id, argv, self.bundle / "agent.log", _env())
        self.proc.start()
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), timeout=20, message=lambda: f"agent did not start:\n{self.proc.log_tail() if self.proc else ''}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{(self.bundle / 'local_api.port').read_text().strip()}"

    def submit(self, typ: str, fields: dict[str, Any], event_id: str | None = None) -> tuple[int, Any]:
        """Submit through the local interface; remembers the outcome."""
        body = {"type": typ, **fields, **({"event_id": event_id} if event_id else {})}
        code, answer = http_json(self.url + "/v1/events", body)
        if event_id:
            self.submitted[event_id] = code
        return code, answer

    def status(self) -> dict[str, Any]:
        """The agent's /v1/status."""
        code, body = http_json(self.url + "/v1/status")
        assert code == 200, body
        return body

    def outbox_state(self) -> tuple[int, int]:
        """(rows still in the outbox, last sequence number) read from the agent's database file."""
        con = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True)
        try:
            depth = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            last = con.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
            return depth, last
        finally:
            con.close()

    def outbox_integrity(self) -> str:
        """PRAGMA integrity_check of the agent's database."""
        con = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True)
        try:
            return con.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()


def make_devices(workdir: Path, db: Path | str, mqtt_port: int, count: int, *, model: str = "body_recorder", **overrides: Any) -> list[DeviceRun]:
    """Provision devices on the server's database (a path, or a URL with its key files in ``workdir``), with
    test-friendly timings, unless overridden.

    ``overrides`` are dotted config keys with '__' for '.', e.g. ``delivery__receipt_window=2000``.
    """
    base = key_base(str(db), workdir)
    key = load_or_create_server_key(base.with_name(base.name + ".server.key"))
    made = provision(
        db, key, model=model, agency_id="AG-TEST", out_dir=workdir / "devices", count=count, mqtt_port=mqtt_port,
        broker_dir=broker_dir_for(base),
    )  # fmt: skip
    settings = {
        "delivery__resend_after_s": 1.0,
        "delivery__resend_max_backoff_s": 4.0,
        "mqtt__keepalive_s": 5,
        "mqtt__reconnect_min_s": 1.0,
        "mqtt__reconnect_max_s": 2.0,
        "status__heartbeat_s": 3600.0,
        "local_api__port": 0,
        **overrides,
    }
    runs = []
    for p in made:
        path = p.bundle_dir / "device.toml"
        write_config(path, tune(load_device_config(path), settings))
        runs.append(DeviceRun(p.device_id, p.bundle_dir))
    return runs


def tune(cfg: DeviceConfig, settings: dict[str, Any]) -> DeviceConfig:
    """A copy of a config with dotted (``a__b``) keys replaced."""
    for key, value in settings.items():
        section, name = key.split("__")
        cfg = msgspec.structs.replace(cfg, **{section: msgspec.structs.replace(getattr(cfg, section), **{name: value})})
    return cfg


def write_config(path: Path, cfg: DeviceConfig) -> None:
    """Write a device config file."""
    path.write_text(encode_device_config(cfg))


def read_all(db: Path | str, stmt: Statement, **params: Any) -> list[tuple[Any, ...]]:
    """Every row of one statement, read through the storage seam on either backend."""
    return storage_for(db).read(lambda tx: tx.all(stmt, **params))


def write(db: Path | str, fn: Callable[[Tx], T]) -> T:
    """Run ``fn`` in one write transaction through the storage seam (seeding, changes behind the server's back)."""
    return storage_for(db).write(fn)


_EVENTS_OF = sql("SELECT event_id, seq FROM events WHERE device_id = :device_id ORDER BY seq")
_REJECTED = sql("SELECT reason_code FROM rejected ORDER BY id")


def server_events(db: Path | str, device_id: str) -> list[tuple[str, int]]:
    """(event_id, seq) of every stored event of a device, in sequence order."""
    return [(e, s) for e, s in read_all(db, _EVENTS_OF, device_id=device_id)]


def rejected_reasons(db: Path | str) -> list[str]:
    """reason_code of every rejected message, oldest first."""
    return [r for (r,) in read_all(db, _REJECTED)]


def assert_exactly_once(db: Path | str, devices: list[DeviceRun], timeout: float = 60.0) -> None:
    """The closing check of every fault test: accepted = stored, none twice, outboxes drained and intact."""
    for dev in devices:

        def drained(dev: DeviceRun = dev) -> bool:
            depth, last = dev.outbox_state()
            return depth == 0 and len(server_events(db, dev.device_id)) == last

        wait_for(
            drained,
            timeout=timeout,
            interval=0.2,
            message=lambda dev=dev: f"{dev.device_id}: outbox/state {dev.outbox_state()}, stored {len(server_events(db, dev.device_id))}\n"
            + (dev.proc.log_tail() if dev.proc else ""),
        )
        depth, last = dev.outbox_state()
        stored = server_events(db, dev.device_id)
        seqs = [s for _, s in stored]
        assert seqs == list(range(1, last + 1)), f"{dev.device_id}: stored sequence numbers are not exactly 1..{last}"
        assert len({e for e, _ in stored}) == len(stored), "an event id stored twice"
        ids = {e for e, _ in stored}
        accepted = {e for e, code in dev.submitted.items() if code == 202}
        assert accepted <= ids, f"{dev.device_id}: accepted but not stored: {sorted(accepted - ids)[:5]}"
        assert dev.outbox_integrity() == "ok"
