"""Scan benchmark: the phone's scan decision (POST /api/v1/scans) over HTTP on full-size registers.

    python bench/scan.py            # 1,000,000 enterprises, 5,000,000 inspections, 20,000 officers
    python bench/scan.py --quick    # 100,000 / 500,000 / 2,000, shorter phases (under a minute once cached)

What it does:

1. Registers. ``bench/_scan_data.py`` writes the registers straight into a fresh database made by
   ``server.db.migrate`` (one transaction of ``executemany``): enterprises with valid credit codes over 20
   regions with a risk/credit mix, 30 agencies with their fields, officers with credentials (1 % expired,
   0.5 % revoked), 2 % of the enterprises on the no-disturb list, and the past inspections over the last
   two years with one ``inspection_parts`` row each. The database is cached by size in ``$FE_BENCH_CACHE``
   (default: the system temporary directory) as ``fe-bench-scan-<enterprises>-<inspections>-<officers>-v<N>.db``
   and regenerated when older than 7 days; each run works on a copy (scans write).
2. Codes. Signed code texts are issued for a few thousand random enterprises with ``server.rules.codes.issue_code``
   on the copy before the server starts; the signing key is the one the server uses (``<db>.code-K1.key``
   beside the database, made by ``ensure_code_key``). The scan bodies pair each code with a random officer
   (any agency) and one of the officer's fields, so decisions are a realistic mix of allowed, join (an
   inspection under way), repeat (same field within the repeat window) and refused (no-disturb list, yearly
   cap, lapsed credential). If the server signs users in (``server.console.auth``), every officer gets a user and a
   session made with ``server.console.auth.add_user``/``sign_in`` (their scrypt stubbed for the set-up only), and
   each scan carries its officer's ``Authorization: Bearer`` token, so the session lookup is measured too.
3. The server runs as its own process (``python -m server.cli run``, uvicorn as shipped) on a free port,
   with a private memory-only Mosquitto for its ingest (idle here).
4. Open loop. One client process sends scans at a fixed rate (200/s; 30 s, 10 s with ``--quick``, after a
   2 s warm-up that is not counted). Sends are scheduled at fixed times whatever the answers do, over as many
   keep-alive connections as are needed, and each latency runs from the request's *scheduled* send time to
   its full answer, so a server that falls behind is charged for the wait (no coordinated omission). The
   client is a small asyncio HTTP/1.1 client (lighter than httpx, so it takes little of the machine's CPU).
5. Saturation with wrk (``/usr/bin/wrk``, Debian's package; installed with apt-get if missing): 50
   connections, 2 threads, 15 s (5 s), first on ``GET /ping`` (a trivial endpoint of the same server), then
   on ``POST /api/v1/scans`` cycling through pre-generated bodies (a Lua ``request`` function), then on
   ``/ping`` again; the better ping run is the baseline, so the ratio errs on the low side. Every scan is
   a write: a scan row (and an inspection and its part when allowed) committed with ``synchronous=FULL``.
6. ``--profile``: one more wrk scan run with ``py-spy record`` (non-blocking, raw stacks) attached to the
   server; the functions holding most samples are printed (the raw stacks are kept with ``--keep``).
   ``--profile-gil`` keeps only the samples of the thread holding the GIL: where the server's Python CPU goes.

The goals: p99 at most 25 ms at 200 scans/s; wrk scans/s at least 50 % of wrk ping/s.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402 - after the path set-up
import _scan_data  # noqa: E402

from server import db as dbmod  # noqa: E402
from server.rules.codes import ensure_code_key, issue_code  # noqa: E402
from server.storage.engine import sql  # noqa: E402

DATA_VERSION = 1
CACHE_MAX_AGE_S = 7 * 86_400
WRK = "/usr/bin/wrk"
GOAL_P99_MS = 25.0
GOAL_RATIO = 0.5


@dataclass(frozen=True)
class Plan:
    enterprises: int
    inspections: int
    officers: int
    codes: int
    open_loop_s: float
    wrk_s: int


FULL = Plan(enterprises=1_000_000, inspections=5_000_000, officers=20_000, codes=5_000, open_loop_s=30.0, wrk_s=15)
QUICK = Plan(enterprises=100_000, inspections=500_000, officers=2_000, codes=2_000, open_loop_s=10.0, wrk_s=5)
WARMUP_S = 2.0
#: The open-loop client gives up on a request after this long (its latency then counts as this).
REQUEST_TIMEOUT_S = 30.0


# ------------------------------------------------------------------------------------------ data


def cached_registers(plan: Plan, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The cached database of this size, generated if missing or stale."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"fe-bench-scan-{plan.enterprises}-{plan.inspections}-{plan.officers}-v{DATA_VERSION}.db"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        age = time.time() - meta["generated_ms"] / 1000
        if age < CACHE_MAX_AGE_S:
            c.say(f"registers: cached {path} ({path.stat().st_size / 1e6:,.0f} MB, generated {age / 3600:.1f} h ago in {meta['seconds']:.0f} s)")
            return path, meta
        c.say(f"registers: cached {path} is {age / 86400:.1f} days old: generating again")
    c.say(f"registers: generating {plan.enterprises:,} enterprises, {plan.inspections:,} inspections, {plan.officers:,} officers into {path}")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    for p in (tmp, path, meta_path):
        p.unlink(missing_ok=True)
    try:
        meta = _scan_data.generate(tmp, enterprises=plan.enterprises, inspections=plan.inspections, officers=plan.officers, progress=c.say)
        tmp.rename(path)
    finally:
        for p in tmp.parent.glob(tmp.name + "*"):
            p.unlink(missing_ok=True)
    meta_path.write_text(json.dumps(meta))
    c.say(f"registers: {path.stat().st_size / 1e6:,.0f} MB in {meta['seconds']:.0f} s")
    return path, meta


def issue_codes(db: str, key_base: Path, plan: Plan, rng: random.Random) -> list[str]:
    """Signed code texts for ``plan.codes`` random enterprises, issued on the run's database (a path or a URL;
    the code key is named after ``key_base``, where the server looks for it)."""
    numbers = rng.sample(range(plan.enterprises), plan.codes)
    with dbmod.writing(db) as tx:
        ensure_code_key(tx, key_base)
        return [issue_code(tx, key_base, _scan_data.credit_code(n, _scan_data.REGIONS[n % len(_scan_data.REGIONS)][0]))[0] for n in numbers]


#: One scan request: its JSON body and the officer's session token ("" when the server has no sign-in).
Scan = tuple[bytes, str]


_OFFICERS = sql("SELECT officer_id, agency_id FROM officers ORDER BY officer_id")
SESSIONS_PER_TX = 500


def officer_sessions(db: str) -> dict[str, str] | None:
    """A session token for every officer if this server signs users in (``server.console.auth``), else None.

    The users and sessions are made with ``server.console.auth``'s own ``add_user`` and ``sign_in``; only their
    scrypt (deliberately about 30 ms a hash) is replaced during the set-up by one precomputed hash, so
    20,000 officers take seconds, not minutes (and the sign-in rate limit is not involved).
    """
    try:
        from server.console import auth
    except ImportError:
        return None
    if not all(hasattr(auth, n) for n in ("add_user", "sign_in", "hash_password", "check_password")):
        return None
    password = "bench-password-1"
    stored = auth.hash_password(password)
    saved = auth.hash_password, auth.check_password
    auth.hash_password = lambda p: stored  # type: ignore[assignment]
    auth.check_password = lambda p, h: True  # type: ignore[assignment]
    tokens: dict[str, str] = {}
    with dbmod.reading(db) as tx:
        officers = tx.all(_OFFICERS)
    try:
        # Some hundreds per transaction: on PostgreSQL each user takes a transaction-scoped lock, and 20,000 of
        # them in one transaction overflow the lock table (max_locks_per_transaction x max_connections).
        for start in range(0, len(officers), SESSIONS_PER_TX):
            with dbmod.writing(db) as tx:
                for officer_id, agency_id in officers[start : start + SESSIONS_PER_TX]:
                    auth.add_user(tx, officer_id, password, "officer", agency_id=agency_id, officer_id=officer_id)
                    signed = auth.sign_in(tx, officer_id, password)
                    assert signed is not None
                    tokens[officer_id] = signed[0]
    finally:
        auth.hash_password, auth.check_password = saved  # type: ignore[assignment]
    return tokens


def scan_bodies(db_path: Path, codes: list[str], count: int, rng: random.Random, tokens: dict[str, str] | None) -> list[Scan]:
    """``count`` scans: a random code, a random officer (signed in, if the server signs users in), one of
    the officer's fields."""
    con = sqlite3.connect(db_path)
    try:
        officers = [(o, json.loads(f)) for o, f in con.execute("SELECT officer_id, fields FROM officers")]
    finally:
        con.close()
    out = []
    for _ in range(count):
        officer_id, fields = rng.choice(officers)
        body = json.dumps({"officer_id": officer_id, "code_text": rng.choice(codes), "field": rng.choice(fields)}, separators=(",", ":")).encode()
        out.append((body, tokens[officer_id] if tokens else ""))
    return out


_COUNTS = {
    "scans": sql("SELECT count(*) FROM scans"),
    "inspections": sql("SELECT count(*) FROM inspections"),
    "open_inspections": sql("SELECT count(*) FROM inspections WHERE status = 'open'"),
}


def register_counts(db: str) -> dict[str, int]:
    with dbmod.reading(db) as tx:
        return {k: int(tx.scalar(stmt)) for k, stmt in _COUNTS.items()}


# ------------------------------------------------------------------------------- open-loop client


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one server; a request takes an idle one or opens another."""

    def __init__(self, host: str, port: int, max_connections: int = 1000) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        # Beyond this many requests at once, further ones wait here (their latency still counts from
        # their scheduled time): a server far behind must not run the client out of file descriptors.
        self.limit = asyncio.Semaphore(max_connections)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, token: str = "") -> tuple[int, bytes]:
        async with self.limit:
            return await self._post(path, body, token)

    async def _post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n".encode()
        for attempt in range(2):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self._connect()
            reader, writer = conn
            try:
                writer.write(head + body)
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed before an answer")
                status = int(status_line.split()[1])
                length, chunked, close = 0, False, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = line.partition(b":")
                    k, v = k.strip().lower(), v.strip().lower()
                    if k == b"content-length":
                        length = int(v)
                    elif k == b"transfer-encoding" and b"chunked" in v:
                        chunked = True
                    elif k == b"connection" and v == b"close":
                        close = True
                if chunked:
                    parts = []
                    while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
                        parts.append(await reader.readexactly(size))
                        await reader.readline()
                    await reader.readline()
                    data = b"".join(parts)
                else:
                    data = await reader.readexactly(length)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: once more on a fresh one
                raise
            except BaseException:
                writer.close()
                raise
            if close:
                writer.close()
            else:
                self.idle.append(conn)
            return status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()


async def _open_loop(port: int, bodies: list[Scan], rate: float, seconds: float, warmup: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pool = HttpPool(c.HOST, port)
    n_warm = int(warmup * rate)
    n_total = n_warm + int(seconds * rate)
    lat: list[float | None] = [None] * n_total
    lag: list[float] = [0.0] * n_total
    statuses: Counter[int | str] = Counter()
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    in_flight = 0
    max_in_flight = 0

    async def one(i: int, scheduled: float) -> None:
        nonlocal in_flight, max_in_flight
        lag[i] = loop.time() - scheduled
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        try:
            status, data = await asyncio.wait_for(pool.post("/api/v1/scans", *bodies[i % len(bodies)]), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            status, data = type(e).__name__, b""
        finally:
            in_flight -= 1
        lat[i] = loop.time() - scheduled
        if i < n_warm:
            return
        statuses[status] += 1
        if status == 200:
            d = json.loads(data)
            outcomes[d["outcome"]] += 1
            codes[d["code"]] += 1

    t0 = loop.time() + 0.05
    tasks = []
    for i in range(n_total):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    send_end = loop.time()
    await asyncio.gather(*tasks)
    pool.close()
    measured_start = t0 + n_warm / rate
    measured = [x for x in lat[n_warm:] if x is not None]
    ms = [x * 1000 for x in measured]
    return {
        "requests": n_total - n_warm,
        "seconds": seconds,
        "achieved_rate": (n_total - n_warm) / (send_end - measured_start) if send_end > measured_start else float("nan"),
        "p50_ms": c.percentile(ms, 50),
        "p90_ms": c.percentile(ms, 90),
        "p99_ms": c.percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "send_lag_p99_ms": c.percentile([x * 1000 for x in lag[n_warm:]], 99),
        "send_lag_max_ms": max(lag[n_warm:]) * 1000,
        "statuses": dict(statuses),
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "outcomes": dict(outcomes),
        "codes": dict(codes.most_common()),
        "connections": pool.opened,
        "max_in_flight": max_in_flight,
    }


def open_loop(port: int, bodies: list[Scan], rate: float, seconds: float, warmup: float = WARMUP_S) -> dict[str, Any]:
    """Scans at a fixed rate, latency from each scheduled send time."""
    return asyncio.run(_open_loop(port, bodies, rate, seconds, warmup))


# ------------------------------------------------------------------------------------------- wrk

_WRK_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua_string(s: str) -> str:
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    return f"[{'=' * level}[{s}]{'=' * level}]"


def write_scan_lua(path: Path, scans: list[Scan]) -> None:
    """A wrk script POSTing the scans in turn (each thread from its own offset), each with its officer's
    session token when there is one."""
    table = ",\n".join(f"{{{_lua_string(b.decode())}, {_lua_string(t)}}}" for b, t in scans)
    path.write_text(
        "local scans = {\n" + table + "\n}\n"
        "local threads = 0\n"
        "function setup(thread)\n  thread:set('tid', threads)\n  threads = threads + 1\nend\n"
        "local i = 0\n"
        "function init(args)\n  i = ((tid or 0) * 7919) % #scans\nend\n"
        "function request()\n  i = i + 1\n  if i > #scans then i = 1 end\n"
        '  local headers = {["Content-Type"] = "application/json"}\n'
        '  if scans[i][2] ~= "" then headers["Authorization"] = "Bearer " .. scans[i][2] end\n'
        '  return wrk.format("POST", "/api/v1/scans", headers, scans[i][1])\nend\n' + _WRK_DONE
    )


def ensure_wrk() -> str:
    """wrk's path; installs Debian's package if it is missing."""
    found = shutil.which("wrk") or (WRK if Path(WRK).exists() else None)
    if found:
        return found
    c.say("wrk is missing: apt-get install -y wrk")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False, env=env)
    if not Path(WRK).exists():
        subprocess.run([*sudo, "apt-get", "update"], check=False, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True, env=env)
    return WRK


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int = 50, threads: int = 2, server_pid: int | None = None) -> dict[str, Any]:
    """One wrk run; its figures (req/s counts only 2xx/3xx answers), and the server's CPU per request."""
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
    cpu0 = c.cpu_seconds(server_pid) if server_pid else 0.0
    proc = c.spawn(argv, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=seconds + 60)
    c._children.remove(proc)
    cpu = c.cpu_seconds(server_pid) - cpu0 if server_pid else float("nan")
    text = out.decode(errors="replace")
    m = re.search(r"^WRKJSON (\{.*\})$", text, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    ok = r["requests"] - r["err_status"]
    r.update({"seconds": secs, "rps": ok / secs, "rps_all": r["requests"] / secs, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000})
    # CPU per request: less sensitive than req/s to other work on a shared machine (wrk's own CPU is not in it).
    r.update({"server_cpu_s": cpu, "server_cpu_ms_per_request": 1000 * cpu / r["requests"] if r["requests"] else float("nan"), "server_cpu_cores": cpu / secs})
    return r


def _wrk_line(name: str, r: dict[str, Any]) -> str:
    errs = {k[4:]: r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout") if r[k]}
    return (
        f"  wrk {name}: {r['rps']:,.0f} req/s ({r['requests']:,} in {r['seconds']:.1f} s), latency p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms; "
        f"server CPU {r['server_cpu_ms_per_request']:.2f} ms/request ({r['server_cpu_cores']:.2f} cores)"
    ) + (
        f", errors {errs}" if errs else ""
    )


# ----------------------------------------------------------------------------------------- profile


def profiled_wrk(wrk: str, url: str, script: Path, seconds: int, pid: int, out_dir: Path, *, gil: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = out_dir / "scan-profile.txt"
    spy = c.py_spy(pid, raw, seconds=seconds + 1, gil=gil)
    time.sleep(1.0)
    r = run_wrk(wrk, url, script, seconds, server_pid=pid)
    c.stop_py_spy(spy)
    return r, c.profile_summary(raw)


# -------------------------------------------------------------------------------------------- main


def measure(server: c.Server, bodies: list[Scan], plan: Plan, args: argparse.Namespace, wrk: str, work: Path, label: str, db_pid: int | None = None) -> dict[str, Any]:
    """Open loop, then wrk on /ping, scans, /ping (and the profiled run with ``--profile``) against one server;
    ``db_pid``: the PostgreSQL postmaster, whose processes' CPU per scan is reported too (SQLite's is the server's)."""
    assert server.proc is not None
    pid = server.proc.pid
    c.say(f"{label}: open loop: {args.rate:g} scans/s, {WARMUP_S:g} s warm-up then {plan.open_loop_s:g} s measured")
    cpu0 = c.cpu_seconds(pid)
    ol = open_loop(server.http_port, bodies, args.rate, plan.open_loop_s)
    ol_cpu_ms = 1000 * (c.cpu_seconds(pid) - cpu0) / (ol["requests"] + int(WARMUP_S * args.rate))
    c.say(
        f"  {ol['requests']:,} scans at {ol['achieved_rate']:.1f}/s: p50 {ol['p50_ms']:.1f} ms, p90 {ol['p90_ms']:.1f} ms, p99 {ol['p99_ms']:.1f} ms, "
        f"max {ol['max_ms']:.1f} ms (goal p99 <= {GOAL_P99_MS:g} ms: {'met' if ol['p99_ms'] <= GOAL_P99_MS else 'MISSED'})"
        + (f"; {ol['statuses']['TimeoutError']:,} gave up after {REQUEST_TIMEOUT_S:g} s and count at that" if ol["statuses"].get("TimeoutError") else "")
    )
    c.say(
        f"  non-200: {ol['non_200']} {ol['statuses']}; {ol['connections']} connections, at most {ol['max_in_flight']} in flight; "
        f"send lag p99 {ol['send_lag_p99_ms']:.1f} ms; server CPU {ol_cpu_ms:.2f} ms/scan"
    )
    total = sum(ol["outcomes"].values()) or 1
    c.say("  outcomes: " + ", ".join(f"{k} {v} ({100 * v / total:.1f} %)" for k, v in sorted(ol["outcomes"].items(), key=lambda kv: -kv[1])))
    c.say("  codes: " + ", ".join(f"{k} {v}" for k, v in ol["codes"].items()))

    # Saturation with wrk.
    ping_lua = work / "ping.lua"
    ping_lua.write_text(_WRK_DONE)
    scan_lua = work / f"scan-{label}.lua"
    write_scan_lua(scan_lua, bodies[:4000])
    c.say(f"{label}: wrk: 50 connections, 2 threads, {plan.wrk_s} s each: /ping, scans, /ping")
    ping1 = run_wrk(wrk, server.url + "/ping", ping_lua, plan.wrk_s, server_pid=pid)
    c.say(_wrk_line("GET /ping", ping1))
    db0 = c.cpu_seconds(db_pid) if db_pid else 0.0
    scans = run_wrk(wrk, server.url + "/api/v1/scans", scan_lua, plan.wrk_s, server_pid=pid)
    db_cpu_ms = 1000 * (c.cpu_seconds(db_pid) - db0) / max(1, scans["requests"]) if db_pid else None
    c.say(_wrk_line("POST /api/v1/scans", scans) + (f"; PostgreSQL CPU {db_cpu_ms:.2f} ms/request" if db_cpu_ms is not None else ""))
    ping2 = run_wrk(wrk, server.url + "/ping", ping_lua, plan.wrk_s, server_pid=pid)
    c.say(_wrk_line("GET /ping", ping2))
    ping_rps = max(ping1["rps"], ping2["rps"])
    ratio = scans["rps"] / ping_rps if ping_rps else float("nan")
    c.say(f"  scans / ping = {scans['rps']:,.0f} / {ping_rps:,.0f} = {ratio:.2f} (goal >= {GOAL_RATIO:g}: {'met' if ratio >= GOAL_RATIO else 'MISSED'})")
    out: dict[str, Any] = {
        "open_loop_rate": args.rate,
        "open_loop_achieved_rate": c.rounded(ol["achieved_rate"]),
        "open_loop_requests": ol["requests"],
        "p50_ms": round(ol["p50_ms"], 2),
        "p90_ms": round(ol["p90_ms"], 2),
        "p99_ms": round(ol["p99_ms"], 2),
        "max_ms": round(ol["max_ms"], 2),
        "non_200": ol["non_200"],
        "open_loop_server_cpu_ms": round(ol_cpu_ms, 3),
        "outcomes": ol["outcomes"],
        "p99_goal_met": ol["p99_ms"] <= GOAL_P99_MS,
        "scan_rps_wrk": c.rounded(scans["rps"]),
        "scan_wrk_p50_ms": round(scans["p50_ms"], 1),
        "scan_wrk_p99_ms": round(scans["p99_ms"], 1),
        "scan_wrk_errors": scans["err_status"] + scans["err_timeout"] + scans["err_connect"] + scans["err_read"] + scans["err_write"],
        "scan_server_cpu_ms": round(scans["server_cpu_ms_per_request"], 3),
        **({"scan_postgres_cpu_ms": round(db_cpu_ms, 3)} if db_cpu_ms is not None else {}),
        "ping_rps_wrk": c.rounded(ping_rps),
        "ping_server_cpu_ms": round(min(ping1["server_cpu_ms_per_request"], ping2["server_cpu_ms_per_request"]), 3),
        "ping_rps_wrk_runs": [c.rounded(ping1["rps"]), c.rounded(ping2["rps"])],
        "ratio": round(ratio, 3),
        "ratio_goal_met": ratio >= GOAL_RATIO,
    }
    if args.profile:
        c.say(f"{label}: profile: wrk scans {plan.wrk_s} s with py-spy on the server")
        pr, prof = profiled_wrk(wrk, server.url + "/api/v1/scans", scan_lua, plan.wrk_s, pid, work, gil=args.profile_gil)
        c.say(_wrk_line("POST /api/v1/scans (profiled)", pr))
        c.say(f"  {prof['samples']:,} samples of active threads; inclusive share (a function anywhere on the stack):")
        for f, share in prof["inclusive"]:
            c.say(f"    {100 * share:5.1f} %  {f}")
        c.say("  self share (the innermost frame):")
        for f, share in prof["self"][:15]:
            c.say(f"    {100 * share:5.1f} %  {f}")
        c.say("  by statement (the innermost frame in server/ or protocol/, with its line):")
        for f, share in prof["lines"][:20]:
            c.say(f"    {100 * share:5.1f} %  {f}")
        out["profile_scan_rps_wrk"] = c.rounded(pr["rps"])
        out["profile_samples"] = prof["samples"]
        out["profile_top_statements"] = [[f, round(sh, 3)] for f, sh in prof["lines"][:12]]
    return out


def prepare(db: str, key_base: Path, sqlite_copy: Path, plan: Plan, label: str) -> tuple[list[Scan], bool]:
    """Codes and officers' sessions on ``db``; the scan bodies (the same seed on every backend: the same scans)."""
    rng = random.Random(7)
    t0 = time.perf_counter()
    codes = issue_codes(db, key_base, plan, rng)
    c.say(f"{label}: issued {len(codes):,} signed codes in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    tokens = officer_sessions(db)
    if tokens is None:
        c.say(f"{label}: the server has no sign-in: scans are sent without a session")
    else:
        c.say(f"{label}: signed in {len(tokens):,} officers (server.console.auth users and sessions) in {time.perf_counter() - t0:.1f} s; each scan carries its officer's token")
    return scan_bodies(sqlite_copy, codes, 20_000, rng, tokens), tokens is not None


def after_run(db: str, before: dict[str, int], label: str) -> dict[str, int]:
    after = register_counts(db)
    c.say(
        f"{label}: registers after: {after['scans'] - before['scans']:,} scans recorded, {after['inspections'] - before['inspections']:,} inspections opened, "
        f"{after['open_inspections']:,} open (were {before['open_inspections']:,})"
    )
    return {"scans_recorded": after["scans"] - before["scans"], "inspections_opened": after["inspections"] - before["inspections"], "open_inspections_end": after["open_inspections"]}


def run_sqlite(db_path: Path, broker: c.Mosquitto, plan: Plan, args: argparse.Namespace, wrk: str, work: Path) -> dict[str, Any]:
    """The SQLite server as shipped (``run``, role all, one process)."""
    bodies, signed_in = prepare(str(db_path), db_path, db_path, plan, "sqlite")
    before = register_counts(str(db_path))
    server = c.Server(work, broker.port)
    startup_s = server.start(timeout=120)
    c.say(f"sqlite: server up on {server.url} in {startup_s:.1f} s (pid {server.proc.pid if server.proc else '?'})")
    out = measure(server, bodies, plan, args, wrk, work, "sqlite")
    server.stop()
    return {"signed_in": signed_in, **out, **after_run(str(db_path), before, "sqlite"), "server_startup_s": round(startup_s, 2)}


def run_postgres(sqlite_copy: Path, broker: c.Mosquitto, plan: Plan, args: argparse.Namespace, wrk: str, work: Path, workers: list[int]) -> dict[str, Any]:
    """The same registers in PostgreSQL (a private cluster with fsync on, or ``--db``), served by ``run --role api
    --workers N`` for each N; each N gets a fresh copy of the loaded database (CREATE DATABASE ... TEMPLATE)."""
    import _scan_pg

    from server.storage.engine import close_storage

    pg = None
    out: dict[str, Any] = {}
    key_dir = work / "pg-keys"
    key_dir.mkdir()
    key_base = key_dir / "server"
    try:
        if args.db:
            template = args.db
        else:
            pg = c.private_postgres(work)
            template = pg.create_database("bench_scan")
        c.say(f"postgresql: loading the registers by COPY{' into ' + args.db if args.db else ''}")
        loaded = _scan_pg.load(sqlite_copy, template, progress=c.say)
        c.say(f"postgresql: loaded in {loaded['seconds']:.1f} s")
        out["postgresql_load_s"] = round(loaded["seconds"], 1)
        bodies, _ = prepare(template, key_base, sqlite_copy, plan, "postgresql")
        close_storage(template)
        for n in workers:
            label = f"postgresql_{n}"
            db = pg.create_database(f"bench_scan_w{n}", template="bench_scan") if pg is not None else template
            before = register_counts(db)
            (work / label).mkdir()
            server = c.Server(work / label, broker.port, db=db, key_dir=key_dir, args=["--role", "api", "--workers", str(n)], needs_mqtt=False)
            startup_s = server.start(timeout=180)
            c.say(f"{label}: api role, {n} HTTP worker{'s' if n > 1 else ''}, up on {server.url} in {startup_s:.1f} s")
            res = measure(server, bodies, plan, args, wrk, work, label, db_pid=pg.pid if pg is not None else None)
            server.stop()
            res.update(after_run(db, before, label))
            close_storage(db)
            res["server_startup_s"] = round(startup_s, 2)
            out.update({f"{label}_{k}": v for k, v in res.items()})
    finally:
        if pg is not None:
            pg.close()
    return out


def main() -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--enterprises", type=int, help="enterprises in the register (default 1,000,000; --quick 100,000)")
        p.add_argument("--inspections", type=int, help="past inspections (default 5,000,000; --quick 500,000)")
        p.add_argument("--officers", type=int, help="officers (default 20,000; --quick 2,000)")
        p.add_argument("--rate", type=float, default=200.0, help="open-loop scans per second (default 200)")
        p.add_argument("--seconds", type=float, help="open-loop seconds measured (default 30; --quick 10)")
        p.add_argument("--wrk-seconds", type=int, help="seconds of each wrk run (default 15; --quick 5)")
        p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("FE_BENCH_CACHE") or tempfile.gettempdir()), help="where generated registers are cached")
        p.add_argument("--profile", action="store_true", help="one more wrk scan run under py-spy; print where the server's time goes")
        p.add_argument("--profile-gil", action="store_true", help="with --profile: only samples holding the GIL (Python's own CPU; SQLite and fsync left out)")
        p.add_argument("--backends", default="sqlite,postgresql", help="which to measure, in one run: sqlite, postgresql or both (default)")
        p.add_argument("--workers", default="1,2", help="PostgreSQL: the API's HTTP worker counts to measure (default 1,2)")
        p.add_argument("--db", help="PostgreSQL: load into this postgresql:// database (empty; all worker counts then share it) instead of a private cluster")

    args = c.bench_args("Scan benchmark: the phone's scan decision over HTTP (open-loop latency at 200/s, wrk saturation vs /ping).", extra)
    base = QUICK if args.quick else FULL
    plan = Plan(
        enterprises=args.enterprises or base.enterprises,
        inspections=args.inspections if args.inspections is not None else base.inspections,
        officers=args.officers or base.officers,
        codes=min(base.codes, args.enterprises or base.enterprises),
        open_loop_s=args.seconds or base.open_loop_s,
        wrk_s=args.wrk_seconds or base.wrk_s,
    )
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"sqlite", "postgresql"}:
        raise SystemExit(f"--backends {args.backends!r}: sqlite, postgresql or both")
    workers = [int(w) for w in args.workers.split(",")]
    mode = "quick" if args.quick else "full"
    started = time.monotonic()
    c.say(
        f"bench/scan.py ({mode}): {plan.enterprises:,} enterprises, {plan.inspections:,} inspections, {plan.officers:,} officers; "
        f"open loop {args.rate:g}/s for {plan.open_loop_s:g} s; wrk 50 connections x {plan.wrk_s} s; backends {', '.join(backends)}"
        + (f" (PostgreSQL API workers {', '.join(map(str, workers))})" if "postgresql" in backends else "")
    )
    wrk = ensure_wrk()
    cached, meta = cached_registers(plan, args.cache_dir)
    figures: dict[str, Any] = {"benchmark": "scan", "mode": mode}
    load_start = os.getloadavg()[0]
    with c.bench_session("fe-bench-scan-", keep=args.keep) as work:
        db_path = work / "server.db"
        t0 = time.perf_counter()
        shutil.copyfile(cached, db_path)
        dbmod.migrate(db_path)  # migrations added since the cache was made
        c.say(f"copied the registers in {time.perf_counter() - t0:.1f} s")
        broker = c.Mosquitto(work / "mosquitto").start()
        figures.update({"enterprises": plan.enterprises, "inspections": plan.inspections, "officers": plan.officers, "no_disturb": meta.get("no_disturb"), "codes_issued": plan.codes})
        if "sqlite" in backends:
            figures.update(run_sqlite(db_path, broker, plan, args, wrk, work))
        if "postgresql" in backends:
            # Loaded from the cached registers as generated (read-only; the SQLite run has written scans into its copy).
            figures.update(run_postgres(cached, broker, plan, args, wrk, work, workers))
        broker.stop()
        load_end = os.getloadavg()[0]
        figures.update({"cpus": os.cpu_count(), "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2), "seconds": round(time.monotonic() - started, 1)})
        summary = [("sqlite", "")] if "sqlite" in backends else []
        summary += [(f"postgresql, {n} worker{'s' if n > 1 else ''}", f"postgresql_{n}_") for n in workers] if "postgresql" in backends else []
        for name, k in summary:
            c.say(f"summary {name}: p99 {figures[k + 'p99_ms']} ms at {args.rate:g}/s; wrk scans {figures[k + 'scan_rps_wrk']:,.0f}/s, ping {figures[k + 'ping_rps_wrk']:,.0f}/s, ratio {figures[k + 'ratio']}")
    c.emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
