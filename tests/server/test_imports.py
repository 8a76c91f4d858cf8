"""``fe-server import``: CSV files into the registers of a real database, all rows or none, on both backends."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from protocol.creditcode import check_character
from server import db as dbmod
from server.imports import KINDS, MAX_PRINTED_ERRORS, add_import_parser, import_csv, run_import
from server.imports import kinds
from server.storage.engine import Backend, Tx, backend_of, close_storage, sql, storage_for

CST = dt.timezone(dt.timedelta(hours=8))


def code(n: int) -> str:
    """A valid credit code numbered n."""
    body = f"91110108MA{n:07d}"
    return body + check_character(body)


def bad_check(n: int) -> tuple[str, str]:
    """Code n with a wrong check character, and the right one."""
    good = code(n)
    wrong = "1" if good[-1] != "1" else "2"
    return good[:17] + wrong, good[-1]


def cst_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=CST).timestamp() * 1000)


@pytest.fixture
def db(db_url: str) -> str:
    """A migrated, empty database on each backend in turn (a SQLite path or a postgresql:// URL)."""
    return db_url


def write(tmp_path: Path, name: str, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def rows(db: str, text: str) -> list[tuple[object, ...]]:
    with dbmod.reading(db) as tx:
        return [tuple(r) for r in tx.all(sql(text))]


def count(db: str, table: str) -> int:
    return int(rows(db, f"SELECT count(*) FROM {table}")[0][0])


# ------------------------------------------------------------------------------------------ each kind


def test_fields_and_agencies(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "fields.csv", "field_id,name,name_en\nfood,食品安全,food safety\nfire,消防安全,\n")
    assert import_csv(db, "fields", f, progress=False).rows == 2
    a = write(tmp_path, "agencies.csv", "agency_id,name,name_en,region,fields\nSAMR,市场监管局,Market regulation,110108,food\nFIRE,消防救援支队,,110108, fire ; food \nNEW,新机构,,,\n")
    assert import_csv(db, "agencies", a, progress=False).rows == 3
    assert rows(db, "SELECT * FROM fields ORDER BY field_id") == [("fire", "消防安全", ""), ("food", "食品安全", "food safety")]
    got = {r[0]: r for r in rows(db, "SELECT * FROM agencies ORDER BY agency_id")}
    assert got["SAMR"] == ("SAMR", "市场监管局", "Market regulation", "110108", '["food"]')
    assert json.loads(str(got["FIRE"][4])) == ["fire", "food"]
    assert got["NEW"][4] == "[]"


def test_enterprises_upper_cased_with_defaults(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f"credit_code,name,address,region,risk,credit\n{code(1).lower()},某餐饮公司,某路1号,110108,High,a\n{code(2)},守信企业,,,,\n")
    result = import_csv(db, "enterprises", f, progress=False)
    assert (result.ok, result.rows, result.updated, result.dry_run) == (True, 2, 0, False)
    assert rows(db, "SELECT * FROM enterprises ORDER BY credit_code") == [
        (code(1), "某餐饮公司", "某路1号", "110108", "high", "A"),
        (code(2), "守信企业", "", "", "medium", "B"),
    ]


def test_officers_dates_are_china_standard_time(db: str, tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "o.csv",
        "officer_id,name,agency_id,credential_no,fields,valid_from,valid_to,revoked\n"
        "OFF-1,张三,SAMR,C-1,food;fire,2024-01-01,2024-12-31,\n"
        "OFF-2,李四,SAMR,C-2,food,2024-03-01,2024-03-01,2024-02-15\n",
    )
    assert import_csv(db, "officers", f, progress=False).rows == 2
    got = rows(db, "SELECT officer_id, fields, valid_from_ms, valid_to_ms, revoked_ms FROM officers ORDER BY officer_id")
    assert got[0] == ("OFF-1", '["food", "fire"]', cst_ms(2024, 1, 1), cst_ms(2025, 1, 1) - 1, None)
    # valid_from 00:00 CST is 16:00 UTC the day before; a one-day credential lasts through 23:59:59.999 CST.
    assert dt.datetime.fromtimestamp(got[1][2] / 1000, dt.timezone.utc) == dt.datetime(2024, 2, 29, 16, 0, tzinfo=dt.timezone.utc)
    assert got[1][3] - got[1][2] == 86_400_000 - 1
    assert got[1][4] == cst_ms(2024, 2, 15)


def test_complaints_received_date_or_datetime(db: str, tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "c.csv",
        "ticket_no,credit_code,field,summary,received\n"
        f"T-1,{code(1)},food,后厨卫生,2024-03-05\n"
        f"T-2,{code(1)},,,2024-03-05 14:30\n"
        f"T-3,{code(2)},fire,通道堵塞,2024-03-05T06:30:00Z\n",
    )
    assert import_csv(db, "complaints", f, progress=False).rows == 3
    assert rows(db, "SELECT ticket_no, credit_code, field, summary, received_ms, closed_ms FROM complaints ORDER BY ticket_no") == [
        ("T-1", code(1), "food", "后厨卫生", cst_ms(2024, 3, 5), None),
        ("T-2", code(1), None, "", cst_ms(2024, 3, 5, 14, 30), None),
        ("T-3", code(2), "fire", "通道堵塞", cst_ms(2024, 3, 5, 14, 30), None),
    ]


def test_no_disturb_open_ended_and_replace_closes_open_entries(db: str, tmp_path: Path) -> None:
    header = "credit_code,basis,valid_from,valid_to,added_by\n"
    f = write(tmp_path, "nd.csv", header + f"{code(1)},A级纳税信用,2024-01-01,,sup-1\n{code(2)},示范企业,2024-01-01,2024-06-30,sup-1\n")
    assert import_csv(db, "no-disturb", f, progress=False).rows == 2
    assert rows(db, "SELECT credit_code, valid_from_ms, valid_to_ms, added_by, removed_ms FROM no_disturb ORDER BY id") == [
        (code(1), cst_ms(2024, 1, 1), None, "sup-1", None),
        (code(2), cst_ms(2024, 1, 1), cst_ms(2024, 7, 1) - 1, "sup-1", None),
    ]
    # The same entry again is refused; a new period for the same enterprise is added.
    again = import_csv(db, "no-disturb", f, progress=False)
    assert [line for line, _ in again.errors] == [2, 3]
    assert "already has an open no-disturb entry" in again.errors[0][1]
    later = write(tmp_path, "nd2.csv", header + f"{code(1)},复核通过,2025-01-01,,sup-2\n")
    assert import_csv(db, "no-disturb", later, progress=False).ok
    assert count(db, "no_disturb") == 3
    # --replace closes every open entry of the codes in the file, then adds the file's.
    result = import_csv(db, "no-disturb", later, replace=True, progress=False)
    assert (result.ok, result.updated) == (True, 2)
    open_rows = rows(db, "SELECT credit_code, basis FROM no_disturb WHERE removed_ms IS NULL ORDER BY id")
    assert open_rows == [(code(2), "示范企业"), (code(1), "复核通过")]


def test_plans_and_targets(db: str, tmp_path: Path) -> None:
    header = "plan_id,agency_id,field,kind,title,valid_from,valid_to,credit_code\n"
    f = write(
        tmp_path,
        "p.csv",
        header + "".join(f"P-1,SAMR,food,random_draw,2024年双随机,2024-01-01,2024-12-31,{code(n)}\n" for n in (1, 2, 3)) + f"P-2,FIRE,fire,special,专项检查,2024-05-01,2024-05-31,{code(1)}\n",
    )
    result = import_csv(db, "plans", f, progress=False)
    assert (result.ok, result.rows) == (True, 4)
    assert rows(db, "SELECT plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms FROM plans ORDER BY plan_id") == [
        ("P-1", "SAMR", "food", "random_draw", "2024年双随机", cst_ms(2024, 1, 1), cst_ms(2025, 1, 1) - 1),
        ("P-2", "FIRE", "fire", "special", "专项检查", cst_ms(2024, 5, 1), cst_ms(2024, 6, 1) - 1),
    ]
    assert rows(db, "SELECT plan_id, credit_code FROM plan_targets ORDER BY plan_id, credit_code") == [("P-1", code(1)), ("P-1", code(2)), ("P-1", code(3)), ("P-2", code(1))]

    # With --replace the plan is updated and its targets become the file's.
    g = write(tmp_path, "p2.csv", header + f"P-1,SAMR,food,random_draw,2024年双随机（调整）,2024-01-01,2024-12-31,{code(4)}\n")
    assert import_csv(db, "plans", g, progress=False).errors == [(2, "plan 'P-1' already exists in the database (--replace updates it and replaces its targets)")]
    result = import_csv(db, "plans", g, replace=True, progress=False)
    assert (result.ok, result.updated) == (True, 1)
    assert rows(db, "SELECT title FROM plans WHERE plan_id = 'P-1'") == [("2024年双随机（调整）",)]
    assert rows(db, "SELECT plan_id, credit_code FROM plan_targets ORDER BY plan_id, credit_code") == [("P-1", code(4)), ("P-2", code(1))]


def test_plans_rows_must_agree(db: str, tmp_path: Path) -> None:
    header = "plan_id,agency_id,field,title,valid_from,valid_to,credit_code\n"
    f = write(
        tmp_path,
        "p.csv",
        header
        + f"P-1,SAMR,food,抽查,2024-01-01,2024-12-31,{code(1)}\n"
        + f"P-1,SAMR,food,抽查,2024-01-01,2024-12-30,{code(2)}\n"
        + f"P-1,SAMR,food,抽查,2024-01-01,2024-12-31,{code(1)}\n",
    )
    result = import_csv(db, "plans", f, progress=False)
    assert result.errors == [
        (3, "plan 'P-1' has valid_to '2024-12-30' here but '2024-12-31' on line 2: a plan's rows must agree"),
        (4, f"duplicate plan_id 'P-1' with credit_code '{code(1)}': already on line 2"),
    ]
    assert count(db, "plans") == count(db, "plan_targets") == 0


# ------------------------------------------------------------------------------------------ bad files


def test_bad_rows_named_by_physical_line_and_nothing_imported(db: str, tmp_path: Path) -> None:
    wrong, right = bad_check(3)
    text = (
        "credit_code,name,risk,credit\n"  # line 1
        f'{code(1)},"多行\n名称",low,A\n'  # lines 2-3: a quoted name spanning two lines
        "\n"  # line 4: blank, skipped
        f"{wrong},错号企业,low,A\n"  # line 5
        f"{code(4)},,low,A\n"  # line 6
        f"{code(5)},名称,urgent,A\n"  # line 7
        f"{code(6)},名称,low,E\n"  # line 8
        f"{code(7)},{'长' * 201},low,A\n"  # line 9
        f"{code(8)},名称,low\n"  # line 10
        "9111,短号企业,low,A\n"  # line 11
        f"{code(12)},好企业,low,A\n"  # line 12
    )
    result = import_csv(db, "enterprises", write(tmp_path, "enterprises.csv", text), progress=False)
    assert result.rows == 0
    assert result.error_count == len(result.errors) == 7
    assert result.errors == [
        (5, f"credit_code '{wrong}' fails its check character: expected {right}, got {wrong[-1]}"),
        (6, "name is empty"),
        (7, "risk 'urgent' is not one of low, medium, high"),
        (8, "credit 'E' is not one of A, B, C, D"),
        (9, "name has 201 characters, at most 200 are allowed"),
        (10, "3 cells but the header has 4 columns"),
        (11, "credit_code: a unified social credit code has 18 characters, '9111' has 4"),
    ]
    assert count(db, "enterprises") == 0


def test_bom_is_accepted(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f"credit_code,name\r\n{code(1)},某公司\r\n", bom=True)
    assert import_csv(db, "enterprises", f, progress=False).rows == 1
    assert rows(db, "SELECT credit_code, name FROM enterprises") == [(code(1), "某公司")]


def test_text_stream_with_bom(db: Path) -> None:
    result = import_csv(db, "fields", io.StringIO("\ufefffield_id,name\nfood,食品安全\n"), progress=False)
    assert (result.ok, result.rows, result.source) == (True, 1, "<stream>")


def test_not_utf8_is_named_by_line(db: str, tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    gbk = "好".encode("gbk")  # b"\xba\xc3": 0xba cannot start a UTF-8 character
    path.write_bytes(f"credit_code,name\n{code(1)},好\n{code(2)},".encode() + gbk + b"\n")
    result = import_csv(db, "enterprises", path, progress=False)
    assert [line for line, _ in result.errors] == [3]
    assert result.errors[0][1] == f"not UTF-8: byte 0xba at byte {len(code(2)) + 2} of the line (save the file as CSV UTF-8)"
    assert count(db, "enterprises") == 0


def test_unclosed_quote_is_a_syntax_error(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f'credit_code,name\n{code(1)},好\n{code(2)},"未闭合\n{code(3)},好\n')
    result = import_csv(db, "enterprises", f, progress=False)
    assert len(result.errors) == 1
    assert result.errors[0][0] == 3
    assert "CSV syntax error" in result.errors[0][1]


def test_duplicate_in_file_names_first_line(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f"credit_code,name\n{code(1)},甲\n{code(2)},乙\n{code(1).lower()},丙\n")
    result = import_csv(db, "enterprises", f, progress=False)
    assert result.errors == [(4, f"duplicate credit_code '{code(1)}': already on line 2")]
    assert count(db, "enterprises") == 0


def test_officer_credential_unique_in_file_and_database(db: str, tmp_path: Path) -> None:
    header = "officer_id,name,agency_id,credential_no,fields,valid_from,valid_to\n"
    f = write(tmp_path, "o.csv", header + "O-1,甲,SAMR,C-1,food,2024-01-01,2024-12-31\nO-2,乙,SAMR,C-1,food,2024-01-01,2024-12-31\n")
    assert import_csv(db, "officers", f, progress=False).errors == [(3, "duplicate credential_no 'C-1': already on line 2")]
    assert import_csv(db, "officers", write(tmp_path, "o1.csv", header + "O-1,甲,SAMR,C-1,food,2024-01-01,2024-12-31\n"), progress=False).ok
    g = write(tmp_path, "o2.csv", header + "O-2,乙,SAMR,C-1,food,2024-01-01,2024-12-31\n")
    assert import_csv(db, "officers", g, replace=True, progress=False).errors == [(2, "credential_no 'C-1' already belongs to officer 'O-1' in the database")]


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("2024-12-31,2024-01-01", "valid_to 2024-01-01 is before valid_from 2024-12-31"),
        ("2024-02-30,2024-12-31", "valid_from '2024-02-30' is not a date YYYY-MM-DD (day is out of range for month)"),
        ("2024/01/01,2024-12-31", "valid_from '2024/01/01' is not a date YYYY-MM-DD (expected YYYY-MM-DD)"),
        ("20240101,2024-12-31", "valid_from '20240101' is not a date YYYY-MM-DD (expected YYYY-MM-DD)"),
        ("2024-01-01,", "valid_to is empty"),
    ],
)
def test_officer_date_rules(db: str, tmp_path: Path, cells: str, reason: str) -> None:
    f = write(tmp_path, "o.csv", f"officer_id,name,agency_id,credential_no,fields,valid_from,valid_to\nO-1,甲,SAMR,C-1,food,{cells}\n")
    assert import_csv(db, "officers", f, progress=False).errors == [(2, reason)]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [("", "fields is empty: at least one field id is required"), ("food;;fire", "fields 'food;;fire' has an empty id (check the ';' separators)"), ("food;food", "fields 'food;food' lists 'food' twice")],
)
def test_officer_field_lists(db: str, tmp_path: Path, fields: str, reason: str) -> None:
    f = write(tmp_path, "o.csv", f"officer_id,name,agency_id,credential_no,fields,valid_from,valid_to\nO-1,甲,SAMR,C-1,{fields},2024-01-01,2024-12-31\n")
    assert import_csv(db, "officers", f, progress=False).errors == [(2, reason)]


def test_complaint_received_must_be_a_date_or_datetime(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "c.csv", f"ticket_no,credit_code,received\nT-1,{code(1)},yesterday\n")
    assert import_csv(db, "complaints", f, progress=False).errors == [
        (2, "received 'yesterday' is neither a date YYYY-MM-DD nor an ISO datetime such as 2024-03-05T14:30:00+08:00")
    ]


# ------------------------------------------------------------------------------------------ headers


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("credit_code,nmae", "unknown column(s): nmae; missing column(s): name"),
        ("credit_code", "missing column(s): name"),
        ("credit_code,name,name", "column(s) named twice: name"),
        ("credit_code,name,", "unknown column(s): (empty)"),
    ],
)
def test_header_problems_list_expected_columns(db: str, tmp_path: Path, header: str, problem: str) -> None:
    f = write(tmp_path, "e.csv", f"{header}\n{code(1)},甲\n")
    result = import_csv(db, "enterprises", f, progress=False)
    assert result.errors == [(1, f"bad header: {problem}. Expected columns: credit_code, name, and optionally address, region, risk, credit")]


def test_header_names_ignore_case_spaces_and_order(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f" Name , CREDIT_CODE\n甲,{code(1)}\n")
    assert import_csv(db, "enterprises", f, progress=False).rows == 1


def test_empty_file(db: str, tmp_path: Path) -> None:
    result = import_csv(db, "fields", write(tmp_path, "f.csv", ""), progress=False)
    assert result.errors[0][0] == 1
    assert result.errors[0][1].startswith("empty file: a header row is required")


def test_header_only_imports_nothing(db: str, tmp_path: Path) -> None:
    result = import_csv(db, "fields", write(tmp_path, "f.csv", "field_id,name\n"), progress=False)
    assert (result.ok, result.rows) == (True, 0)


# ------------------------------------------------------------------------------------------ replace, dry run


def test_existing_key_without_and_with_replace(db: str, tmp_path: Path) -> None:
    first = write(tmp_path, "e1.csv", f"credit_code,name,address,risk\n{code(1)},旧名,旧址,high\n")
    assert import_csv(db, "enterprises", first, progress=False).ok
    second = write(tmp_path, "e2.csv", f"credit_code,name\n{code(2)},新企业\n{code(1)},新名\n")
    result = import_csv(db, "enterprises", second, progress=False)
    assert result.errors == [(3, f"enterprise '{code(1)}' already exists in the database (--replace updates it)")]
    assert count(db, "enterprises") == 1
    result = import_csv(db, "enterprises", second, replace=True, progress=False)
    assert (result.ok, result.rows, result.updated) == (True, 2, 1)
    # Columns left out of the header keep their stored values.
    assert rows(db, "SELECT * FROM enterprises ORDER BY credit_code") == [(code(1), "新名", "旧址", "", "high", "B"), (code(2), "新企业", "", "", "medium", "B")]


def test_replace_keeps_complaint_closed(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "c.csv", f"ticket_no,credit_code,received\nT-1,{code(1)},2024-03-05\n")
    assert import_csv(db, "complaints", f, progress=False).ok
    with dbmod.writing(db) as tx:
        tx.run(sql("UPDATE complaints SET closed_ms = 1"))
    g = write(tmp_path, "c2.csv", f"ticket_no,credit_code,received,summary\nT-1,{code(2)},2024-03-06,改\n")
    assert import_csv(db, "complaints", g, replace=True, progress=False).updated == 1
    assert rows(db, "SELECT credit_code, summary, received_ms, closed_ms FROM complaints") == [(code(2), "改", cst_ms(2024, 3, 6), 1)]


def test_dry_run_writes_nothing(db: str, tmp_path: Path) -> None:
    f = write(tmp_path, "e.csv", f"credit_code,name\n{code(1)},甲\n{code(2)},乙\n")
    result = import_csv(db, "enterprises", f, dry_run=True, progress=False)
    assert (result.ok, result.rows, result.dry_run) == (True, 2, True)
    assert count(db, "enterprises") == 0
    assert import_csv(db, "enterprises", write(tmp_path, "one.csv", f"credit_code,name\n{code(1)},甲\n"), progress=False).ok
    # A dry run checks against the database too.
    assert [line for line, _ in import_csv(db, "enterprises", f, dry_run=True, progress=False).errors] == [2]
    assert import_csv(db, "enterprises", f, dry_run=True, replace=True, progress=False).updated == 1
    assert count(db, "enterprises") == 1


def test_dry_run_without_database_creates_none(tmp_path: Path) -> None:
    f = write(tmp_path, "f.csv", "field_id,name\nfood,食品安全\n")
    assert import_csv(tmp_path / "none.db", "fields", f, dry_run=True, progress=False).rows == 1
    assert not (tmp_path / "none.db").exists()


def test_row_added_meanwhile_rejects_the_file(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Clashes are checked inside the import's transaction. On SQLite it holds the write lock, so nobody can add a row
    # before the INSERT; on PostgreSQL another transaction can commit one in between: that row is left out of the
    # INSERT, seen, and named, and nothing of the file is imported.
    if backend_of(db) is Backend.SQLITE:
        pytest.skip("SQLite's write lock leaves no gap between the check and the write")
    original = kinds.Enterprises.clashes
    added: list[bool] = []

    def clashes_then_someone_adds(self: kinds.Register, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        found = original(self, tx, replace)
        if not added:
            added.append(True)
            with storage_for(db).writing() as other:  # another connection, committed at once
                other.run(sql("INSERT INTO enterprises(credit_code, name) VALUES (:code, '别人刚加的')"), code=code(2))
        return found

    monkeypatch.setattr(kinds.Enterprises, "clashes", clashes_then_someone_adds)
    f = write(tmp_path, "e.csv", f"credit_code,name\n{code(1)},甲\n{code(2)},乙\n")
    result = import_csv(db, "enterprises", f, progress=False)
    assert result.errors == [(3, f"enterprise '{code(2)}' already exists in the database (--replace updates it)")]
    assert rows(db, "SELECT credit_code, name FROM enterprises") == [(code(2), "别人刚加的")]


def test_progress_bar_silent_when_stderr_is_not_a_terminal(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "f.csv", "field_id,name\nfood,食品安全\n")
    assert import_csv(db, "fields", f, progress=True).ok
    assert capsys.readouterr() == ("", "")


def test_unknown_kind_and_missing_file(db: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown register 'devices'"):
        import_csv(db, "devices", tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError):
        import_csv(db, "fields", tmp_path / "missing.csv")


# ------------------------------------------------------------------------------------------ CLI


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fe-server")
    add_import_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_imports(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "fields.csv", "field_id,name\nfood,食品安全\n")
    args = cli(["import", "fields", str(f), "--db", str(db)])
    assert (args.kind, args.replace, args.dry_run, args.progress) == ("fields", False, False, True)
    assert run_import(cli(["import", "fields", str(f), "--db", str(db), "--no-progress"])) == 0
    assert capsys.readouterr().out == f"{f}: imported 1 fields rows\n"
    assert run_import(cli(["import", "fields", str(f), "--db", str(db), "--replace", "--dry-run"])) == 0
    assert capsys.readouterr().out == f"{f}: 1 fields rows are valid (1 existing updated); nothing written (dry run)\n"


def test_cli_rejects_with_capped_report(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "enterprises.csv", "credit_code,name\n" + "".join(f"{code(n)},\n" for n in range(60)) + f"{code(99)},好\n")
    assert run_import(cli(["import", "enterprises", str(f), "--db", str(db)])) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == MAX_PRINTED_ERRORS + 2
    assert err[0] == f"{f}:2: name is empty"
    assert err[MAX_PRINTED_ERRORS - 1] == f"{f}:{MAX_PRINTED_ERRORS + 1}: name is empty"
    assert err[-2:] == [f"{f}: ... and 10 more bad rows", f"{f}: rejected, 60 bad row(s); nothing imported"]
    assert count(db, "enterprises") == 0


def test_cli_reads_stdin(db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"\xef\xbb\xbffield_id,name\nfood,\xe9\xa3\x9f\xe5\x93\x81\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert run_import(cli(["import", "fields", "-", "--db", str(db)])) == 0
    assert capsys.readouterr().out == "<stdin>: imported 1 fields rows\n"
    assert rows(db, "SELECT field_id, name FROM fields") == [("food", "食品")]


def test_cli_missing_file(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_import(cli(["import", "fields", str(tmp_path / "nope.csv"), "--db", str(db)])) == 1
    assert capsys.readouterr().err == f"fe-server: cannot read {tmp_path / 'nope.csv'}: No such file or directory\n"


def test_cli_help_documents_columns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["import", "--help"])
    out = capsys.readouterr().out
    for kind in KINDS:
        assert f"\n  {kind}" in out
    assert "credit_code*, name* (at most 200 characters)" in out
    with pytest.raises(SystemExit):
        cli(["import", "devices", "x.csv"])
    assert "invalid choice: 'devices'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ attacks, both backends

#: One small valid file per register kind, and how many rows a second --replace import updates.
SAMPLES = {
    "fields": ("field_id,name\nfood,食品安全\nfire,消防安全\n", 2),
    "agencies": ("agency_id,name,fields\nSAMR,市场监管局,food\nFIRE,消防,fire;food\n", 2),
    "enterprises": (f"credit_code,name\n{code(1)},甲\n{code(2)},乙\n", 2),
    "officers": ("officer_id,name,agency_id,credential_no,fields,valid_from,valid_to\nO-1,甲,SAMR,C-1,food,2024-01-01,2024-12-31\nO-2,乙,SAMR,C-2,food,2024-01-01,2024-12-31\n", 2),
    "complaints": (f"ticket_no,credit_code,received\nT-1,{code(1)},2024-03-05\nT-2,{code(2)},2024-03-06\n", 2),
    "no-disturb": (f"credit_code,basis,valid_from,added_by\n{code(1)},示范,2024-01-01,sup\n{code(2)},示范,2024-01-01,sup\n", 2),
    "plans": ("plan_id,agency_id,field,title,valid_from,valid_to,credit_code\n" + "".join(f"P-1,SAMR,food,抽查,2024-01-01,2024-12-31,{code(n)}\n" for n in (1, 2)), 1),
    "assignments": (f"reference,credit_code,issued_by,valid_from,valid_to\n京〔2026〕1号,{code(1)},市局,2026-01-01,2026-06-30\n京〔2026〕1号,{code(2)},市局,2026-01-01,2026-06-30\n", 2),
    "risk-notices": (f"reference,credit_code,issued_by,valid_from,valid_to\n风险〔2026〕1号,{code(1)},市局,2026-01-01,2026-06-30\n", 1),
}
TABLES = {"no-disturb": "no_disturb", "assignments": "exception_bases", "risk-notices": "exception_bases"}


def snapshot(db: str) -> dict[str, list[tuple[object, ...]]]:
    """Every register's rows (without times that an import sets), to compare before and after."""
    return {
        t: rows(db, f"SELECT * FROM {t} ORDER BY 1, 2")
        for t in ("fields", "agencies", "enterprises", "officers", "complaints", "plans", "plan_targets")
    } | {
        "no_disturb": rows(db, "SELECT credit_code, basis, valid_from_ms, removed_ms FROM no_disturb ORDER BY id"),
        "exception_bases": rows(db, "SELECT kind, reference, credit_code, withdrawn_ms FROM exception_bases ORDER BY 1, 2, 3"),
    }


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_reimport_is_refused_line_by_line_and_replace_updates(db: str, tmp_path: Path, kind: str) -> None:
    text, updated = SAMPLES[kind]
    f = write(tmp_path, "f.csv", text)
    assert import_csv(db, kind, f, progress=False).ok
    after_first = snapshot(db)
    again = import_csv(db, kind, f, progress=False)
    assert (again.rows, again.error_count) == (0, updated), again.errors  # each stored key named once
    assert snapshot(db) == after_first
    dry = import_csv(db, kind, f, replace=True, dry_run=True, progress=False)
    assert (dry.ok, dry.updated, snapshot(db)) == (True, updated, after_first)
    result = import_csv(db, kind, f, replace=True, progress=False)
    assert (result.ok, result.updated) == (True, updated)
    if kind != "no-disturb":  # --replace closes the open entries and adds the file's: two more rows there
        assert snapshot(db) == after_first
    else:
        assert count(db, TABLES[kind]) == 4


def test_a_dry_run_leaves_nothing_behind(db: str, tmp_path: Path) -> None:
    for kind, (text, _) in SAMPLES.items():
        assert import_csv(db, kind, write(tmp_path, f"{kind}.csv", text), dry_run=True, progress=False).ok
    bad = import_csv(db, "plans", write(tmp_path, "bad.csv", SAMPLES["plans"][0] + "P-2,SAMR,food,,2024-01-01,2024-12-31,x\n"), dry_run=True, progress=False)
    assert [line for line, _ in bad.errors] == [4]
    assert all(not v for v in snapshot(db).values())
    if backend_of(db) is Backend.POSTGRES:  # no staging table left in any pooled session
        assert rows(db, "SELECT count(*) FROM pg_class WHERE relname = 'import_staging'") == [(0,)]
    # The same connections then import for real.
    assert import_csv(db, "fields", write(tmp_path, "f.csv", SAMPLES["fields"][0]), progress=False).rows == 2


def test_duplicates_in_the_file_and_against_stored_rows_together(db: str, tmp_path: Path) -> None:
    header = "officer_id,name,agency_id,credential_no,fields,valid_from,valid_to\n"
    assert import_csv(db, "officers", write(tmp_path, "o1.csv", header + "O-1,甲,SAMR,C-1,food,2024-01-01,2024-12-31\n"), progress=False).ok
    f = write(
        tmp_path,
        "o2.csv",
        header + "O-2,乙,SAMR,C-2,food,2024-01-01,2024-12-31\nO-1,丙,SAMR,C-3,food,2024-01-01,2024-12-31\nO-2,丁,SAMR,C-4,food,2024-01-01,2024-12-31\nO-5,戊,SAMR,C-1,food,2024-01-01,2024-12-31\n",
    )
    assert import_csv(db, "officers", f, progress=False).errors == [
        (3, "officer 'O-1' already exists in the database (--replace updates it)"),
        (4, "duplicate officer_id 'O-2': already on line 2"),
        (5, "credential_no 'C-1' already belongs to officer 'O-1' in the database"),
    ]
    assert rows(db, "SELECT officer_id, name FROM officers") == [("O-1", "甲")]


def test_huge_fields(db: str, tmp_path: Path) -> None:
    address = "长" * 100_000  # no limit on an address: kept whole on both backends
    assert import_csv(db, "enterprises", write(tmp_path, "big.csv", f"credit_code,name,address\n{code(1)},甲,{address}\n"), progress=False).ok
    assert rows(db, "SELECT length(address) FROM enterprises") == [(100_000,)]
    # Past the CSV reader's field limit the file is refused at that line, not read on.
    f = write(tmp_path, "huge.csv", f"credit_code,name,address\n{code(2)},乙,\n{code(3)},丙,{'x' * 200_000}\n{code(4)},丁,\n")
    result = import_csv(db, "enterprises", f, progress=False)
    assert result.errors == [(3, "CSV syntax error: field larger than field limit (131072); the rest of the file was not read")]
    name = import_csv(db, "enterprises", write(tmp_path, "name.csv", f"credit_code,name\n{code(5)},{'名' * 5000}\n"), progress=False)
    assert name.errors == [(2, "name has 5000 characters, at most 200 are allowed")]
    assert count(db, "enterprises") == 1


def test_malformed_rows(db: str, tmp_path: Path) -> None:
    f = tmp_path / "nul.csv"
    f.write_bytes(f"credit_code,name,address\n{code(1)},甲,a\x00b\n{code(2)},乙,c,\n{code(3)},丙,d,e\n\"{code(4)}\"x,丁,\n".encode())
    result = import_csv(db, "enterprises", f, progress=False)
    assert result.errors == [
        (2, "a cell holds a NUL character (byte 0x00): is this a CSV text file?"),
        (4, "4 cells but the header has 3 columns"),
        (5, "CSV syntax error: ',' expected after '\"'; the rest of the file was not read"),
    ]
    assert count(db, "enterprises") == 0


def test_dry_run_on_an_older_sqlite_file_checks_a_migrated_copy(tmp_path: Path) -> None:
    import sqlite3

    from tests.server.test_storage_schema import legacy_file

    path = legacy_file(tmp_path / "old.db", version=5)
    con = sqlite3.connect(path)
    con.execute("INSERT INTO enterprises(credit_code, name) VALUES (:code, '已有')", {"code": code(1)})
    con.commit()
    con.close()
    before = path.read_bytes()
    f = write(tmp_path, "e.csv", f"credit_code,name\n{code(2)},乙\n{code(1)},甲\n")
    result = import_csv(path, "enterprises", f, dry_run=True, progress=False)
    assert result.errors == [(3, f"enterprise '{code(1)}' already exists in the database (--replace updates it)")]
    assert import_csv(path, "enterprises", f, dry_run=True, replace=True, progress=False).updated == 1
    assert path.read_bytes() == before  # neither migrated nor written


def test_cli_takes_a_postgresql_url_and_the_cli_s_own_db_option(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "fields.csv", "field_id,name\nfood,食品安全\n")
    assert run_import(cli(["import", "fields", str(f), "--db", db, "--no-progress"])) == 0
    assert capsys.readouterr().out == f"{f}: imported 1 fields rows\n"
    seen: list[str] = []

    def add_db(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", type=lambda text: seen.append(text) or text)

    parser = argparse.ArgumentParser(prog="fe-server")
    add_import_parser(parser.add_subparsers(dest="command", required=True), add_db)
    assert parser.parse_args(["import", "fields", str(f), "--db", db]).db == db and seen == [db]


def test_cli_dry_run_on_an_empty_postgresql_database_migrates_nothing(postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, "fields.csv", "field_id,name\nfood,食品安全\n")
    try:
        assert run_import(cli(["import", "fields", str(f), "--db", postgres_url, "--dry-run", "--no-progress"])) == 1
        assert 'relation "fields" does not exist' in capsys.readouterr().err
        assert rows(postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    finally:
        close_storage(postgres_url)
