"""A demo district: registers for the devices already provisioned, and a scenario file for the simulator.

``fe-server demo-seed`` fills an empty database with agencies, fields, enterprises (with signed codes),
officers (one per scanning device, credentialed for their agency's fields; a body recorder is worn by an officer of
its agency whose device cannot record), a no-disturb list and complaint tickets, and writes ``scenario.json`` beside
the device bundles: which officer carries which device, the codes on the enterprises' doors, the no-disturb list and
its complaint tickets. It also adds the person trying the demo: an officer account the simulator never uses
(``DEMO_OFFICER``), a superior assignment that officer may cite, and pictures of door codes to photograph
(``doors/`` beside the bundles' folder). Nothing here is used outside the demo and the benchmarks.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from pathlib import Path

from protocol.cst import CST
from protocol.creditcode import check_character
from server import db as dbmod
from server import settings
from server.cases.demo import OFFICERS as CASE_OFFICERS
from server.cases.demo import seed_cases
from server.console.auth import add_user, hash_password
from server.rules.codes import issue_code
from server.storage import device_register, registers
from server.storage import users as user_store
from server.storage.engine import Tx

REGION = "110108"
#: The demo's sign-in password for every demo user (printed by scripts/demo.sh; never used outside the demo).
DEMO_PASSWORD = "fe-demo-2026"
#: The officer account printed for the phone page: no simulated device uses it, so "my inspections" shows only what
#: the person trying the demo did.
DEMO_OFFICER = "officer-demo"
DEMO_OFFICER_ID = "OFF-DEMO-1"
DEMO_AGENCY = "market-regulation"
DEMO_ASSIGNMENT = "海淀市监交〔2026〕8号"
DAY_MS = 86_400_000
AGENCIES = {
    "market-regulation": ("海淀区市场监督管理局", "Haidian market regulation bureau", ["food_safety", "product_quality"]),
    "ecology": ("海淀区生态环境局", "Haidian ecology and environment bureau", ["pollution"]),
    "emergency-management": ("海淀区应急管理局", "Haidian emergency management bureau", ["work_safety", "fire_safety"]),
    "urban-management": ("海淀区城市管理综合执法局", "Haidian urban management bureau", ["city_appearance"]),
}
FIELDS = {
    "food_safety": ("食品安全", "food safety"),
    "product_quality": ("产品质量", "product quality"),
    "pollution": ("污染防治", "pollution control"),
    "work_safety": ("安全生产", "work safety"),
    "fire_safety": ("消防安全", "fire safety"),
    "city_appearance": ("市容环境", "city appearance"),
}
_NAMES = ("餐饮", "超市", "汽修", "印刷", "化工", "物流", "建材", "食品加工", "服装", "电子")
_PLACES = ("中关村", "五道口", "学院路", "万柳", "西三旗", "上地", "苏州街", "紫竹院")


def _code(n: int) -> str:
    body = f"91{REGION}MA{n:07d}"
    return body + check_character(body)


def seed_demo(db_path: str | Path, devices_dir: Path, *, enterprises: int = 200, seed: int = 7, key_base: Path | None = None) -> dict[str, object]:
    """Fill the registers for the devices in the database and write the simulator's scenario.

    ``db_path`` is a SQLite file or a ``postgresql://`` URL; ``key_base`` names the code-signing key's file (default:
    the SQLite file; with PostgreSQL it must be given)."""
    key_base = key_base or settings.key_base(db_path, None)
    dbmod.migrate(db_path)
    with dbmod.writing(db_path) as tx:
        scenario, summary = _seed(tx, key_base, enterprises=enterprises, rng=random.Random(seed), now=int(time.time() * 1000))
        codes = [c["credit_code"] for c in scenario["codes"]]  # type: ignore[attr-defined]
        summary["doors"] = write_doors(tx, key_base, list(scenario["no_disturb"]), codes, devices_dir.parent / "doors")  # type: ignore[arg-type]
    devices_dir.mkdir(parents=True, exist_ok=True)
    (devices_dir / "scenario.json").write_text(json.dumps(scenario, ensure_ascii=False, indent=1))
    summary["hotline_tickets"] = _seed_hotline(db_path, devices_dir / "hotline-demo.csv", now=int(time.time() * 1000), enterprises=enterprises)
    return summary


def _seed(tx: Tx, key_base: Path, *, enterprises: int, rng: random.Random, now: int) -> tuple[dict[str, object], dict[str, object]]:
    """The demo's rows, in the caller's transaction; returns (the scenario, a summary for the command's output)."""
    registers.add_fields(tx, [(k, zh, en) for k, (zh, en) in FIELDS.items()])
    registers.add_agencies(tx, [(k, zh, en, REGION, f) for k, (zh, en, f) in AGENCIES.items()])
    codes = [_code(i + 1) for i in range(enterprises)]
    rows = []
    for i, c in enumerate(codes):
        risk = rng.choices(["low", "medium", "high"], [5, 4, 1])[0]
        credit = rng.choices(["A", "B", "C", "D"], [4, 4, 1, 1])[0]
        rows.append((c, f"北京{rng.choice(_PLACES)}{_NAMES[i % len(_NAMES)]}有限公司{i + 1:03d}", f"北京市海淀区{rng.choice(_PLACES)}{i + 1}号", REGION, risk, credit))
    registers.add_enterprises(tx, rows)
    quiet = [r[0] for r in rows if r[4] == "low" and r[5] == "A"][: max(1, enterprises // 12)]
    registers.add_no_disturb(tx, quiet, basis="A级信用、低风险，连续三年无违法记录", valid_from_ms=now - 90 * DAY_MS, valid_to_ms=None, added_by="demo", added_ms=now)
    tickets = {c: f"12345-DEMO-{i:03d}" for i, c in enumerate(quiet[:3])}
    registers.add_complaints(tx, [(t, c, "food_safety", "12345热线：群众反映", now - DAY_MS) for c, t in tickets.items()])
    devices = device_register.active_devices(tx)
    scenario_devices = _officers(tx, devices, now)
    registers.add_officer(
        tx, officer_id=DEMO_OFFICER_ID, name="演示执法员", agency_id=DEMO_AGENCY, credential_no="京海执DEMO-1", fields=AGENCIES[DEMO_AGENCY][2],
        valid_from_ms=now - 365 * DAY_MS, valid_to_ms=now + 365 * DAY_MS,
    )  # fmt: skip
    demo_hash = hash_password(DEMO_PASSWORD)
    users = [("supervisor", "supervisor", None, None, None)]
    users += [(f"admin-{a}", "agency_admin", a, None, None) for a in AGENCIES]
    officers = {(d["officer_id"], devices_agency) for (_, devices_agency, _), d in zip(devices, scenario_devices.values(), strict=True)}
    users += [(o, "officer", agency, o, None) for o, agency in sorted(officers)]
    users.append((DEMO_OFFICER, "officer", DEMO_AGENCY, DEMO_OFFICER_ID, None))
    users.append(("enterprise-001", "enterprise", None, None, codes[0]))
    for username, role, agency, officer, credit in users:
        if not user_store.user_exists(tx, username):
            add_user(tx, username, DEMO_PASSWORD, role, agency_id=agency, officer_id=officer, credit_code=credit, password_hash=demo_hash)
    door_codes = []
    for c in codes:
        text, name = issue_code(tx, key_base, c)
        door_codes.append({"credit_code": c, "name": name, "text": text})
    letters = _seed_supervision(tx, codes, now)
    cases = seed_cases(tx, codes, now, password_hash=demo_hash)  # market regulation's OFF-MR-1..3 (OFF-MR-3 a legal reviewer)
    _seed_demo_assignment(tx, quiet, now)
    scenario = {"devices": scenario_devices, "codes": door_codes, "no_disturb": quiet, "complaints": tickets}
    summary = {
        "devices": len(scenario_devices), "enterprises": len(codes), "no_disturb": len(quiet), "users": [u[0] for u in users], "password": DEMO_PASSWORD,
        "officer_for_the_phone_page": DEMO_OFFICER,
        "letters": letters,
        "cases": cases, "case_officers": [o for o, _ in CASE_OFFICERS],
    }  # fmt: skip
    return scenario, summary


def _officers(tx: Tx, devices: list[tuple[str, str, str]], now: int) -> dict[str, dict[str, object]]:
    """An officer for each device that scans (or records alone); a body recorder is worn by an officer of its agency
    whose device cannot record (a QR terminal's), one recorder each, so that their inspections are recorded."""
    out: dict[str, dict[str, object]] = {}
    unrecorded = [(d, a) for d, a, k in devices if k == "qr_terminal"]
    for device_id, agency_id, kind in devices:
        fields = AGENCIES.get(agency_id, ("", "", ["food_safety"]))[2]
        if kind == "body_recorder":
            wearer = next(((d, a) for d, a in unrecorded if a == agency_id), None)
            if wearer is not None:
                unrecorded.remove(wearer)
                out[device_id] = {"officer_id": f"OFF-{wearer[0]}", "fields": fields, "kind": kind, "worn_by": f"OFF-{wearer[0]}"}
                continue
        officer_id = f"OFF-{device_id}"
        registers.add_officer(
            tx, officer_id=officer_id, name=f"执法员{device_id[-3:]}", agency_id=agency_id, credential_no=f"京海执{device_id}", fields=fields,
            valid_from_ms=now - 365 * DAY_MS, valid_to_ms=now + 365 * DAY_MS,
        )
        out[device_id] = {"officer_id": officer_id, "fields": fields, "kind": kind}
    return out


def _seed_demo_assignment(tx: Tx, quiet: list[str], now: int) -> None:
    """A superior assignment the demo officer's agency may cite to inspect a no-disturb enterprise (once)."""
    from server.rules.exception_bases import BasisIn, add_basis, get_basis

    target = quiet[-1]
    if get_basis(tx, "superior_assignment", DEMO_ASSIGNMENT, target) is not None:
        return
    add_basis(tx, BasisIn(
        kind="superior_assignment", reference=DEMO_ASSIGNMENT, credit_code=target, issued_by="海淀区人民政府", summary="食品安全专项督办",
        valid_from_ms=now, valid_to_ms=now + 90 * DAY_MS, agency_id=DEMO_AGENCY, field="food_safety",
    ), "demo", now)  # fmt: skip


def write_doors(tx: Tx, key_base: Path, quiet: list[str], codes: list[str], folder: Path) -> list[str]:
    """Pictures of door codes for the person trying the demo to photograph with the officer page: an ordinary
    enterprise, and a no-disturb one with a complaint ticket and the demo assignment on it. Returns the file names."""
    from server.rules.codes import render_png

    folder.mkdir(parents=True, exist_ok=True)
    ordinary = next(c for c in reversed(codes) if c not in quiet)
    written = []
    for name, code in (("door-ordinary.png", ordinary), ("door-no-disturb.png", quiet[-1])):
        text, ent = issue_code(tx, key_base, code)
        (folder / name).write_bytes(render_png(text, ent))
        written.append(name)
    return written


def _seed_supervision(tx: Tx, codes: list[str], now: int) -> int:
    """A few findings and letters in each state a supervisor meets: one awaiting the agency's report, one whose report
    awaits a verdict, one accepted and closed, one overdue (issued 30 days ago). Returns how many letters."""
    from server.console.auth import Principal
    from server.supervision import workflow as sv

    sup = Principal(username="supervisor", role="supervisor")
    if sv.list_findings(tx, sup, status=None, limit=1):
        return 0  # seeded before
    common = {"issuer": "海淀区司法局", "basis": "《北京市行政执法监督办法》第二十条、第二十二条", "deadline_days": 10}
    cases = [
        ("market-regulation", codes[1], "同一企业 30 日内被重复检查，未说明例外依据", "11 月以来对该企业检查 3 次，其中 2 次未登记例外依据。", 0, None),
        ("emergency-management", codes[2], "检查未全程记录", "执法记录仪在检查开始 12 分钟后才开始录像。", 2, "已对执法人员批评教育，并开展记录仪使用培训。"),
        ("ecology", codes[3], "无事不扰名单企业被检查", "对无事不扰名单内企业开展检查，未登记投诉或交办依据。", 5, "已撤销该次检查结论并向企业致歉。"),
        ("urban-management", codes[4], "公示逾期", "3 项行政处罚决定超过 7 个工作日未公示。", 30, None),
    ]
    for i, (agency, code, reason, facts, days_ago, report) in enumerate(cases):
        at = now - days_ago * DAY_MS - (4 - i) * 60_000
        f = sv.open_finding(tx, sv.FindingIn(agency_id=agency, credit_code=code, reason=reason), sup, at)
        letter = sv.issue_letter(tx, f.finding_id, sv.LetterIn(facts=facts, requirements="查明原因，依法整改，并于期限内书面报送整改情况。", **common), sup, at)
        if report:
            admin = Principal(username=f"admin-{agency}", role="agency_admin", agency_id=agency)
            sv.reply(tx, letter.letter_id, sv.ReplyIn(text=report), admin, at + DAY_MS)
            if agency == "ecology":
                sv.decide(tx, letter.letter_id, "accepted", "整改到位。", sup, at + 2 * DAY_MS)
                sv.close_finding(tx, f.finding_id, "整改到位，办结。", sup, at + 2 * DAY_MS)
    sv.check_deadlines(tx, now)
    return len(cases)


def _seed_hotline(db_path: str | Path, path: Path, *, now: int, enterprises: int) -> int:
    """A 12345 hotline file, imported as an operator would (``fe-server import hotline``): tickets by credit code and
    by address, some old enough that no inspection followed within the policy's working days. A second run keeps the
    tickets already imported. Returns how many tickets the file holds."""
    from server.imports.run import import_csv

    def day(days_ago: int) -> str:
        return dt.datetime.fromtimestamp(now / 1000 - days_ago * 86_400, CST).strftime("%Y-%m-%dT%H:%M")

    rows = [
        ("12345-DEMO-H001", day(25), _code(6), "", "food_safety", "反映后厨卫生状况差，有异味。"),
        ("12345-DEMO-H002", day(21), _code(7), "", "work_safety", "反映仓库堆放易燃物，消防通道被占用。"),
        ("12345-DEMO-H003", day(2), _code(8), "", "pollution", "反映夜间排放刺鼻气味。"),
    ]
    rows = [r for r in rows if int(r[2][10:17]) <= enterprises]
    lines = ["ticket_id,time,credit_code,address,category,text", *(",".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_csv(db_path, "hotline", path, progress=False)
    if not result.ok:
        raise RuntimeError(f"the demo's hotline file did not import: {result}")
    return len(rows)
