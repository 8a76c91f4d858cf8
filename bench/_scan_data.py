"""Registers for the scan benchmark (bench/scan.py), written straight into a fresh server database.

``generate(path, enterprises=, inspections=, officers=)`` makes a database with ``server.db.migrate`` and
fills it in one transaction with ``executemany``:

* 10 enforcement fields, 30 agencies (7 kinds: market regulation, fire, ecology, emergency management,
  labour, health, transport) spread over 20 regions, each with its kind's fields;
* enterprises with valid unified social credit codes (check characters from
  ``protocol.creditcode.check_character``), Chinese names and addresses, 20 regions, a risk/credit mix
  (low 40 %, medium 45 %, high 15 %; A 30 %, B 45 %, C 18 %, D 7 %);
* officers of the agencies, each credentialed for a non-empty subset of the agency's fields, valid today
  except 1 % expired and 0.5 % revoked;
* about 2 % of the enterprises on the no-disturb list;
* past inspections spread evenly over the last two years (high-risk enterprises are inspected five
  times, medium ones twice as often as low ones), each with one ``inspection_parts`` row by an officer of
  the lead agency holding that field; the ones opened in the last 8 hours are still open, the others ended
  with a result. So the repeat-window, yearly-cap, frequency and join queries of a scan meet realistic data.

Inspection ids are uuid4 texts as the server writes them, inserted in key order, and the secondary
indexes are dropped during the load and rebuilt from their own ``CREATE INDEX`` text afterwards, so the
schema ends exactly as ``migrate`` made it. Nothing else (no ANALYZE) is added.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from protocol.creditcode import CHARSET, check_character
from server import db as dbmod

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

FIELDS = [
    ("food", "食品安全", "food safety"),
    ("drug", "药品安全", "drug safety"),
    ("quality", "产品质量", "product quality"),
    ("market", "市场秩序", "market order"),
    ("fire", "消防安全", "fire safety"),
    ("environment", "生态环境", "environment"),
    ("work_safety", "安全生产", "work safety"),
    ("labour", "劳动保障", "labour protection"),
    ("health", "卫生健康", "public health"),
    ("transport", "交通运输", "transport"),
]

#: Agency kinds: (id prefix, name, English name, fields).
AGENCY_KINDS = [
    ("SAMR", "市场监督管理局", "Market regulation", ["food", "drug", "quality", "market"]),
    ("FIRE", "消防救援支队", "Fire rescue", ["fire"]),
    ("EEB", "生态环境局", "Ecology and environment", ["environment"]),
    ("EMB", "应急管理局", "Emergency management", ["work_safety", "fire"]),
    ("HRSS", "人力资源和社会保障局", "Human resources and social security", ["labour"]),
    ("HEALTH", "卫生健康委员会", "Health commission", ["health", "food"]),
    ("TRANS", "交通运输局", "Transport", ["transport", "work_safety"]),
]

REGIONS = [
    ("110101", "东城区"), ("110102", "西城区"), ("110105", "朝阳区"), ("110106", "丰台区"), ("110108", "海淀区"),
    ("110114", "昌平区"), ("310101", "黄浦区"), ("310104", "徐汇区"), ("310115", "浦东新区"), ("440103", "荔湾区"),
    ("440106", "天河区"), ("440305", "南山区"), ("440306", "宝安区"), ("510104", "锦江区"), ("510107", "武侯区"),
    ("330106", "西湖区"), ("320102", "玄武区"), ("420106", "武昌区"), ("610113", "雁塔区"), ("500103", "渝中区"),
]  # fmt: skip

N_AGENCIES = 30
RISKS = (("low", 40), ("medium", 45), ("high", 15))
CREDITS = (("A", 30), ("B", 45), ("C", 18), ("D", 7))
#: Relative inspection frequency by risk class.
RISK_WEIGHT = {"low": 1.0, "medium": 2.0, "high": 5.0}
RESULTS = (("no_violation", 75), ("rectification_ordered", 15), ("case_opened", 5), ("referred", 2), ("not_completed", 3))
NO_DISTURB_SHARE = 0.02
OPEN_HOURS = 8  # inspections opened this recently are still under way

_TRADES = ["餐饮", "食品", "商贸", "科技", "建材", "物流", "医药", "服装", "印刷", "化工", "汽修", "酒店", "五金", "电子", "家居", "超市"]
_WORDS = "华兴泰安顺达鑫源盛隆宏远恒通瑞丰嘉禾金海天成新创永信德聚福康利民万佳和美"
_ROADS = ["中关村大街", "建国路", "人民路", "解放路", "长安街", "中山路", "南京路", "深南大道", "天府大道", "文一路"]
_SPACE = 31**9
_SCATTER = 1_000_003  # coprime to 31**9: consecutive numbers scatter over the key space


def credit_code(n: int, region: str) -> str:
    """A valid credit code for number n (distinct n give distinct codes)."""
    x = (n * _SCATTER) % _SPACE
    org = []
    for _ in range(9):
        x, d = divmod(x, 31)
        org.append(CHARSET[d])
    body = "91" + region + "".join(org)
    return body + check_character(body)


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _uuid4_texts(rng: random.Random, n: int) -> list[str]:
    """n distinct uuid4 texts, sorted."""
    out: set[str] = set()
    while len(out) < n:
        for _ in range(n - len(out)):
            h = f"{rng.getrandbits(128):032x}"
            out.add(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return sorted(out)


def generate(path: Path, *, enterprises: int, inspections: int, officers: int, seed: int = 20261124, now_ms: int | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the registers into a fresh database at ``path`` (which must not exist); returns a summary."""
    if path.exists():
        raise FileExistsError(path)
    now_ms = now_ms or int(time.time() * 1000)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    dbmod.migrate(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")  # a fresh file: nothing to roll back to
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-2000000")  # 2 GB
    con.execute("PRAGMA temp_store=MEMORY")
    dropped = [
        (name, sql)
        for name, sql in con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('enterprises', 'inspections', 'inspection_parts', 'officers', 'no_disturb')"
        )
    ]
    con.execute("BEGIN")
    for name, _ in dropped:
        con.execute(f"DROP INDEX {name}")

    con.executemany("INSERT INTO fields(field_id, name, name_en) VALUES (?, ?, ?)", FIELDS)
    agencies: list[tuple[str, list[str]]] = []
    rows = []
    for i in range(N_AGENCIES):
        prefix, name, name_en, fields = AGENCY_KINDS[i % len(AGENCY_KINDS)]
        region, district = REGIONS[i % len(REGIONS)]
        agency_id = f"{prefix}-{region}"
        agencies.append((agency_id, fields))
        rows.append((agency_id, f"{district}{name}", f"{name_en}, {region}", region, json.dumps(fields)))
    con.executemany("INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (?, ?, ?, ?, ?)", rows)

    # Officers: credentialed for a non-empty subset of their agency's fields.
    officer_rows = []
    by_agency_field: dict[tuple[str, str], list[str]] = {}
    for n in range(officers):
        agency_id, fields = agencies[n % N_AGENCIES]
        k = rng.randint(1, len(fields))
        mine = sorted(rng.sample(fields, k))
        officer_id = f"OFF-{n:06d}"
        valid_from = now_ms - rng.randint(30, 3 * 365) * DAY_MS
        valid_to = now_ms + rng.randint(30, 3 * 365) * DAY_MS
        revoked = None
        u = rng.random()
        if u < 0.01:
            valid_to = now_ms - rng.randint(1, 300) * DAY_MS
        elif u < 0.015:
            revoked = now_ms - rng.randint(1, 300) * DAY_MS
        else:
            for f in mine:
                by_agency_field.setdefault((agency_id, f), []).append(officer_id)
        officer_rows.append((officer_id, f"执法员{n:06d}", agency_id, f"ZF{n:08d}", json.dumps(mine), valid_from, valid_to, revoked))
    con.executemany(
        "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms, revoked_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", officer_rows
    )
    progress(f"  {len(FIELDS)} fields, {N_AGENCIES} agencies, {officers:,} officers ({time.perf_counter() - t0:.1f} s)")

    # Enterprises, inserted in key order (the table is WITHOUT ROWID on the credit code).
    risk_names, risk_w = zip(*RISKS, strict=True)
    credit_names, credit_w = zip(*CREDITS, strict=True)
    risks = rng.choices(risk_names, weights=risk_w, k=enterprises)
    credits = rng.choices(credit_names, weights=credit_w, k=enterprises)
    codes = []
    ent_rows = []
    for n in range(enterprises):
        region, district = REGIONS[n % len(REGIONS)]
        code = credit_code(n, region)
        codes.append(code)
        name = f"{district}{_WORDS[n % 31]}{_WORDS[(n // 31) % 31]}{_WORDS[(n // 961) % 31]}{_TRADES[n % len(_TRADES)]}有限公司{n}"
        ent_rows.append((code, name, f"{district}{_ROADS[n % len(_ROADS)]}{n % 997 + 1}号", region, risks[n], credits[n]))
    ent_rows.sort()
    con.executemany("INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (?, ?, ?, ?, ?, ?)", ent_rows)
    del ent_rows
    progress(f"  {enterprises:,} enterprises ({time.perf_counter() - t0:.1f} s)")

    listed = rng.sample(range(enterprises), int(enterprises * NO_DISTURB_SHARE))
    con.executemany(
        "INSERT INTO no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms) VALUES (?, ?, ?, ?, 'supervisor-bench', ?)",
        (
            (codes[n], "A级纳税信用、连续三年无违法记录", now_ms - (f := rng.randint(10, 600) * DAY_MS), None if rng.random() < 0.7 else now_ms + rng.randint(30, 700) * DAY_MS, now_ms - f)
            for n in listed
        ),
    )
    progress(f"  {len(listed):,} enterprises on the no-disturb list")

    # Past inspections, one part each.
    ids = _uuid4_texts(rng, inspections)
    progress(f"  {inspections:,} inspection ids ({time.perf_counter() - t0:.1f} s)")
    cum = []
    total = 0.0
    for r in risks:
        total += RISK_WEIGHT[r]
        cum.append(total)
    pairs = [(a, f) for (a, f), offs in by_agency_field.items() if offs]
    result_names, result_w = zip(*RESULTS, strict=True)
    span = 2 * 365 * DAY_MS
    open_count = 0
    chunk = 200_000

    def batches() -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        nonlocal open_count
        for start in range(0, inspections, chunk):
            k = min(chunk, inspections - start)
            which = rng.choices(range(enterprises), cum_weights=cum, k=k)
            results = rng.choices(result_names, weights=result_w, k=k)
            insp, parts = [], []
            for j in range(k):
                n = which[j]
                agency_id, field = pairs[rng.randrange(len(pairs))]
                officer_id = rng.choice(by_agency_field[(agency_id, field)])
                opened = now_ms - 60_000 - rng.randrange(span)
                if opened > now_ms - OPEN_HOURS * HOUR_MS:
                    status, ended, result = "open", None, None
                    open_count += 1
                else:
                    status, ended, result = "ended", opened + rng.randint(20, 240) * 60_000, results[j]
                iid = ids[start + j]
                insp.append((iid, codes[n], REGIONS[n % len(REGIONS)][0], agency_id, field, status, opened, ended))
                parts.append((iid, officer_id, agency_id, field, opened, ended, result))
            yield insp, parts

    done = 0
    for insp, parts in batches():
        con.executemany("INSERT INTO inspections(inspection_id, credit_code, region, lead_agency_id, field, status, opened_ms, ended_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", insp)
        con.executemany(
            "INSERT INTO inspection_parts(inspection_id, officer_id, agency_id, field, matter, joined_ms, ended_ms, result, summary) VALUES (?, ?, ?, ?, '', ?, ?, ?, '')",
            parts,
        )
        done += len(insp)
        if done % 1_000_000 == 0 or done == inspections:
            progress(f"  {done:,} inspections ({time.perf_counter() - t0:.1f} s)")
    del ids
    t_idx = time.perf_counter()
    for _, sql in dropped:
        con.execute(sql)
    progress(f"  rebuilt {len(dropped)} indexes in {time.perf_counter() - t_idx:.1f} s")
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return {
        "enterprises": enterprises,
        "inspections": inspections,
        "open_inspections": open_count,
        "officers": officers,
        "no_disturb": len(listed),
        "agencies": N_AGENCIES,
        "fields": len(FIELDS),
        "generated_ms": now_ms,
        "seconds": time.perf_counter() - t0,
    }
