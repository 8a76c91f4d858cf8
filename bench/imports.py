"""Import benchmark: a generated enterprises CSV through ``import_csv`` into a fresh server database.

    python bench/imports.py            # 1,000,000 enterprises
    python bench/imports.py --quick    # 100,000 enterprises
    python bench/imports.py --rows N   # any other count

What it does, in a temporary directory on the real disk (synchronous=FULL, WAL, as the server runs):

1. Writes N enterprises (valid credit codes with their check characters, Chinese names and addresses,
   mixed risk and credit grades, in no particular key order) as a UTF-8 CSV with a BOM, as Excel saves it.
2. Imports it into a freshly migrated database: rows per second over the whole call (reading, checking,
   staging, the duplicate and clash checks, the write transaction and its commit), and the seconds the
   database's write lock was held (what a running server's writers would wait for).
3. Imports the same file again with --replace (every row an update) and reports the same figures.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402 - after the path set-up

from protocol.creditcode import CHARSET, check_character  # noqa: E402
from server import db as dbmod  # noqa: E402
from server.imports import import_csv  # noqa: E402

FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
#: Organisation codes are 9 characters of base 31; a multiplier coprime to 31**9 scatters consecutive
#: numbers over the key space, so the file is in no key order (as a real register export is not).
_SPACE = 31**9
_SCATTER = 1_000_003
_REGIONS = ("110101", "110102", "110105", "110106", "110108", "310101", "440305", "510107")
_RISKS = ("low", "medium", "medium", "high")
_CREDITS = ("A", "B", "B", "C", "D")


def credit_code(n: int) -> str:
    """A valid credit code for number n (distinct n give distinct codes)."""
    x = (n * _SCATTER) % _SPACE
    org = []
    for _ in range(9):
        x, d = divmod(x, 31)
        org.append(CHARSET[d])
    body = "91" + _REGIONS[n % len(_REGIONS)] + "".join(org)
    return body + check_character(body)


def write_csv(path: Path, rows: int) -> None:
    """N enterprises as Excel writes CSV UTF-8 (with a BOM, CRLF line ends)."""
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        f.write("credit_code,name,address,region,risk,credit\r\n")
        for n in range(rows):
            region = _REGIONS[n % len(_REGIONS)]
            f.write(f"{credit_code(n)},测试企业{n}有限公司,某市某区某路{n % 997}号,{region},{_RISKS[n % 4]},{_CREDITS[n % 5]}\r\n")


def timed_import(db: Path, csv_path: Path, rows: int, *, replace: bool) -> dict[str, float]:
    t0 = time.perf_counter()
    result = import_csv(db, "enterprises", csv_path, replace=replace, progress=False)
    seconds = time.perf_counter() - t0
    if not result.ok or result.rows != rows:
        raise SystemExit(f"import failed: {result.error_count} errors, first {result.errors[:3]}")
    return {"seconds": seconds, "rows_per_s": rows / seconds, "write_lock_s": result.write_s, "updated": result.updated}


def main() -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rows", type=int, help=f"enterprises in the file (default {FULL_ROWS:,}; --quick {QUICK_ROWS:,})")

    args = c.bench_args("Import benchmark: N enterprises from CSV into a fresh server database.", extra)
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    mode = "quick" if args.quick else "full"
    c.say(f"bench/imports.py ({mode}): {rows:,} enterprises, one CSV file, import_csv into a fresh database (WAL, synchronous=FULL)")
    figures: dict[str, Any] = {"benchmark": "imports", "mode": mode, "rows": rows}
    with c.bench_session("fe-bench-imports-", keep=args.keep) as work:
        csv_path = work / "enterprises.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, rows)
        c.say(f"wrote {csv_path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
        db = work / "server.db"
        dbmod.migrate(db)

        first = timed_import(db, csv_path, rows, replace=False)
        c.say(f"import: {first['seconds']:.1f} s, {first['rows_per_s']:,.0f} rows/s; write lock held {first['write_lock_s']:.1f} s")
        again = timed_import(db, csv_path, rows, replace=True)
        c.say(f"import --replace (all updates): {again['seconds']:.1f} s, {again['rows_per_s']:,.0f} rows/s; write lock held {again['write_lock_s']:.1f} s")

        con = sqlite3.connect(db)
        stored = con.execute("SELECT count(*) FROM enterprises").fetchone()[0]
        con.close()
        if stored != rows:
            raise SystemExit(f"expected {rows} enterprises in the database, found {stored}")
        figures.update(
            {
                "csv_mb": c.rounded(csv_path.stat().st_size / 1e6),
                "db_mb": c.rounded(sum(p.stat().st_size for p in work.glob("server.db*")) / 1e6),
                "import_s": round(first["seconds"], 2),
                "import_rows_per_s": c.rounded(first["rows_per_s"]),
                "import_write_lock_s": round(first["write_lock_s"], 2),
                "replace_s": round(again["seconds"], 2),
                "replace_rows_per_s": c.rounded(again["rows_per_s"]),
                "replace_write_lock_s": round(again["write_lock_s"], 2),
            }
        )
    c.emit(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
