"""Evidence benchmark: media hashing against ``sha256sum``, evidence-log appends, ``verify`` on 1,000,000 records.

    python bench/evidence.py            # 2 GiB file, 1,000,000 records (a few minutes on 2 cores)
    python bench/evidence.py --quick    # 256 MiB file, 100,000 records (under a minute)

What it does, in a temporary directory on the real disk (removed at the end):

1. **Hashing.** Writes a file of random bytes (AES-CTR keystream with a random key; 2 GiB, 256 MiB with
   ``--quick``) and fsyncs it, then hashes it with ``edge_agent.mediainfo.sha256_file`` and with
   coreutils ``sha256sum`` (a subprocess) in turn, three times each, alternating; the median of each in
   MB/s (10^6 bytes) and the ratio (goal: ``sha256_file`` at least 90 % of ``sha256sum``). Nothing is
   dropped from the page cache, so both read a **warm cache**: the figures are hashing speed, not disk
   speed. The two digests must agree.
2. **Log appends.** (a) The bare log: ``EvidenceLog.append`` for fabricated but realistic rows (a real
   ``media_captured`` body of about 700 bytes, a 64-byte signature) plus ``EvidenceLog.save``, 1,000
   appends per ``BEGIN IMMEDIATE`` ... ``COMMIT`` on a freshly migrated database with the server's
   settings (WAL, synchronous=FULL); appends/s, and the share of the time spent in COMMIT. (b) The whole
   ``store_batch`` path (envelope, Ed25519 verification, decode, insert, log append, device state, commit)
   in batches of 1,000 device-signed events from 50 devices, events/s; (c) the same with the server's
   ``Projector`` (for these events: the chain check against the neighbours and the ``media`` row), as the
   ingest writer runs it. Signing the events is the devices' work and happens before the clock starts.
3. **verify.** Builds a database of N stored events (1,000,000; 100,000 with ``--quick``) from 50 devices,
   each event a real device-signed ``media_captured`` body in a valid per-device hash chain, inserted with
   ``executemany`` (synchronous=OFF: the build is not what is measured) and logged with real leaf
   hashes, a persisted frontier and signed tree heads. The bodies are signed by a process pool. On the
   way, at a subset of 100,000 (10,000) records, a tree head is signed and ``verify`` runs with and
   without ``signatures=True``, and once more after one row was changed with an UPDATE (it must name
   exactly that row; the row is then restored). At N a second tree head is signed and
   ``verify(signatures=False)`` runs; it must report ok. Every ``verify`` runs in its own child process
   (as ``fe-server verify`` would), which reports its time and its peak RSS (``VmHWM``, also as the growth
   over the interpreter with the modules imported and the database open). The database stays in the page
   cache (warm). ``signatures=True`` for N records is extrapolated from the subset (labelled as such).
   Last, ``store_batch`` of further events of the same devices into that database (10,000; 5,000), to
   compare with the fresh database of 2b: ingest with a large table behind it.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402 - after the path set-up

import msgspec  # noqa: E402

from protocol import topics  # noqa: E402
from protocol.codec import encode  # noqa: E402
from protocol.messages import Envelope, GeoPoint, MediaCaptured  # noqa: E402
from protocol.signing import SigningKey  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.evidence.log import EvidenceLog, row_leaf_hash, sign_tree_head  # noqa: E402
from server.storage.engine import Tx  # noqa: E402

MiB = 1 << 20
DEVICES = 50
#: Events per device per build round (a round is DEVICES x this many events, interleaved by device).
ROUND = 100
BASE_MS = 1_795_000_000_000  # 2026-11-18 UTC
SERVER_KEY = SigningKey.from_seed(hashlib.sha256(b"fe-bench-evidence-server").digest())
INSERT_EVENT = (
    "INSERT INTO events(event_id, device_id, seq, type, device_time_ms, clock_error_ms, received_ms, stored_ms, wire_format, body, sig, body_json,"
    " prev_hash, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Plan:
    hash_bytes: int
    append_rows: int
    store_events: int
    verify_events: int
    subset_events: int


FULL = Plan(hash_bytes=2048 * MiB, append_rows=200_000, store_events=50_000, verify_events=1_000_000, subset_events=100_000)
QUICK = Plan(hash_bytes=256 * MiB, append_rows=50_000, store_events=10_000, verify_events=100_000, subset_events=10_000)


# ------------------------------------------------------------------------------------------- events


def device_id(d: int) -> str:
    return f"BR-BENCH-{d:03d}"


_keys: dict[int, SigningKey] = {}


def device_key(d: int) -> SigningKey:
    key = _keys.get(d)
    if key is None:
        key = _keys[d] = SigningKey.from_seed(hashlib.sha256(b"fe-bench-evidence-device-%d" % d).digest())
    return key


def message(d: int, seq: int, prev_hash: str | None) -> MediaCaptured:
    """The recording metadata a body recorder sends (deterministic per device and seq; about 700 bytes as JSON)."""
    h = hashlib.sha256(b"fe-bench-evidence:%d:%d" % (d, seq)).digest()
    ended = BASE_MS + seq * 45_000 + d * 17
    duration = 30_000 + int.from_bytes(h[:2], "big") * 20
    return MediaCaptured(
        event_id=str(uuid.UUID(bytes=h[:16], version=4)), device_id=device_id(d), seq=seq, device_time_ms=ended + 1_500, clock_error_ms=40,
        prev_hash=prev_hash, file_name=f"{time.strftime('%Y%m%d_%H%M%S', time.gmtime((ended - duration) // 1000))}_ZFY{d:04d}.mp4",
        media_kind="video", size_bytes=duration * 1_000 + h[2], sha256=hashlib.sha256(h).hexdigest(), started_ms=ended - duration,
        ended_ms=ended, duration_ms=duration, officer_id=f"OFF-3301-{d:04d}", inspection_id=str(uuid.UUID(bytes=h[16:], version=4)),
        case_no=f"杭市监罚〔2026〕{seq % 9000 + 1000}号", collector="张三", proves="现场检查全过程：出示执法证件、告知权利义务、检查经营场所",
        location=GeoPoint(lat=30.27 + h[3] / 10_000, lon=120.15 + h[4] / 10_000, accuracy_m=8.5),
    )  # fmt: skip


def make_chunk(task: tuple[int, int, int, str | None, bool]) -> tuple[int, list[tuple[Any, ...]], str | None]:
    """``count`` chained, signed events of device ``d`` from ``seq``: (d, rows, hash of the last body).

    A row is the ``events`` columns of INSERT_EVENT plus the leaf hash, or (with ``payloads``) the
    envelope a device publishes."""
    d, seq, count, prev_hash, payloads = task
    key = device_key(d)
    rows: list[tuple[Any, ...]] = []
    for s in range(seq, seq + count):
        m = message(d, s, prev_hash)
        body = encode(m, "json")
        sig = key.sign(body)
        body_sha = hashlib.sha256(body).hexdigest()
        if payloads:
            rows.append((encode(Envelope(body=body, sig=sig), "json"),))
        else:
            t = m.device_time_ms
            row = (m.event_id, m.device_id, s, "media_captured", t, m.clock_error_ms, t + 180, t + 230, "json", body, sig)
            rows.append((*row, msgspec.json.encode(m).decode(), prev_hash, body_sha, row_leaf_hash(row)))
        prev_hash = body_sha
    return d, rows, prev_hash


def interleave(chunks: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Rows of all devices in the order devices working in parallel send them."""
    out = []
    for i in range(max(len(ch) for ch in chunks)):
        out.extend(ch[i] for ch in chunks if i < len(ch))
    return out


def _pool_init() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def new_pool() -> Any:
    return multiprocessing.get_context("fork").Pool(processes=os.cpu_count() or 1, initializer=_pool_init)


def fresh_db(path: Path) -> sqlite3.Connection:
    """A migrated database with the server's connection settings and the bench devices registered."""
    dbmod.migrate(path)
    con = dbmod.connect(path)
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO devices(device_id, model, kind, agency_id, public_key, registered_ms) VALUES (?, 'ZFY-BENCH', 'body_recorder', 'AG-BENCH', ?, 0)",
        [(device_id(d), device_key(d).public_hex) for d in range(DEVICES)],
    )
    con.execute("COMMIT")
    return con


# ------------------------------------------------------------------------------------------ hashing


def write_random_file(path: Path, size: int) -> float:
    """``size`` random bytes (AES-256-CTR keystream, random key), fsynced; returns the seconds it took."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    t0 = time.perf_counter()
    enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
    zeros = bytes(16 * MiB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(zeros))
            f.write(enc.update(zeros[:n]))
            left -= n
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0


def run_hashing(work: Path, size: int) -> dict[str, Any]:
    from edge_agent.mediainfo import HASH_CHUNK, sha256_file

    path = work / "media.bin"
    secs = write_random_file(path, size)
    c.say(f"hashing: wrote {size / MiB:,.0f} MiB of random bytes in {secs:.1f} s (fsynced; warm cache: nothing is dropped from the page cache)")
    try:
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(3):
            t0 = time.perf_counter()
            digest, n = sha256_file(path)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
            theirs.append(time.perf_counter() - t0)
            if n != size or out.split()[0] != digest:
                raise SystemExit(f"digests differ: sha256_file {digest} ({n} bytes), sha256sum {out.split()[0]}")
            c.say(f"  run {i + 1}: sha256_file {size / ours[-1] / 1e6:,.0f} MB/s, sha256sum {size / theirs[-1] / 1e6:,.0f} MB/s")
    finally:
        path.unlink(missing_ok=True)
    version = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    mine, base = size / statistics.median(ours) / 1e6, size / statistics.median(theirs) / 1e6
    c.say(f"hashing {size / MiB:,.0f} MiB, median of 3: sha256_file {mine:,.0f} MB/s ({HASH_CHUNK // 1024} KiB reads), {version} {base:,.0f} MB/s, ratio {mine / base:.2f} (goal >= 0.90)")
    return {
        "hash_file_mib": size // MiB,
        "hash_cache": "warm",
        "sha256_file_mb_per_s": c.rounded(mine),
        "sha256sum_mb_per_s": c.rounded(base),
        "hash_ratio": round(mine / base, 3),
        "sha256_file_runs_s": [round(s, 3) for s in ours],
        "sha256sum_runs_s": [round(s, 3) for s in theirs],
        "sha256sum_version": version,
    }


# ---------------------------------------------------------------------------------------- appending


def run_bare_appends(work: Path, rows_n: int) -> dict[str, Any]:
    """EvidenceLog.append + save, 1,000 per transaction, synchronous=FULL."""
    con = fresh_db(work / "append.db")
    rows = []
    for i in range(rows_n):
        m = message(i % DEVICES, i // DEVICES + 1, None)
        t = m.device_time_ms
        rows.append((m.event_id, m.device_id, m.seq, "media_captured", t, 40, t + 180, t + 230, "json", encode(m, "json"), os.urandom(64)))
    body_bytes = statistics.mean(len(r[9]) for r in rows[:1000])
    log = EvidenceLog(Tx(con))
    now_ms = int(time.time() * 1000)
    commit_s = 0.0
    marks = []  # time after each transaction
    t0 = time.perf_counter()
    for i in range(0, rows_n, 1000):
        con.execute("BEGIN IMMEDIATE")
        for row in rows[i : i + 1000]:
            log.append(Tx(con), row[0], row, now_ms)
        log.save(Tx(con))
        tc = time.perf_counter()
        con.execute("COMMIT")
        marks.append(time.perf_counter())
        commit_s += marks[-1] - tc
    secs = time.perf_counter() - t0
    span = min(50, len(marks) // 2)  # transactions in the first and the last 50,000 rows
    first, last = span * 1000 / (marks[span - 1] - t0), span * 1000 / (marks[-1] - marks[-span - 1])
    assert con.execute("SELECT count(*) FROM evidence_log").fetchone()[0] == rows_n
    con.close()
    rate = rows_n / secs
    c.say(f"log appends, bare (EvidenceLog.append + save, 1,000 per transaction, synchronous=FULL): {rows_n:,} rows of {body_bytes:.0f}-byte bodies in {secs:.2f} s = {rate:,.0f} appends/s ({commit_s / secs:.0%} of it in COMMIT)")
    c.say(f"  first {span * 1000:,} rows {first:,.0f} appends/s, last {span * 1000:,} rows {last:,.0f} appends/s (the rate falls as the log grows)")
    return {
        "log_append_rows": rows_n, "log_append_per_s": c.rounded(rate), "log_append_per_s_first": c.rounded(first), "log_append_per_s_last": c.rounded(last),
        "log_append_commit_share": round(commit_s / secs, 3), "log_append_body_bytes": round(body_bytes),
    }  # fmt: skip


def run_store_batches(work: Path, events: int, pool: Any) -> dict[str, Any]:
    """store_batch in batches of 1,000 from 50 devices, without and with the Projector."""
    from protocol.decision import Policy
    from server.ingest.projector import Projector
    from server.ingest.store import DeviceKeys, Incoming
    from server.ingest.batch import store_batch

    per_device = events // DEVICES
    t0 = time.perf_counter()
    chunks = sorted(pool.map(make_chunk, [(d, 1, per_device, None, True) for d in range(DEVICES)]))
    payloads = interleave([[(topics.device_up(device_id(d)), r[0]) for r in rows] for d, rows, _ in chunks])
    c.say(f"store_batch: {len(payloads):,} signed media_captured events from {DEVICES} devices built in {time.perf_counter() - t0:.1f} s (not timed); payload {statistics.mean(len(p) for _, p in payloads[:1000]):.0f} bytes")
    out: dict[str, Any] = {"store_events": len(payloads), "event_payload_bytes": round(statistics.mean(len(p) for _, p in payloads[:1000]))}
    for label, key, projector in (("store_batch", "store_batch_events_per_s", None), ("store_batch + Projector", "store_batch_projector_events_per_s", Projector(Policy()))):
        con = fresh_db(work / f"{key}.db")
        keys = DeviceKeys(con)
        now = int(time.time() * 1000)
        batches = [[Incoming(t, p, now) for t, p in payloads[i : i + 1000]] for i in range(0, len(payloads), 1000)]
        stored = 0
        t0 = time.perf_counter()
        for batch in batches:
            stored += store_batch(con, batch, keys, projector=projector).stored
        secs = time.perf_counter() - t0
        if stored != len(payloads) or con.execute("SELECT size FROM log_state").fetchone()[0] != len(payloads):
            raise SystemExit(f"{label}: stored {stored} of {len(payloads)}")
        con.close()
        out[key] = c.rounded(len(payloads) / secs)
        c.say(f"{label} (verify, decode, insert, log append, commit; batches of 1,000, synchronous=FULL): {len(payloads) / secs:,.0f} events/s")
    return out


# ------------------------------------------------------------------------------------------- verify


def verify_child(db: str, public_key: str, signatures: bool, workers: int = 1) -> int:
    """Run verify from this process (``workers`` > 1: ``verify_parallel``); print one JSON line with its result, time,
    CPU time (its workers' included) and peak RSS."""
    import resource

    from server.evidence.verify import verify, verify_parallel

    def cpu() -> float:
        return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))

    con = dbmod.connect(db)
    con.execute("SELECT count(*) FROM devices").fetchone()
    before = c.rss_mb(os.getpid())
    t0, cpu0 = time.perf_counter(), cpu()
    report = verify(Tx(con), public_key, signatures=signatures) if workers == 1 else verify_parallel(db, public_key, signatures=signatures, workers=workers)
    secs, cpu_s = time.perf_counter() - t0, cpu() - cpu0
    after = c.rss_mb(os.getpid())
    print(
        msgspec.json.encode(
            {
                "ok": report.ok, "events": report.events, "log_size": report.log_size, "seconds": secs, "cpu_s": cpu_s, "workers": workers,
                "problems": [[p.problem, p.event_id] for p in report.problems[:10]], "problem_count": len(report.problems),
                "heads": [[h.tree_size, h.root_matches, h.signature_valid] for h in report.tree_heads],
                "chains": len(report.chains), "verified_links": sum(ch.verified_links for ch in report.chains),
                "broken": sum(len(ch.broken_at) + len(ch.missing_predecessor) for ch in report.chains),
                "hwm_before_mb": before["VmHWM"], "hwm_after_mb": after["VmHWM"], "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
            }
        ).decode(),
        flush=True,
    )  # fmt: skip
    return 0


def run_verify_child(db: Path, *, signatures: bool = False, workers: int = 1) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--verify-child", str(db), "--key", SERVER_KEY.public_hex, "--workers", str(workers)] + (["--signatures"] if signatures else [])
    proc = c.spawn(argv, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    c._children.remove(proc)
    if proc.returncode != 0:
        raise SystemExit(f"verify child failed ({proc.returncode})")
    return msgspec.json.decode(out.decode().strip().splitlines()[-1])


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['seconds']:.1f} s = {r['events'] / r['seconds']:,.0f} records/s (CPU {r['cpu_s']:.1f} s, {r['workers']} process(es)), ok={r['ok']}, problems {r['problem_count']}, heads {r['heads']},"
        f" {r['verified_links']:,} chain links, peak RSS {r['hwm_after_mb']:.0f} MB (+{r['hwm_after_mb'] - r['hwm_before_mb']:.0f} MB over {r['hwm_before_mb']:.0f} MB before verify)"
    )


def run_verify(work: Path, plan: Plan, pool: Any) -> dict[str, Any]:
    path = work / "verify.db"
    con = fresh_db(path)
    con.execute("PRAGMA synchronous=OFF")  # building the database is not what is measured
    log = EvidenceLog(Tx(con))
    out: dict[str, Any] = {}
    prev: list[str | None] = [None] * DEVICES
    next_seq = [1] * DEVICES
    build_s = 0.0

    def tasks() -> list[tuple[int, int, int, str | None, bool]]:
        return [(d, next_seq[d], ROUND, prev[d], False) for d in range(DEVICES)]

    def take(result: list[tuple[int, list[tuple[Any, ...]], str | None]]) -> list[list[tuple[Any, ...]]]:
        result.sort(key=lambda r: r[0])
        for d, rows, last in result:
            prev[d] = last
            next_seq[d] += len(rows)
        return [rows for _, rows, _ in result]

    def insert(chunks: list[list[tuple[Any, ...]]]) -> None:
        rows = interleave(chunks)
        con.execute("BEGIN IMMEDIATE")
        con.executemany(INSERT_EVENT, [r[:14] for r in rows])
        first = log.frontier.size
        for r in rows:
            log.frontier.append(r[14])
        con.executemany("INSERT INTO evidence_log(idx, event_id, leaf_hash, appended_ms) VALUES (?, ?, ?, ?)", [(first + i, r[0], r[14], r[7]) for i, r in enumerate(rows)])
        log.save(Tx(con))
        con.execute("COMMIT")

    for stage, target in (("subset", plan.subset_events), ("full", plan.verify_events)):
        t0 = time.perf_counter()
        if log.frontier.size < target:
            pending = pool.map_async(make_chunk, tasks(), chunksize=5)
        while log.frontier.size < target:
            chunks = take(pending.get())
            if log.frontier.size + 2 * DEVICES * ROUND <= target:
                pending = pool.map_async(make_chunk, tasks(), chunksize=5)  # the next round is signed while this one is inserted
            insert(chunks)
            if log.frontier.size % 100_000 == 0:
                c.say(f"  built {log.frontier.size:,} records ({time.perf_counter() - t0:.0f} s)")
        con.execute("BEGIN IMMEDIATE")
        sign_tree_head(Tx(con), SERVER_KEY, now_ms=BASE_MS + log.frontier.size)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        build_s += time.perf_counter() - t0
        size = log.frontier.size
        db_mb = path.stat().st_size / 1e6
        c.say(f"verify DB: {size:,} stored events from {DEVICES} devices + log + {stage} tree head, {db_mb:,.0f} MB ({build_s:.0f} s to build so far)")
        if stage == "subset":
            plain = run_verify_child(path)
            c.say(f"verify {size:,} records, signatures=False: {describe(plain)}")
            signed = run_verify_child(path, signatures=True)
            c.say(f"verify {size:,} records, signatures=True:  {describe(signed)}")
            if not (plain["ok"] and signed["ok"]):
                raise SystemExit("verify found problems in an untouched database")
            event_id = con.execute("SELECT event_id FROM events WHERE rowid = ?", (size // 2,)).fetchone()[0]
            con.execute("UPDATE events SET received_ms = received_ms + 1 WHERE event_id = ?", (event_id,))
            tampered = run_verify_child(path)
            con.execute("UPDATE events SET received_ms = received_ms - 1 WHERE event_id = ?", (event_id,))
            detected = not tampered["ok"] and tampered["problems"] == [["changed", event_id]]
            c.say(f"sanity: after UPDATE events SET received_ms = received_ms + 1 on one row, verify reports {tampered['problems']} (ok={tampered['ok']}): {'named exactly that row' if detected else 'NOT DETECTED AS EXPECTED'} (row restored)")
            if not detected:
                raise SystemExit("verify did not name the changed row")
            sig_per_row_s = (signed["seconds"] - plain["seconds"]) / size
            out.update(
                {
                    "verify_subset_events": size, "verify_subset_s": round(plain["seconds"], 2), "verify_subset_signatures_s": round(signed["seconds"], 2),
                    "verify_subset_peak_rss_mb": c.rounded(plain["hwm_after_mb"]), "verify_tamper_named": detected,
                }
            )  # fmt: skip
        else:
            full = run_verify_child(path)
            c.say(f"verify {size:,} records, signatures=False: {describe(full)}")
            if not full["ok"] or full["events"] != size or full["log_size"] != size:
                raise SystemExit("verify did not report ok for the full database")
            par = run_verify_child(path, signatures=True, workers=os.cpu_count() or 1)
            c.say(f"verify {size:,} records, signatures=True, verify_parallel: {describe(par)}")
            if not par["ok"] or par["events"] != size:
                raise SystemExit("verify_parallel did not report ok for the full database")
            out.update({"verify_parallel_signatures_s": round(par["seconds"], 2), "verify_parallel_signatures_cpu_s": round(par["cpu_s"], 2), "verify_parallel_workers": par["workers"],
                        "verify_cpu_s": round(full["cpu_s"], 2)})
            est = full["seconds"] + sig_per_row_s * size
            c.say(
                f"verify {size:,} records, signatures=True: about {est:.0f} s (EXTRAPOLATED: the {plan.subset_events:,}-record run's extra"
                f" {sig_per_row_s * 1e6:.0f} us per row for the signatures, added to the measured {full['seconds']:.1f} s)"
            )
            out.update(
                {
                    "verify_events": size, "verify_s": round(full["seconds"], 2), "verify_records_per_s": c.rounded(size / full["seconds"]), "verify_ok": full["ok"],
                    "verify_peak_rss_mb": c.rounded(full["hwm_after_mb"]), "verify_rss_growth_mb": c.rounded(full["hwm_after_mb"] - full["hwm_before_mb"]),
                    "verify_signatures_s_extrapolated": round(est, 1), "verify_signature_us_per_row": c.rounded(sig_per_row_s * 1e6),
                    "verify_db_mb": c.rounded(db_mb), "verify_build_s": round(build_s, 1),
                }
            )  # fmt: skip
    con.close()
    out.update(store_on_big_db(path, pool, [(d, next_seq[d], prev[d]) for d in range(DEVICES)], per_device=ROUND * (2 if size >= 1_000_000 else 1)))
    return out


def store_on_big_db(path: Path, pool: Any, chains: list[tuple[int, int, str | None]], per_device: int) -> dict[str, Any]:
    """store_batch (no projector) of further events of the same devices into the verify database (after verify)."""
    from server.ingest.store import DeviceKeys, Incoming
    from server.ingest.batch import store_batch

    chunks = sorted(pool.map(make_chunk, [(d, seq, per_device, last, True) for d, seq, last in chains]))
    payloads = interleave([[(topics.device_up(device_id(d)), r[0]) for r in rows] for d, rows, _ in chunks])
    con = dbmod.connect(path)
    held = con.execute("SELECT count(*) FROM events").fetchone()[0]
    keys = DeviceKeys(con)
    now = int(time.time() * 1000)
    batches = [[Incoming(t, p, now) for t, p in payloads[i : i + 1000]] for i in range(0, len(payloads), 1000)]
    t0 = time.perf_counter()
    stored = sum(store_batch(con, batch, keys).stored for batch in batches)
    secs = time.perf_counter() - t0
    con.close()
    if stored != len(payloads):
        raise SystemExit(f"store_batch on the verify database: stored {stored} of {len(payloads)}")
    c.say(f"store_batch into the verify database already holding {held:,} events: {stored:,} events, {stored / secs:,.0f} events/s (compare the fresh database above)")
    return {"store_batch_big_db_events": held, "store_batch_big_db_events_per_s": c.rounded(stored / secs)}


# --------------------------------------------------------------------------------------------- main


def main() -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--verify-events", type=int, help=f"records for verify, a multiple of {DEVICES * ROUND:,} (default {FULL.verify_events:,}; --quick {QUICK.verify_events:,})")
        p.add_argument("--verify-child", help=argparse.SUPPRESS)
        p.add_argument("--key", help=argparse.SUPPRESS)
        p.add_argument("--signatures", action="store_true", help=argparse.SUPPRESS)
        p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)

    args = c.bench_args("Evidence: sha256_file vs sha256sum, log appends, verify on 1,000,000 records.", extra)
    if args.verify_child:
        return verify_child(args.verify_child, args.key, args.signatures, args.workers)
    plan = QUICK if args.quick else FULL
    if args.verify_events:
        if args.verify_events % (DEVICES * ROUND):
            raise SystemExit(f"--verify-events must be a multiple of {DEVICES * ROUND}")
        plan = Plan(plan.hash_bytes, plan.append_rows, plan.store_events, args.verify_events, min(plan.subset_events, args.verify_events))
    mode = "quick" if args.quick else "full"
    c.say(f"bench/evidence.py ({mode}): {os.cpu_count()} CPUs")
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    figures: dict[str, Any] = {"benchmark": "evidence", "mode": mode}
    with c.bench_session("fe-bench-evidence-", keep=args.keep) as work, new_pool() as pool:
        figures.update(run_hashing(work, plan.hash_bytes))
        figures.update(run_bare_appends(work, plan.append_rows))
        figures.update(run_store_batches(work, plan.store_events, pool))
        figures.update(run_verify(work, plan, pool))
    load_end = os.getloadavg()[0]
    c.say(f"done in {time.monotonic() - started:.0f} s; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end")
    figures.update({"cpus": os.cpu_count(), "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2), "seconds": round(time.monotonic() - started, 1)})
    c.emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
