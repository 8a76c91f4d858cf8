"""Shared pieces of the benchmarks: a private Mosquitto, the server as a child process, device bundles,
child-process bookkeeping, percentiles and the closing JSON line.

Everything runs on 127.0.0.1, in temporary directories, and every process started here is stopped on
exit (normal end, exception, Ctrl-C or SIGTERM).

Run as a script, this file also holds the raw paho QoS 1 publisher and subscriber used as the
broker baseline (``python bench/_common.py raw-pub|raw-sub ...``), so that each runs in its own
process as a plain paho client would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
MOSQUITTO = os.environ.get("FE_BENCH_MOSQUITTO", "/usr/sbin/mosquitto")

#: Processes started by this process and not yet stopped; stopped by ``stop_all`` (atexit / signals).
_children: list[subprocess.Popen[bytes]] = []


# ---------------------------------------------------------------------------------------------- output


def say(line: str) -> None:
    """A human-readable progress line (flushed at once)."""
    print(line, flush=True)


def emit(figures: dict[str, Any]) -> None:
    """The closing line: one JSON object holding the benchmark's figures (always the LAST line)."""
    print(json.dumps(figures, sort_keys=False), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rounded(x: float, digits: int = 1) -> float:
    return float(round(x, digits))


def bench_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The common command line: ``--quick`` (a run under a minute) plus a benchmark's own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller run (under a minute); figures are noisier")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (printed) for inspection")
    if extra:
        extra(p)
    return p.parse_args()


# ------------------------------------------------------------------------------------ process control


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL; forget the process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    """Stop every child still running (newest first)."""
    for proc in reversed(list(_children)):
        stop_process(proc, timeout=10)


def spawn(argv: list[str], *, log_path: Path | None = None, stdin: int | None = subprocess.DEVNULL, stdout: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child process that ``stop_all`` will stop; its output goes to ``log_path`` unless ``stdout`` is given."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("FE_FAULT_PAUSE_BEFORE_COMMIT_S", None)
    if stdout is None and log_path is not None:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
    else:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=None, env=full_env, cwd=ROOT)
    _children.append(proc)
    return proc


@contextlib.contextmanager
def bench_session(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary working directory; on leaving (even by SIGTERM/Ctrl-C) every child is stopped and the
    directory removed (unless ``keep``)."""

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    # On a real disk (never tmpfs): fsync costs are part of what is measured.
    base = os.environ.get("FE_BENCH_TMP") or ("/var/tmp" if Path("/var/tmp").is_dir() else None)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=base)
    try:
        yield Path(tmp)
    finally:
        stop_all()
        for s, h in old.items():
            signal.signal(s, h)
        if keep:
            say(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def rss_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) of a process, in MB (10^6 bytes)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024 / 1e6
    return out


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll until ``predicate()`` is truthy; RuntimeError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - "not yet"
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------- ports


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never 1883/8883: the machine's own broker)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in (1883, 8883):
            return port


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------- Mosquitto


class Mosquitto:
    """A private, memory-only Mosquitto on a free port of 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            "max_queued_messages 1000000",
            "max_inflight_messages 20",
            f"log_dest file {self.directory / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        return "\n".join(lines) + "\n"

    def start(self) -> Mosquitto:
        conf = self.directory / "mosquitto.conf"
        conf.write_text(self.config_text())
        self.proc = spawn([MOSQUITTO, "-c", str(conf)], log_path=self.directory / "mosquitto.out")
        wait_until(lambda: self.proc is not None and (self.proc.poll() is None or _raise(f"mosquitto exited: {self.output()}")) and port_accepts(self.port), 10, "mosquitto to listen")
        return self

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.directory / "mosquitto.out", self.directory / "mosquitto.log") if p.exists())

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def _raise(msg: str) -> bool:
    raise RuntimeError(msg)


# ---------------------------------------------------------------------------------------- PostgreSQL


def private_postgres(work: Path, settings: dict[str, str] | None = None) -> Any:
    """A private PostgreSQL cluster in ``work/postgres`` (tests/support/postgres.py's ``Postgres``: initdb, a free
    port on 127.0.0.1, never the machine's own service), started with fsync on (durability is part of what is
    measured); the caller ``close()``s it (before ``bench_session`` removes the folder)."""
    from tests.support.postgres import Postgres

    os.chmod(work, 0o755)  # the cluster's OS user (postgres, when run as root) must traverse the work folder
    directory = work / "postgres"
    directory.mkdir()
    return Postgres(directory, settings={"fsync": "on", "synchronous_commit": "on", **(settings or {})}).start()


# ------------------------------------------------------------------------------------------ server


class Server:
    """``python -m server.cli run`` as a child process on free ports."""

    def __init__(self, directory: Path, mqtt_port: int, *, db: str | None = None, key_dir: Path | None = None, args: Sequence[str] = (), name: str = "server", needs_mqtt: bool = True) -> None:
        """``db``: a ``postgresql://`` URL (then ``key_dir`` holds the key files) or a SQLite path (default
        ``<directory>/server.db``); ``args``: more ``run`` options (``--role ingest``, ``--workers 2``, ...)."""
        self.directory = directory
        self.db_path = directory / "server.db"
        self.db = db or str(self.db_path)
        self.key_dir = key_dir
        self.args = list(args)
        self.needs_mqtt = needs_mqtt
        self.mqtt_port = mqtt_port
        self.http_port = free_port()
        self.url = f"http://{HOST}:{self.http_port}"
        self.log_path = directory / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def key_base(self) -> Path:
        """What the server's key files are named after (server.settings.key_base)."""
        if self.key_dir is not None and self.db.startswith(("postgresql://", "postgres://")):
            return self.key_dir / "server"
        return Path(self.db)

    @property
    def key_path(self) -> Path:
        return self.key_base.with_name(self.key_base.name + ".server.key")

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until /health says the ingest is connected; returns the seconds it took."""
        t0 = time.monotonic()
        self.spawn()
        self.wait_ready(timeout)
        return time.monotonic() - t0

    def spawn(self) -> None:
        """Start the process without waiting (``wait_ready`` waits); several servers then start at once."""
        argv = [sys.executable, "-m", "server.cli", "run", "--db", self.db, "--mqtt-port", str(self.mqtt_port), "--http-port", str(self.http_port)]
        if self.key_dir is not None:
            argv += ["--key-dir", str(self.key_dir)]
        self.proc = spawn(argv + self.args, log_path=self.log_path)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(self._ready, timeout, "the server's /health", interval=0.05)

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise SystemExit(f"server exited:\n{self.log_tail()}")
        try:
            health = self.health()
        except OSError:
            return False
        return bool(health.get("mqtt_connected")) or not self.needs_mqtt

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)
            self.proc = None


# ------------------------------------------------------------------------------------------ devices


#: Bench timings: heartbeats and the local API out of the way, quick reconnects and resends.
BENCH_TUNING = {
    "status__heartbeat_s": 3600.0,
    "local_api__port": 0,
    "mqtt__reconnect_min_s": 1.0,
    "mqtt__reconnect_max_s": 2.0,
}


def provision_devices(
    db_path: Path | str, out_dir: Path, count: int, mqtt_port: int, *, model: str = "body_recorder", tuning: dict[str, Any] | None = None, key_base: Path | None = None
) -> list[Path]:
    """Register ``count`` devices on the server database (a SQLite path, or a URL with ``key_base`` =
    ``Server.key_base``); returns their device.toml paths (tuned)."""
    import msgspec

    from protocol.config import encode_device_config, load_device_config
    from server.evidence.keys import load_or_create_server_key
    from server.rules.registry import provision

    base = key_base or Path(db_path)
    key = load_or_create_server_key(base.with_name(base.name + ".server.key"))
    broker_dir = base.with_name(base.name + ".broker") if key_base is not None else None
    made = provision(db_path, key, model=model, agency_id="AG-BENCH", out_dir=out_dir, count=count, mqtt_port=mqtt_port, broker_dir=broker_dir)
    settings = {**BENCH_TUNING, **(tuning or {})}
    paths = []
    for p in made:
        path = p.bundle_dir / "device.toml"
        cfg = load_device_config(path)
        for dotted, value in settings.items():
            section, name = dotted.split("__")
            cfg = msgspec.structs.replace(cfg, **{section: msgspec.structs.replace(getattr(cfg, section), **{name: value})})
        path.write_text(encode_device_config(cfg))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------- raw paho QoS 1 baseline


def paho_client(client_id: str, inflight: int) -> Any:
    """A paho client as the baseline uses it: MQTT v5 (clean start, session expiry 0), callback API 2,
    ``inflight`` QoS 1 messages in flight, no queue limit of its own."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    return c


def _raw_sub(port: int, topic: str, count: int, timeout: float) -> int:
    """Receive ``count`` QoS 1 messages; print READY once subscribed, then one JSON line with timings."""
    got = 0
    first = last = 0.0
    done = threading.Event()
    subscribed = threading.Event()
    c = paho_client("bench-raw-sub", 20)

    def on_connect(client: Any, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(client: Any, userdata: object, mid: int, rcs: object, props: object) -> None:
        subscribed.set()

    def on_message(client: Any, userdata: object, msg: Any) -> None:
        nonlocal got, first, last
        now = time.time()
        if got == 0:
            first = now
        got += 1
        last = now
        if got >= count:
            done.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(HOST, port, keepalive=30)
    c.loop_start()
    if not subscribed.wait(10):
        print(json.dumps({"error": "not subscribed"}), flush=True)
        return 1
    print("READY", flush=True)
    done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"received": got, "first_wall": first, "last_wall": last}), flush=True)
    return 0 if got >= count else 1


def _raw_pub(port: int, topic: str, count: int, size: int, inflight: int, timeout: float) -> int:
    """Publish ``count`` QoS 1 messages of ``size`` bytes as fast as paho allows; print one JSON line."""
    acked = 0
    done = threading.Event()
    connected = threading.Event()
    c = paho_client("bench-raw-pub", inflight)

    def on_connect(client: Any, userdata: object, flags: object, rc: object, props: object) -> None:
        connected.set()

    def on_publish(client: Any, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        acked += 1
        if acked >= count:
            done.set()

    c.on_connect, c.on_publish = on_connect, on_publish
    c.connect(HOST, port, keepalive=30)
    c.loop_start()
    if not connected.wait(10):
        print(json.dumps({"error": "not connected"}), flush=True)
        return 1
    payload = os.urandom(size // 2).hex().encode()[:size].ljust(size, b"x")
    start = time.time()
    for _ in range(count):
        c.publish(topic, payload, qos=1)
    done.wait(timeout)
    end = time.time()
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"acked": acked, "start_wall": start, "end_wall": end}), flush=True)
    return 0 if acked >= count else 1


def raw_paho_qos1(port: int, count: int, *, size: int = 600, inflight: int = 20, timeout: float = 300.0) -> dict[str, float]:
    """Raw broker baseline: one paho publisher process sends ``count`` ``size``-byte QoS 1 messages (paho
    max_inflight ``inflight``), one paho subscriber process receives them at QoS 1. Messages per second
    from the first publish to the last message received."""
    topic = f"bench/raw/{os.getpid()}"
    me = str(Path(__file__).resolve())
    sub = spawn([sys.executable, me, "raw-sub", "--port", str(port), "--topic", topic, "--count", str(count), "--timeout", str(timeout)], stdout=subprocess.PIPE)
    try:
        assert sub.stdout is not None
        line = sub.stdout.readline().decode().strip()
        if line != "READY":
            raise RuntimeError(f"raw subscriber did not start: {line!r}")
        pub = spawn([sys.executable, me, "raw-pub", "--port", str(port), "--topic", topic, "--count", str(count), "--size", str(size), "--inflight", str(inflight), "--timeout", str(timeout)], stdout=subprocess.PIPE)
        pub_out, _ = pub.communicate(timeout=timeout + 30)
        _children.remove(pub)
        sub_out, _ = sub.communicate(timeout=timeout + 30)
        _children.remove(sub)
    finally:
        for p in (sub,):
            if p in _children:
                stop_process(p)
    p_res = json.loads(pub_out.decode().strip().splitlines()[-1])
    s_res = json.loads(sub_out.decode().strip().splitlines()[-1])
    if s_res.get("received", 0) < count:
        raise RuntimeError(f"raw subscriber received {s_res.get('received')} of {count} messages")
    elapsed = s_res["last_wall"] - p_res["start_wall"]
    return {"messages": count, "seconds": elapsed, "msgs_per_s": count / elapsed, "publisher_acked_s": p_res["end_wall"] - p_res["start_wall"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) and its live descendants (uvicorn's workers with
    ``--workers N``, the ingest's signature-checking process) have used so far."""
    stats: dict[int, tuple[int, float]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(d.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    return sum(stats[p][1] for p in tree if p in stats)


# ----------------------------------------------------------------------------------------- profiles


def py_spy(pid: int, raw: Path, *, rate: int = 250, seconds: float | None = None, threads: bool = False, gil: bool = False) -> subprocess.Popen[bytes]:
    """``py-spy record`` (non-blocking, raw collapsed stacks into ``raw``) attached to ``pid``; stop it with
    ``stop_py_spy`` (SIGINT makes it write its file) or let ``seconds`` run out. ``gil``: only samples of the thread
    holding the GIL (where Python's own CPU goes; time in C with the GIL released, waits and fsyncs, is left out)."""
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        raise SystemExit(f"--profile needs py-spy in the virtualenv ({exe}): .venv/bin/pip install py-spy")
    argv = [str(exe), "record", "--nonblocking", "--format", "raw", "-r", str(rate), "-p", str(pid), "-o", str(raw)]
    if seconds is not None:
        argv += ["-d", str(int(seconds + 0.999))]
    if threads:
        argv.append("--threads")
    if gil:
        argv.append("--gil")
    return spawn(argv, log_path=raw.with_suffix(".log"))


def stop_py_spy(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Stop a ``py_spy`` recording and wait for its file."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout)
    if proc in _children:
        _children.remove(proc)


def profile_summary(raw: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive and self shares of functions in py-spy's raw (collapsed) stacks, and per thread when it was
    recorded with ``--threads`` (its stacks then start with the thread)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        with_lines = stack.split(";")
        if with_lines[0].startswith(("thread ", "process ")):
            threads[with_lines.pop(0)] += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in with_lines] or ["?"]
        total += count
        for f in set(frames):
            inclusive[f] += count
        own[frames[-1]] += count
        # The innermost frame in the project's own code, with its line: which statement the time is under.
        mine = [f for f in with_lines if re.search(r"\((server|protocol)/", f)]
        lines[mine[-1] if mine else "(outside server/ and protocol/) " + frames[-1]] += count

    def share(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(f, n / total) for f, n in counter.most_common(k)] if total else []

    return {"samples": total, "threads": share(threads, top), "inclusive": share(inclusive, top), "self": share(own, top), "lines": share(lines, top)}


def _main() -> int:
    p = argparse.ArgumentParser(description="raw paho QoS 1 publisher/subscriber for the broker baseline")
    p.add_argument("role", choices=["raw-pub", "raw-sub"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--inflight", type=int, default=20)
    p.add_argument("--timeout", type=float, default=300.0)
    a = p.parse_args()
    if a.role == "raw-sub":
        return _raw_sub(a.port, a.topic, a.count, a.timeout)
    return _raw_pub(a.port, a.topic, a.count, a.size, a.inflight, a.timeout)


if __name__ == "__main__":
    raise SystemExit(_main())
