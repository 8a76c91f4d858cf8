"""The 12345 hotline on both backends: ``fe-server import hotline FILE`` (all rows or none, a replay changes nothing)
and the join of tickets with inspections on a small made-up city, with the working days counted on the official
calendar (2025's National Day holiday, 1-8 October, and its adjusted working Saturday, 11 October)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest

from protocol.creditcode import check_character
from server import db as dbmod
from server.imports import add_import_parser, import_csv, run_import
from server.storage.engine import sql, storage_for
from server.supervision.hotline import HotlineFlag, flags

CST = dt.timezone(dt.timedelta(hours=8))
_INSPECTION = sql(
    "INSERT INTO inspections(inspection_id, credit_code, lead_agency_id, field, status, opened_ms, ended_ms)"
    " VALUES (:id, :code, :agency, :field, 'ended', :opened, :opened + 3600000)"
)
_TICKETS = sql("SELECT ticket_id, received_ms, credit_code, address, category, text FROM hotline_tickets ORDER BY ticket_id")


def code(n: int) -> str:
    body = f"91110108MA{n:07d}"
    return body + check_character(body)


def cst_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)


A, B, C, D = code(11), code(12), code(13), code(14)
NOW = cst_ms(2026, 1, 15, 12)
TICKETS = (
    "ticket_id,time,credit_code,address,category,text\n"
    f"T1,2025-09-30T10:00:00,{A},,food,后厨卫生差\n"  # inspected 10 Oct: within 3 working days across the holiday
    f"T2,2025-09-30T10:00:00,,幸福路2号,fire,消防通道堵塞\n"  # by address; inspected only 12 Oct 00:30, after the deadline
    f"T3,2025-10-20 09:00,{A},,food,仍然很脏\n"  # inspected 10 Oct (within 30 days): complained again; nothing after
    "T4,2025-09-30,,同一大楼,food,噪音\n"  # an address two enterprises share: no enterprise
    "T5,2025-09-30,,无名街9号,food,无证经营\n"  # an address no enterprise has
    f"T6,2026-01-14T09:00:00+08:00,{C},,food,刚刚投诉\n"  # its deadline has not passed
    f"T7,2025-12-20,{A},,food,又来投诉\n"  # the 10 Oct inspection is more than 30 days before
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def city(db_url: str, tmp_path: Path) -> str:
    """Two agencies, four enterprises (two at one address), three inspections, seven tickets."""
    assert import_csv(db_url, "fields", write(tmp_path, "f.csv", "field_id,name\nfood,食品\nfire,消防\n"), progress=False).ok
    assert import_csv(db_url, "agencies", write(tmp_path, "a.csv", "agency_id,name,fields\nSAMR,市场监管局,food\nFIRE,消防救援支队,fire\n"), progress=False).ok
    ents = f"credit_code,name,address\n{A},甲餐馆,幸福路1号\n{B},乙商场,幸福路2号\n{C},丙店,同一大楼\n{D},丁店,同一大楼\n"
    assert import_csv(db_url, "enterprises", write(tmp_path, "e.csv", ents), progress=False).ok
    with storage_for(db_url).writing() as tx:
        tx.run(_INSPECTION, id="I-A1", code=A, agency="SAMR", field="food", opened=cst_ms(2025, 10, 10, 9))
        tx.run(_INSPECTION, id="I-B1", code=B, agency="FIRE", field="fire", opened=cst_ms(2025, 10, 12, 0, 30))
        tx.run(_INSPECTION, id="I-C0", code=C, agency="SAMR", field="food", opened=cst_ms(2024, 1, 1))  # long before
    result = import_csv(db_url, "hotline", write(tmp_path, "h.csv", TICKETS), progress=False)
    assert (result.ok, result.rows) == (True, 7), result.errors
    return db_url


def flagged(db: str, **kw: int) -> list[HotlineFlag]:
    with storage_for(db).reading() as tx:
        return flags(tx, NOW, **{"within_days": 3, "window_days": 30, **kw})


def test_the_join_flags_each_kind(city: str) -> None:
    got = [(f.ticket_id, f.kind, f.credit_code, f.agency_id, f.deadline, [i.inspection_id for i in f.inspections]) for f in flagged(city)]
    assert got == [
        ("T2", "no_inspection", B, "FIRE", "2025-10-11", ["I-B1"]),  # 11 October, a Saturday, is a working day
        ("T3", "complained_again", A, "SAMR", None, ["I-A1"]),
        ("T3", "no_inspection", A, "SAMR", "2025-10-23", []),
        ("T7", "no_inspection", A, "SAMR", "2025-12-24", []),  # 20 December is a Saturday
    ]
    t2 = flagged(city)[0]
    assert (t2.enterprise_name, t2.agency_name, t2.address, t2.text, t2.finding_id) == ("乙商场", "消防救援支队", "幸福路2号", "消防通道堵塞", None)
    assert t2.received_ms == cst_ms(2025, 9, 30, 10)


def test_working_days_across_the_holiday(city: str) -> None:
    # Counted Monday to Friday, 3 working days after 30 September would end on 3 October and I-A1 would be late; on
    # the official calendar they are 9, 10 and 11 October. With 1 working day (9 October) it is late.
    assert "T1" not in {f.ticket_id for f in flagged(city)}
    one_day = {(f.ticket_id, f.kind): f for f in flagged(city, within_days=1)}
    assert one_day["T1", "no_inspection"].deadline == "2025-10-09"
    assert [i.inspection_id for i in one_day["T1", "no_inspection"].inspections] == ["I-A1"]


def test_the_window_and_the_present(city: str) -> None:
    # A wider window reaches the 10 October inspection from T7 (71 days later); none reaches I-C0 for T6.
    wide = {(f.ticket_id, f.kind) for f in flagged(city, window_days=90)}
    assert ("T7", "complained_again") in wide and not any(t == "T6" for t, _ in wide)
    # Before T3's deadline has passed, it is flagged only for the earlier inspection.
    with storage_for(city).reading() as tx:
        early = flags(tx, cst_ms(2025, 10, 23, 23, 59), within_days=3, window_days=30)
    assert [(f.ticket_id, f.kind) for f in early] == [("T2", "no_inspection"), ("T3", "complained_again")]
    with storage_for(city).reading() as tx:
        one = flags(tx, NOW, within_days=3, window_days=30, ticket_id="T3")
    assert [f.kind for f in one] == ["complained_again", "no_inspection"]


def test_a_replayed_import_changes_nothing_and_replace_updates(city: str, tmp_path: Path) -> None:
    with dbmod.reading(city) as tx:
        before = tx.all(_TICKETS)
    again = import_csv(city, "hotline", write(tmp_path, "again.csv", TICKETS), progress=False)
    assert (again.ok, again.error_count, again.updated) == (True, 0, 7)
    changed = TICKETS.replace("后厨卫生差", "改过的文字")
    assert import_csv(city, "hotline", write(tmp_path, "changed.csv", changed), progress=False).ok
    with dbmod.reading(city) as tx:
        assert tx.all(_TICKETS) == before  # a ticket imported is kept as it was
    result = import_csv(city, "hotline", write(tmp_path, "changed.csv", changed), replace=True, progress=False)
    assert (result.ok, result.updated) == (True, 7)
    with dbmod.reading(city) as tx:
        assert [r[5] for r in tx.all(_TICKETS)][0] == "改过的文字"


BAD = [
    ("ticket_id,when,credit_code,category,text\nX,2025-01-01,,food,t\n", [(1, "bad header: unknown column(s): when; missing column(s): time. Expected columns: ticket_id, time, category, text, and optionally credit_code, address")]),
    ("ticket_id,time,credit_code,category,text\nX,2025-13-01,{A},food,t\n", [(2, "time '2025-13-01' is not a date YYYY-MM-DD (month must be in 1..12)")]),
    ("ticket_id,time,credit_code,category,text\nX,yesterday,{A},food,t\n", [(2, "time 'yesterday' is neither a date YYYY-MM-DD nor an ISO datetime such as 2024-03-05T14:30:00+08:00")]),
    ("ticket_id,time,credit_code,address,category,text\nX,2025-01-01,,,food,t\n", [(2, "credit_code and address are both empty: a ticket names an enterprise or an address")]),
    ("ticket_id,time,credit_code,category,text\nX,2025-01-01,{U},food,t\nY,2025-01-01,{A},food,\n", [
        (2, "credit_code '{U}' is not a registered enterprise (import it with the enterprises first)"),
        (3, "text is empty"),
    ]),
    ("ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,{LONG}\n", [(2, "text has 5000 characters, at most 4000 are allowed")]),
    ("ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,t\nY,2025-01-01,{A},food,{HUGE}\nZ,2025-01-01,{A},food,t\n",
     [(3, "CSV syntax error: field larger than field limit (131072); the rest of the file was not read")]),
    ("ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,t\nX,2025-01-02,{A},food,t\n", [(3, "duplicate ticket_id 'X': already on line 2")]),
    ("ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,t,extra\n", [(2, "6 cells but the header has 5 columns")]),
]


@pytest.mark.parametrize(("text", "errors"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_bad_file_is_refused_line_by_line_and_nothing_imported(city: str, tmp_path: Path, text: str, errors: list[tuple[int, str]]) -> None:
    unregistered = code(99)
    fill = {"A": A, "U": unregistered, "LONG": "长" * 5000, "HUGE": "x" * 200_000}
    text = text.format(**fill)
    errors = [(line, msg.format(**fill)) for line, msg in errors]
    result = import_csv(city, "hotline", write(tmp_path, "bad.csv", text), progress=False)
    assert (result.ok, result.errors) == (False, errors)
    with dbmod.reading(city) as tx:
        assert len(tx.all(_TICKETS)) == 7


def test_the_cli_names_file_and_line(city: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="fe-server")
    add_import_parser(parser.add_subparsers(dest="command", required=True))
    f = write(tmp_path, "bad.csv", f"ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,t\nY,soon,{A},food,t\n")
    assert run_import(parser.parse_args(["import", "hotline", str(f), "--db", city, "--no-progress"])) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{f}:3: time 'soon' is neither a date YYYY-MM-DD nor an ISO datetime such as 2024-03-05T14:30:00+08:00",
        f"{f}: rejected, 1 bad row(s); nothing imported",
    ]
    good = write(tmp_path, "good.csv", f"ticket_id,time,credit_code,category,text\nX,2025-01-01,{A},food,t\n")
    assert run_import(parser.parse_args(["import", "hotline", str(good), "--db", city, "--no-progress"])) == 0
    assert capsys.readouterr().out == f"{good}: imported 1 hotline rows\n"
    assert run_import(parser.parse_args(["import", "hotline", str(good), "--db", city, "--no-progress"])) == 0
    assert capsys.readouterr().out == f"{good}: imported 1 hotline rows (1 already imported, kept as they were)\n"
