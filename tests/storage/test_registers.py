"""server/storage/registers.py on both backends: the demo's adders and an import's staging table, checks and writes."""

from __future__ import annotations

import pytest

from protocol.creditcode import check_character
from server.storage import registers
from server.storage.engine import Backend, Storage, Tx, sql

ENTERPRISE_COLUMNS = ("credit_code", "name", "address", "region", "risk", "credit")
OFFICER_COLUMNS = ("officer_id", "name", "agency_id", "credential_no", "fields", "valid_from_ms", "valid_to_ms", "revoked_ms")
NO_DISTURB_COLUMNS = ("credit_code", "basis", "valid_from_ms", "valid_to_ms", "added_by")
PLAN_COLUMNS = ("plan_id", "agency_id", "field", "title", "valid_from_ms", "valid_to_ms", "credit_code", "kind")
BASIS_COLUMNS = ("reference", "credit_code", "issued_by", "valid_from_ms", "valid_to_ms", "agency_id", "field", "summary")


def code(n: int) -> str:
    body = f"91110108MA{n:07d}"
    return body + check_character(body)


def rows(store: Storage, text: str) -> list[tuple[object, ...]]:
    with store.reading() as tx:
        return [tuple(r) for r in tx.all(sql(text))]


def enterprise(line: int, n: int, name: str = "企业") -> tuple[object, ...]:
    return (line, code(n), name, "", "", "medium", "B")


def staged(tx: Tx, columns: tuple[str, ...], batch: list[tuple[object, ...]]) -> None:
    registers.create_staging(tx, columns)
    registers.stage(tx, columns, batch)


def test_demo_adders_keep_what_exists(store: Storage) -> None:
    for _ in range(2):
        with store.writing() as tx:
            registers.add_fields(tx, [("food", "食品安全", "food safety")])
            registers.add_agencies(tx, [("SAMR", "市场监管局", "", "110108", ["food"])])
            registers.add_enterprises(tx, [(code(1), "甲", "某路", "110108", "low", "A")])
            registers.add_complaints(tx, [("T-1", code(1), None, "", 5)])
            registers.add_officer(tx, officer_id="O-1", name="张三", agency_id="SAMR", credential_no="C-1", fields=["food"], valid_from_ms=1, valid_to_ms=2)
            # Another officer id with a credential number already held is left out too (the demo's ids are its own).
            registers.add_officer(tx, officer_id="O-2", name="李四", agency_id="SAMR", credential_no="C-1", fields=["food"], valid_from_ms=1, valid_to_ms=2)
    assert rows(store, "SELECT agency_id, fields FROM agencies") == [("SAMR", '["food"]')]
    assert rows(store, "SELECT officer_id FROM officers") == [("O-1",)]
    assert rows(store, "SELECT ticket_no, field FROM complaints") == [("T-1", None)]
    with store.writing() as tx:
        registers.add_no_disturb(tx, [code(1), code(2)], basis="示范", valid_from_ms=10, valid_to_ms=None, added_by="demo", added_ms=11)
    assert rows(store, "SELECT credit_code, valid_to_ms, removed_ms FROM no_disturb ORDER BY id") == [(code(1), None, None), (code(2), None, None)]


def test_staging_duplicates_and_stored_keys(store: Storage) -> None:
    with store.writing() as tx:
        registers.add_enterprises(tx, [(code(2), "已有", "", "", "low", "A")])
    with store.writing() as tx:
        staged(tx, ENTERPRISE_COLUMNS, [enterprise(2, 1), enterprise(3, 2), enterprise(5, 1), enterprise(6, 3)])
        assert registers.staged_count(tx) == 4
        assert registers.duplicates(tx, ("credit_code",)) == [(5, 2, code(1))]
        assert registers.stored_keys(tx, "enterprises", "credit_code") == [(3, code(2))]
        assert registers.count_stored(tx, "enterprises", "credit_code") == 1
        registers.drop_staging(tx)


def test_write_staged_inserts_leaves_out_or_updates(store: Storage) -> None:
    with store.writing() as tx:
        registers.add_enterprises(tx, [(code(1), "旧名", "旧址", "", "high", "A")])
    with store.writing() as tx:
        staged(tx, ENTERPRISE_COLUMNS, [enterprise(2, 1, "新名"), enterprise(3, 2, "新企业")])
        # Without an update list a stored key is left out: the count tells the caller.
        assert registers.write_staged(tx, "enterprises", ENTERPRISE_COLUMNS, update=None) == 1
        registers.drop_staging(tx)
    assert rows(store, "SELECT credit_code, name FROM enterprises ORDER BY credit_code") == [(code(1), "旧名"), (code(2), "新企业")]
    with store.writing() as tx:
        staged(tx, ENTERPRISE_COLUMNS, [enterprise(2, 1, "新名"), enterprise(3, 3, "第三")])
        assert registers.write_staged(tx, "enterprises", ENTERPRISE_COLUMNS, update=["name"]) == 2
        registers.drop_staging(tx)
    # Only the listed column is updated; the others keep their stored values.
    assert rows(store, "SELECT credit_code, name, address, risk FROM enterprises ORDER BY credit_code") == [
        (code(1), "新名", "旧址", "high"), (code(2), "新企业", "", "medium"), (code(3), "第三", "", "medium"),
    ]


def test_names_from_outside_the_code_are_refused(store: Storage) -> None:
    with store.writing() as tx:
        registers.create_staging(tx, ENTERPRISE_COLUMNS)
        with pytest.raises(ValueError, match="not a table"):
            registers.stored_keys(tx, "users", "username")
        with pytest.raises(ValueError, match="not a column name"):
            registers.write_staged(tx, "enterprises", ("credit_code; DROP TABLE enterprises",), update=None)
        registers.drop_staging(tx)


def test_a_rolled_back_import_leaves_no_staging_table(store: Storage) -> None:
    with pytest.raises(RuntimeError), store.writing() as tx:
        staged(tx, ENTERPRISE_COLUMNS, [enterprise(2, 1)])
        raise RuntimeError("dry run")
    if store.backend is Backend.POSTGRES:  # temporary tables of every session are in pg_class
        assert rows(store, "SELECT count(*) FROM pg_class WHERE relname = 'import_staging'") == [(0,)]
    with store.writing() as tx:  # the same pooled or kept connection can stage again
        staged(tx, ENTERPRISE_COLUMNS, [enterprise(2, 1)])
        registers.drop_staging(tx)
    assert rows(store, "SELECT count(*) FROM enterprises") == [(0,)]


def test_credentials_held_by_other_officers(store: Storage) -> None:
    with store.writing() as tx:
        registers.add_officer(tx, officer_id="O-1", name="甲", agency_id="SAMR", credential_no="C-1", fields=["food"], valid_from_ms=1, valid_to_ms=2)
        staged(tx, OFFICER_COLUMNS, [(2, "O-1", "甲", "SAMR", "C-1", "[]", 1, 2, None), (3, "O-2", "乙", "SAMR", "C-1", "[]", 1, 2, None)])
        assert registers.credentials_held_by_others(tx) == [(3, "C-1", "O-1")]
        registers.drop_staging(tx)


def test_no_disturb_entries_closed_and_added(store: Storage) -> None:
    with store.writing() as tx:
        registers.add_no_disturb(tx, [code(1), code(2)], basis="旧", valid_from_ms=100, valid_to_ms=None, added_by="s", added_ms=1)
    with store.writing() as tx:
        staged(tx, NO_DISTURB_COLUMNS, [(2, code(1), "新", 100, None, "s"), (3, code(3), "新", 200, 300, "s")])
        (clash,) = registers.open_no_disturb_same_start(tx)
        assert clash[:2] == (2, code(1))
        assert registers.count_open_no_disturb(tx) == 1
        assert registers.close_open_no_disturb(tx, 999) == 1
        assert registers.insert_staged_no_disturb(tx, 999) == 2
        registers.drop_staging(tx)
    assert rows(store, "SELECT credit_code, basis, removed_ms, added_ms FROM no_disturb ORDER BY id") == [
        (code(1), "旧", 999, 1), (code(2), "旧", None, 1), (code(1), "新", None, 999), (code(3), "新", None, 999),
    ]


def test_plans_written_from_their_first_line_with_their_targets(store: Storage) -> None:
    plan = ("P-1", "SAMR", "food", "抽查", 1, 2)
    with store.writing() as tx:
        staged(tx, PLAN_COLUMNS, [(2, *plan, code(1), "random_draw"), (3, *plan, code(2), "random_draw")])
        assert (registers.count_staged_plans(tx), registers.stored_plans(tx)) == (1, [])
        assert registers.write_staged_plans(tx, 50, replace=False) == 1
        registers.drop_staging(tx)
    with store.writing() as tx:
        staged(tx, PLAN_COLUMNS, [(2, "P-1", "SAMR", "food", "调整", 1, 2, code(3), "special")])
        assert registers.stored_plans(tx) == [(2, "P-1")]
        assert registers.write_staged_plans(tx, 60, replace=False) == 0  # left out: the caller sees 0 < 1
        assert registers.count_stored_plans(tx) == 1
        assert registers.write_staged_plans(tx, 60, replace=True) == 1
        registers.drop_staging(tx)
    assert rows(store, "SELECT plan_id, kind, title, created_ms FROM plans") == [("P-1", "special", "调整", 50)]
    assert rows(store, "SELECT plan_id, credit_code FROM plan_targets ORDER BY credit_code") == [("P-1", code(3))]


def test_exception_bases_by_kind(store: Storage) -> None:
    basis = ("京市监〔2026〕1号", code(1), "市局", 1, 2, None, None, "")
    with store.writing() as tx:
        staged(tx, BASIS_COLUMNS, [(2, *basis)])
        assert registers.write_staged_bases(tx, "superior_assignment", 10, replace=False) == 1
        assert registers.write_staged_bases(tx, "major_risk", 10, replace=False) == 1
        assert registers.write_staged_bases(tx, "major_risk", 11, replace=False) == 0
        assert registers.stored_bases(tx, "major_risk") == [(2, basis[0], code(1))]
        assert registers.count_stored_bases(tx, "major_risk") == 1
        tx.run(sql("UPDATE exception_bases SET withdrawn_ms = 5, withdrawn_by = 'x'"))
        assert registers.write_staged_bases(tx, "major_risk", 12, replace=True) == 1
        registers.drop_staging(tx)
    assert rows(store, "SELECT kind, withdrawn_ms, created_by FROM exception_bases ORDER BY kind") == [("major_risk", None, "import"), ("superior_assignment", 5, "import")]
