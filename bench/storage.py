"""Storage seam benchmark: the seam's overhead on the ingest's write path, against the raw drivers, in one run.

    python bench/storage.py            # 100,000 rows per variant, 3 rounds (about 2-3 minutes on 2 cores)
    python bench/storage.py --quick    # 20,000 rows per variant, 2 rounds (under a minute)

What it does, for each backend (SQLite, and PostgreSQL in a private cluster this benchmark starts with
``fsync=on``, never the machine's own service):

* Every variant inserts the same N rows of the real ``events`` table (a database migrated by
  ``server.db.migrate``, one per variant and round, so each starts from an empty table) in batches of B rows,
  one write transaction (commit, with fsync) per batch, as the ingest's writer does. The rows look like
  the ingest's: uuid4 event ids (random B-tree inserts), a ~780-byte signed body, a 64-byte signature,
  the decoded JSON, 50 devices with increasing sequence numbers.
* Variants:
  - ``raw``: the driver alone. sqlite3 with the server's connection settings (WAL, synchronous=FULL),
    ``BEGIN IMMEDIATE`` + ``executemany`` of the INSERT with ``?`` placeholders on tuples + ``COMMIT``;
    psycopg 3 on one connection: ``with conn.transaction()`` + ``cursor.executemany`` (psycopg pipelines it:
    one round trip for the batch) with ``%s`` placeholders on tuples.
  - ``seam_many``: ``server.storage.engine``: ``Storage.write(fn)`` with ``Tx.many`` of the same INSERT as a
    ``sql()`` statement with named parameters (dicts, made beforehand as raw's tuples are): the engine's own
    cost (connection handling, the transaction helper, the retry loop on PostgreSQL, the pool) plus binding
    by name instead of by position.
  - ``seam_ingest``: ``Storage.write(fn)`` with ``server.storage.devices.insert_events`` on ``EventRow``
    structs, the function the ingest calls (SQLite: one INSERT per row and its rowcount; PostgreSQL:
    pipelined ``executemany`` with RETURNING), so the figure includes what it does to tell new rows from
    duplicates, which the raw variants skip, and turning the structs into parameters.
* The variants of a round run in turn; the rate of each is the best of the rounds (a shared machine only
  ever makes a run slower). The ratio seam/raw is per backend. The benchmark process's CPU time per row
  (``time.process_time``, least of the rounds) is reported too: the seam's cost is CPU in this process, and
  CPU time moves far less than wall time when other work shares the machine and its disk (on PostgreSQL it
  leaves out the database server's own CPU, which is the same SQL for every variant).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402 - after the path set-up

DEVICES = 50
VARIANTS = ("raw", "seam_many", "seam_ingest")


@dataclass(frozen=True)
class Plan:
    rows: int
    batch: int
    rounds: int


FULL = Plan(rows=100_000, batch=500, rounds=3)
QUICK = Plan(rows=20_000, batch=500, rounds=2)


# ------------------------------------------------------------------------------------------- rows


def make_rows(n: int, seed: int = 12) -> list[Any]:
    """``n`` events-table rows as ``EventRow`` structs, shaped like the ingest's (see the module docstring)."""
    import hashlib
    import random

    from server.storage.devices import EventRow

    rng = random.Random(seed)
    now = int(time.time() * 1000)
    rows = []
    seqs = [0] * DEVICES
    for i in range(n):
        d = i % DEVICES
        seqs[d] += 1
        digest = hashlib.sha256(f"{i}:{rng.random()}".encode()).hexdigest()
        fields = {"file_name": f"{digest[:8]}.mp4", "media_kind": "video", "size_bytes": rng.randint(10**6, 10**8), "sha256": digest, "officer_id": f"OFF-{d:04d}"}
        body_json = json.dumps(fields, separators=(",", ":"))
        body = (body_json + "x" * max(0, 780 - len(body_json))).encode()
        rows.append(
            EventRow(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                device_id=f"DEV-BENCH-{d:04d}",
                seq=seqs[d],
                type="media_captured",
                device_time_ms=now + i,
                clock_error_ms=0,
                received_ms=now + i,
                stored_ms=now + i,
                wire_format="json",
                body=body,
                sig=rng.randbytes(64),
                body_json=body_json,
                prev_hash=hashlib.sha256(str(i - 1).encode()).hexdigest() if seqs[d] > 1 else None,
                body_sha256=hashlib.sha256(body).hexdigest(),
            )
        )
    return rows


def batches(rows: list[Any], size: int) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


_DEVICE_ROW = "INSERT INTO devices(device_id, model, kind, agency_id, public_key, wire_format, registered_ms) VALUES ({})"


def device_rows() -> list[tuple[Any, ...]]:
    return [(f"DEV-BENCH-{d:04d}", "body_recorder", "body_recorder", "AG-BENCH", "00" * 32, "json", 0) for d in range(DEVICES)]


# --------------------------------------------------------------------------------------- variants


def _columns() -> tuple[str, list[str]]:
    from server.storage.devices import EventRow

    names = list(EventRow.__struct_fields__)
    return ", ".join(names), names


def sqlite_raw(path: str, groups: list[list[Any]]) -> tuple[float, float]:
    """sqlite3 alone (the server's connection settings); seconds (wall, this process's CPU) for all batches."""
    import msgspec

    cols, names = _columns()
    text = f"INSERT INTO events({cols}) VALUES ({', '.join('?' * len(names))}) ON CONFLICT DO NOTHING"
    tuples = [[msgspec.structs.astuple(r) for r in g] for g in groups]
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for g in tuples:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(text, g)
            con.execute("COMMIT")
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        con.close()


def postgres_raw(url: str, groups: list[list[Any]]) -> tuple[float, float]:
    """psycopg 3 alone, one connection, executemany (pipelined) per batch; seconds (wall, this process's CPU) for all batches."""
    import msgspec
    import psycopg

    cols, names = _columns()
    text = f"INSERT INTO events({cols}) VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT DO NOTHING"
    tuples = [[msgspec.structs.astuple(r) for r in g] for g in groups]
    with psycopg.connect(url, autocommit=True) as con:
        t0, c0 = time.perf_counter(), time.process_time()
        for g in tuples:
            with con.transaction(), con.cursor() as cur:
                cur.executemany(text, g)
        return time.perf_counter() - t0, time.process_time() - c0


def seam_many(db: str, groups: list[list[Any]]) -> tuple[float, float]:
    """The engine: Storage.write + Tx.many with a sql() statement on dicts."""
    import msgspec

    from server.storage.engine import Storage, sql

    cols, names = _columns()
    stmt = sql(f"INSERT INTO events({cols}) VALUES ({', '.join(':' + n for n in names)}) ON CONFLICT DO NOTHING")
    dicts = [[msgspec.structs.asdict(r) for r in g] for g in groups]  # made beforehand, as raw's tuples are
    store = Storage.open(db)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for g in dicts:
            store.write(lambda tx, g=g: tx.many(stmt, g))
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        store.close()
        _forget_kept_sqlite()


def seam_ingest(db: str, groups: list[list[Any]]) -> tuple[float, float]:
    """The ingest's own insert through the seam: Storage.write + storage.devices.insert_events."""
    from server.storage.devices import insert_events
    from server.storage.engine import Storage

    store = Storage.open(db)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for g in groups:
            new = store.write(lambda tx, g=g: insert_events(tx, g))
            if len(new) != len(g):
                raise RuntimeError(f"insert_events stored {len(new)} of {len(g)} new rows")
        return time.perf_counter() - t0, time.process_time() - c0
    finally:
        store.close()
        _forget_kept_sqlite()


def _forget_kept_sqlite() -> None:
    """Close this thread's kept SQLite connections (the engine keeps a few per thread), so files can go."""
    from server.storage import engine

    for con in engine._local.__dict__.get("connections", {}).values():
        con.close()
    engine._local.__dict__.get("connections", {}).clear()


def count_rows(db: str) -> int:
    from server.storage.engine import Storage, sql

    store = Storage.open(db)
    try:
        return int(store.read(lambda tx: tx.scalar(sql("SELECT count(*) FROM events"))))
    finally:
        store.close()
        _forget_kept_sqlite()


# ------------------------------------------------------------------------------------------- backends


class SqliteDbs:
    """A migrated template file; each variant works on a fresh copy of it."""

    name = "sqlite"

    def __init__(self, work: Path) -> None:
        from server import db as dbmod

        self.dir = work / "sqlite"
        self.dir.mkdir()
        self.template = self.dir / "template.db"
        dbmod.migrate(self.template)
        con = sqlite3.connect(self.template, isolation_level=None)
        con.executemany(_DEVICE_ROW.format(", ".join("?" * 7)), device_rows())
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        path = self.dir / f"run{self.n}.db"
        shutil.copyfile(self.template, path)
        return str(path)

    def drop(self, db: str) -> None:
        for p in Path(db).parent.glob(Path(db).name + "*"):
            p.unlink(missing_ok=True)

    raw = staticmethod(sqlite_raw)

    def close(self) -> None:
        pass


class PostgresDbs:
    """A private cluster (fsync on); a migrated template database, copied for each variant."""

    name = "postgresql"

    def __init__(self, work: Path) -> None:
        from server import db as dbmod

        self.pg = c.private_postgres(work)
        url = self.pg.create_database("bench_template")
        dbmod.migrate(url)
        import psycopg

        with psycopg.connect(url, autocommit=True) as con, con.cursor() as cur:
            cur.executemany(_DEVICE_ROW.format(", ".join(["%s"] * 7)), device_rows())
        from server.storage.engine import close_storage

        close_storage(url)
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return self.pg.create_database(f"bench_run{self.n}", template="bench_template")

    def drop(self, db: str) -> None:
        self.pg.drop_database(db.rsplit("/", 1)[1])

    raw = staticmethod(postgres_raw)

    def close(self) -> None:
        self.pg.close()


def run_backend(dbs: Any, plan: Plan, groups: list[list[Any]]) -> dict[str, Any]:
    fns: dict[str, Callable[[str, list[list[Any]]], tuple[float, float]]] = {"raw": dbs.raw, "seam_many": seam_many, "seam_ingest": seam_ingest}
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(plan.rounds):
        order = VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS))  # alternate, so no variant always runs first
        for v in order:
            db = dbs.fresh()
            seconds, cpu_s = fns[v](db, groups)
            n = count_rows(db)
            if n != plan.rows:
                raise RuntimeError(f"{dbs.name} {v}: {n} rows stored, expected {plan.rows}")
            dbs.drop(db)
            rate = plan.rows / seconds
            runs[v].append(rate)
            best[v] = max(best.get(v, 0.0), rate)
            cpu[v] = min(cpu.get(v, float("inf")), 1e6 * cpu_s / plan.rows)
            c.say(f"  {dbs.name} round {r + 1} {v:11s}: {plan.rows:,} rows in {seconds:.2f} s = {rate:,.0f} rows/s; this process's CPU {1e6 * cpu_s / plan.rows:.1f} µs/row")
    out: dict[str, Any] = {f"{v}_rows_per_s": c.rounded(best[v]) for v in VARIANTS}
    out.update({f"{v}_runs": [c.rounded(x) for x in runs[v]] for v in VARIANTS})
    out.update({f"{v}_cpu_us_per_row": round(cpu[v], 2) for v in VARIANTS})
    out["ratio_seam_many_raw"] = round(best["seam_many"] / best["raw"], 3)
    out["ratio_seam_ingest_raw"] = round(best["seam_ingest"] / best["raw"], 3)
    c.say(
        f"{dbs.name}: raw {best['raw']:,.0f}, seam Tx.many {best['seam_many']:,.0f} ({out['ratio_seam_many_raw']:.0%} of raw), "
        f"seam insert_events {best['seam_ingest']:,.0f} rows/s ({out['ratio_seam_ingest_raw']:.0%} of raw); "
        f"this process's CPU per row (least of the rounds): raw {cpu['raw']:.1f}, Tx.many {cpu['seam_many']:.1f}, insert_events {cpu['seam_ingest']:.1f} µs"
    )
    return out


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rows", type=int, help="rows per variant (default 100,000; --quick 20,000)")
        p.add_argument("--batch", type=int, help="rows per transaction (default 500)")
        p.add_argument("--rounds", type=int, help="rounds of every variant (default 3; --quick 2)")
        p.add_argument("--backend", choices=["both", "sqlite", "postgresql"], default="both")

    args = c.bench_args("Storage seam overhead on the ingest's insert, against raw sqlite3 and psycopg.", extra)
    base = QUICK if args.quick else FULL
    plan = Plan(rows=args.rows or base.rows, batch=args.batch or base.batch, rounds=args.rounds or base.rounds)
    mode = "quick" if args.quick else "full"
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    c.say(f"bench/storage.py ({mode}): {plan.rows:,} events rows per variant in batches of {plan.batch}, {plan.rounds} rounds; variants {', '.join(VARIANTS)}")
    rows = make_rows(plan.rows)
    groups = batches(rows, plan.batch)
    figures: dict[str, Any] = {"benchmark": "storage", "mode": mode, "rows": plan.rows, "batch": plan.batch, "rounds": plan.rounds}
    with c.bench_session("fe-bench-storage-", keep=args.keep) as work:
        backends = [SqliteDbs, PostgresDbs]
        if args.backend != "both":
            backends = [b for b in backends if b.name == args.backend]
        for cls in backends:
            dbs = cls(work)
            try:
                res = run_backend(dbs, plan, groups)
            finally:
                dbs.close()
            figures.update({f"{cls.name}_{k}": v for k, v in res.items()})
    load_end = os.getloadavg()[0]
    c.say(f"done in {time.monotonic() - started:.0f} s; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end ({os.cpu_count()} CPUs)")
    figures.update({"cpus": os.cpu_count(), "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2), "seconds": round(time.monotonic() - started, 1)})
    c.emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
