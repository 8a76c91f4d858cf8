"""The registers' rows (fields, agencies, enterprises, officers, no_disturb, complaints, plans, plan_targets) and the
CSV import's bookkeeping: a staging table per import and the statements that check and write it.

An import stages its rows in a temporary table inside its write transaction (``create_staging`` ... ``drop_staging``),
so that duplicates, clashes with stored rows and the write itself are each one statement over all rows, on either
backend. The import's rules (which key clashes, what --replace updates, the messages) are in server/imports/.
Table and column names below come from the code (``IMPORT_TABLES``), never from a file.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from server.storage.engine import Statement, Tx, sql

# --- the demo district's registers (server/demo.py): rows added once, kept when they exist ----------------------

ADD_FIELD = sql("INSERT INTO fields(field_id, name, name_en) VALUES (:field_id, :name, :name_en) ON CONFLICT (field_id) DO NOTHING")
ADD_AGENCY = sql(
    "INSERT INTO agencies(agency_id, name, name_en, region, fields) VALUES (:agency_id, :name, :name_en, :region, :fields)"
    " ON CONFLICT (agency_id) DO NOTHING"
)
ADD_ENTERPRISE = sql(
    "INSERT INTO enterprises(credit_code, name, address, region, risk, credit) VALUES (:credit_code, :name, :address, :region, :risk, :credit)"
    " ON CONFLICT (credit_code) DO NOTHING"
)
ADD_NO_DISTURB = sql(
    "INSERT INTO no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms)"
    " VALUES (:credit_code, :basis, :valid_from_ms, :valid_to_ms, :added_by, :added_ms)"
)
ADD_COMPLAINT = sql(
    "INSERT INTO complaints(ticket_no, credit_code, field, summary, received_ms) VALUES (:ticket_no, :credit_code, :field, :summary, :received_ms)"
    " ON CONFLICT (ticket_no) DO NOTHING"
)
ADD_OFFICER = sql(
    "INSERT INTO officers(officer_id, name, agency_id, credential_no, fields, valid_from_ms, valid_to_ms)"
    " VALUES (:officer_id, :name, :agency_id, :credential_no, :fields, :valid_from_ms, :valid_to_ms) ON CONFLICT DO NOTHING"
)


def add_fields(tx: Tx, rows: Iterable[tuple[str, str, str]]) -> None:
    """(field_id, name, name_en) rows; an existing field id is kept as it is."""
    tx.many(ADD_FIELD, [{"field_id": f, "name": n, "name_en": e} for f, n, e in rows])


def add_agencies(tx: Tx, rows: Iterable[tuple[str, str, str, str, list[str]]]) -> None:
    """(agency_id, name, name_en, region, field ids) rows; an existing agency is kept as it is."""
    tx.many(ADD_AGENCY, [{"agency_id": a, "name": n, "name_en": e, "region": r, "fields": json.dumps(f)} for a, n, e, r, f in rows])


def add_enterprises(tx: Tx, rows: Iterable[tuple[str, str, str, str, str, str]]) -> None:
    """(credit_code, name, address, region, risk, credit) rows; an existing enterprise is kept as it is."""
    keys = ("credit_code", "name", "address", "region", "risk", "credit")
    tx.many(ADD_ENTERPRISE, [dict(zip(keys, r, strict=True)) for r in rows])


def add_no_disturb(tx: Tx, codes: Iterable[str], *, basis: str, valid_from_ms: int, valid_to_ms: int | None, added_by: str, added_ms: int) -> None:
    """One open no-disturb entry per credit code."""
    common = {"basis": basis, "valid_from_ms": valid_from_ms, "valid_to_ms": valid_to_ms, "added_by": added_by, "added_ms": added_ms}
    tx.many(ADD_NO_DISTURB, [{"credit_code": c, **common} for c in codes])


def add_complaints(tx: Tx, rows: Iterable[tuple[str, str, str | None, str, int]]) -> None:
    """(ticket_no, credit_code, field, summary, received_ms) rows; an existing ticket is kept as it is."""
    keys = ("ticket_no", "credit_code", "field", "summary", "received_ms")
    tx.many(ADD_COMPLAINT, [dict(zip(keys, r, strict=True)) for r in rows])


def add_officer(tx: Tx, *, officer_id: str, name: str, agency_id: str, credential_no: str, fields: list[str], valid_from_ms: int, valid_to_ms: int) -> None:
    """An officer, unless one with this id or credential number exists."""
    tx.run(
        ADD_OFFICER, officer_id=officer_id, name=name, agency_id=agency_id, credential_no=credential_no, fields=json.dumps(fields),
        valid_from_ms=valid_from_ms, valid_to_ms=valid_to_ms,
    )


# --- the import's staging table ---------------------------------------------------------------------------------

#: The tables an import writes, and their key (the conflict target of --replace).
IMPORT_TABLES: dict[str, tuple[str, ...]] = {
    "fields": ("field_id",),
    "agencies": ("agency_id",),
    "enterprises": ("credit_code",),
    "officers": ("officer_id",),
    "complaints": ("ticket_no",),
    "no_disturb": ("id",),
    "plans": ("plan_id",),
    "exception_bases": ("kind", "reference", "credit_code"),
}
_NAME = re.compile(r"[a-z_]+\Z")
STAGING = "import_staging"

DROP_STAGING = sql(f"DROP TABLE IF EXISTS {STAGING}")
COUNT_STAGED = sql(f"SELECT count(*) FROM {STAGING}")


def _names(*names: str) -> str:
    """``names`` joined for SQL, each checked to be a plain column name (they come from the code, not a file)."""
    for n in names:
        if not _NAME.match(n):
            raise ValueError(f"not a column name: {n!r}")
    return ", ".join(names)


def _table(table: str) -> tuple[str, ...]:
    if table not in IMPORT_TABLES:
        raise ValueError(f"not a table imports write: {table!r}")
    return IMPORT_TABLES[table]


@functools.cache
def _create_staging(columns: tuple[str, ...]) -> Statement:
    # Epoch-ms columns are integers, everything else text: PostgreSQL compares them with the tables' own types.
    cols = ", ".join(f"{c} {'BIGINT' if c.endswith('_ms') else 'TEXT'}" for c in columns)
    _names(*columns)
    # Not dropped at commit by the database (SQLite has no ON COMMIT DROP): drop_staging() ends every import.
    return sql(f"CREATE TEMP TABLE {STAGING} (line BIGINT NOT NULL, {cols})")


@functools.cache
def _stage(columns: tuple[str, ...]) -> Statement:
    return sql(f"INSERT INTO {STAGING} (line, {_names(*columns)}) VALUES (:line, {', '.join(f':{c}' for c in columns)})")


def create_staging(tx: Tx, columns: Sequence[str]) -> None:
    """A temporary table for an import's rows (line, *columns), empty; gone at the transaction's end on a rollback,
    or by ``drop_staging``."""
    tx.run(DROP_STAGING)
    tx.run(_create_staging(tuple(columns)))


def stage(tx: Tx, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Add rows (line, *values in ``columns`` order) to the staging table (pipelined on PostgreSQL)."""
    names = ("line", *columns)
    tx.many(_stage(tuple(columns)), [dict(zip(names, r, strict=True)) for r in rows])


def staged_count(tx: Tx) -> int:
    return int(tx.scalar(COUNT_STAGED))


def drop_staging(tx: Tx) -> None:
    tx.run(DROP_STAGING)


@functools.cache
def _duplicates(cols: tuple[str, ...]) -> Statement:
    c = _names(*cols)
    return sql(
        f"SELECT line, first, {c} FROM (SELECT line, {c}, min(line) OVER (PARTITION BY {c}) AS first FROM {STAGING}) AS d"
        " WHERE line > first ORDER BY line"
    )


def duplicates(tx: Tx, cols: Sequence[str]) -> list[tuple[Any, ...]]:
    """(line, first line, *key) of staged rows whose ``cols`` repeat those of an earlier line, in line order."""
    return tx.all(_duplicates(tuple(cols)))


@functools.cache
def _stored_keys(table: str, key: str) -> Statement:
    _table(table)
    _names(key)
    return sql(f"SELECT s.line, s.{key} FROM {STAGING} AS s JOIN {table} AS t ON t.{key} = s.{key} ORDER BY s.line")


@functools.cache
def _count_stored(table: str, key: str) -> Statement:
    _table(table)
    _names(key)
    return sql(f"SELECT count(*) FROM {STAGING} AS s JOIN {table} AS t ON t.{key} = s.{key}")


def stored_keys(tx: Tx, table: str, key: str) -> list[tuple[int, str]]:
    """(line, key) of staged rows whose key is already stored in ``table``, in line order."""
    return [(int(line), k) for line, k in tx.all(_stored_keys(table, key))]


def count_stored(tx: Tx, table: str, key: str) -> int:
    """How many staged rows have a key already stored in ``table``."""
    return int(tx.scalar(_count_stored(table, key)))


@functools.cache
def _write_staged(table: str, columns: tuple[str, ...], update: tuple[str, ...] | None) -> Statement:
    key = _table(table)
    cols = _names(*columns)
    # SQLite needs a WHERE before ON CONFLICT in an INSERT ... SELECT (its parser would read ON as a join's).
    text = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {STAGING} WHERE true ORDER BY {_names(*key)}"
    if update is None or not update:
        text += " ON CONFLICT DO NOTHING"
    else:
        text += f" ON CONFLICT ({_names(*key)}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
    return sql(text)


def write_staged(tx: Tx, table: str, columns: Sequence[str], *, update: Sequence[str] | None) -> int:
    """Insert the staged rows into ``table``; a row whose key is stored updates the ``update`` columns of the stored
    row, or (``update`` None) is left out. Returns how many rows were inserted or updated."""
    return int(tx.run(_write_staged(table, tuple(columns), None if update is None else tuple(update))).rowcount)


CREDENTIALS_HELD_BY_OTHERS = sql(
    f"SELECT s.line, s.credential_no, o.officer_id FROM {STAGING} AS s JOIN officers AS o ON o.credential_no = s.credential_no"
    " WHERE o.officer_id <> s.officer_id ORDER BY s.line"
)


def credentials_held_by_others(tx: Tx) -> list[tuple[int, str, str]]:
    """(line, credential_no, officer_id) of staged officers whose credential number a stored other officer holds."""
    return [(int(line), c, o) for line, c, o in tx.all(CREDENTIALS_HELD_BY_OTHERS)]


# --- no-disturb entries -------------------------------------------------------------------------------------------

_STAGED_CODES_OPEN = f"removed_ms IS NULL AND credit_code IN (SELECT credit_code FROM {STAGING})"
OPEN_NO_DISTURB_SAME_START = sql(
    f"SELECT s.line, s.credit_code, n.id FROM {STAGING} AS s JOIN no_disturb AS n"
    " ON n.credit_code = s.credit_code AND n.valid_from_ms = s.valid_from_ms AND n.removed_ms IS NULL ORDER BY s.line, n.id"
)
COUNT_OPEN_NO_DISTURB = sql(f"SELECT count(*) FROM no_disturb WHERE {_STAGED_CODES_OPEN}")
CLOSE_OPEN_NO_DISTURB = sql(f"UPDATE no_disturb SET removed_ms = :now_ms WHERE {_STAGED_CODES_OPEN}")
INSERT_STAGED_NO_DISTURB = sql(
    "INSERT INTO no_disturb (credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms)"
    f" SELECT credit_code, basis, valid_from_ms, valid_to_ms, added_by, :now_ms FROM {STAGING} ORDER BY line"
)


def open_no_disturb_same_start(tx: Tx) -> list[tuple[int, str, int]]:
    """(line, credit_code, id) of staged entries an open stored entry of the same code and valid_from matches."""
    return [(int(line), c, int(i)) for line, c, i in tx.all(OPEN_NO_DISTURB_SAME_START)]


def count_open_no_disturb(tx: Tx) -> int:
    """Open stored entries of the staged credit codes."""
    return int(tx.scalar(COUNT_OPEN_NO_DISTURB))


def close_open_no_disturb(tx: Tx, now_ms: int) -> int:
    """Close the open stored entries of the staged credit codes; returns how many."""
    return int(tx.run(CLOSE_OPEN_NO_DISTURB, now_ms=now_ms).rowcount)


def insert_staged_no_disturb(tx: Tx, now_ms: int) -> int:
    return int(tx.run(INSERT_STAGED_NO_DISTURB, now_ms=now_ms).rowcount)


# --- plans and their targets -------------------------------------------------------------------------------------

STORED_PLANS = sql(
    f"SELECT min(s.line), s.plan_id FROM {STAGING} AS s JOIN plans AS p ON p.plan_id = s.plan_id GROUP BY s.plan_id ORDER BY 1, 2"
)
COUNT_STORED_PLANS = sql(f"SELECT count(*) FROM plans WHERE plan_id IN (SELECT plan_id FROM {STAGING})")
DELETE_STAGED_PLAN_TARGETS = sql(f"DELETE FROM plan_targets WHERE plan_id IN (SELECT plan_id FROM {STAGING})")
_INSERT_STAGED_PLANS = (
    "INSERT INTO plans (plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms)"
    f" SELECT plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, :now_ms FROM {STAGING}"
    f" WHERE line IN (SELECT min(line) FROM {STAGING} GROUP BY plan_id) ORDER BY line"
)
INSERT_STAGED_PLANS = sql(_INSERT_STAGED_PLANS + " ON CONFLICT DO NOTHING")
UPSERT_STAGED_PLANS = sql(
    _INSERT_STAGED_PLANS + " ON CONFLICT (plan_id) DO UPDATE SET agency_id = excluded.agency_id, field = excluded.field,"
    " kind = excluded.kind, title = excluded.title, valid_from_ms = excluded.valid_from_ms, valid_to_ms = excluded.valid_to_ms"
)
# A stored target is only met when the plan was stored too, which the caller finds by the plans written.
INSERT_STAGED_PLAN_TARGETS = sql(
    f"INSERT INTO plan_targets (plan_id, credit_code) SELECT plan_id, credit_code FROM {STAGING} WHERE true ORDER BY plan_id, credit_code"
    " ON CONFLICT DO NOTHING"
)
COUNT_STAGED_PLANS = sql(f"SELECT count(DISTINCT plan_id) FROM {STAGING}")


def stored_plans(tx: Tx) -> list[tuple[int, str]]:
    """(first line, plan_id) of staged plans already stored."""
    return [(int(line), p) for line, p in tx.all(STORED_PLANS)]


def count_stored_plans(tx: Tx) -> int:
    return int(tx.scalar(COUNT_STORED_PLANS))


def count_staged_plans(tx: Tx) -> int:
    return int(tx.scalar(COUNT_STAGED_PLANS))


def write_staged_plans(tx: Tx, now_ms: int, *, replace: bool) -> int:
    """The staged plans (each from its first line) and their targets. ``replace``: a stored plan is updated and its
    targets become the staged ones; otherwise a stored plan is left out. Returns the plans inserted or updated."""
    if replace:
        tx.run(DELETE_STAGED_PLAN_TARGETS)
    written = int(tx.run(UPSERT_STAGED_PLANS if replace else INSERT_STAGED_PLANS, now_ms=now_ms).rowcount)
    tx.run(INSERT_STAGED_PLAN_TARGETS)
    return written


# --- exception bases (superior assignments, major-risk notices) -------------------------------------------------------

_BASIS_COLUMNS = "reference, credit_code, issued_by, valid_from_ms, valid_to_ms, agency_id, field, summary"
_JOIN_BASES = "JOIN exception_bases AS b ON b.kind = :kind AND b.reference = s.reference AND b.credit_code = s.credit_code"
STORED_BASES = sql(f"SELECT s.line, s.reference, s.credit_code FROM {STAGING} AS s {_JOIN_BASES} ORDER BY s.line")
COUNT_STORED_BASES = sql(f"SELECT count(*) FROM {STAGING} AS s {_JOIN_BASES}")
_INSERT_STAGED_BASES = (
    f"INSERT INTO exception_bases (kind, {_BASIS_COLUMNS}, created_by, created_ms)"
    f" SELECT :kind, {_BASIS_COLUMNS}, 'import', :now_ms FROM {STAGING} WHERE true ORDER BY line"
)
INSERT_STAGED_BASES = sql(_INSERT_STAGED_BASES + " ON CONFLICT DO NOTHING")
UPSERT_STAGED_BASES = sql(
    _INSERT_STAGED_BASES + " ON CONFLICT (kind, reference, credit_code) DO UPDATE SET issued_by = excluded.issued_by,"
    " valid_from_ms = excluded.valid_from_ms, valid_to_ms = excluded.valid_to_ms, agency_id = excluded.agency_id,"
    " field = excluded.field, summary = excluded.summary, withdrawn_ms = NULL, withdrawn_by = NULL"
)


def stored_bases(tx: Tx, kind: str) -> list[tuple[int, str, str]]:
    """(line, reference, credit_code) of staged bases of ``kind`` already stored."""
    return [(int(line), r, c) for line, r, c in tx.all(STORED_BASES, kind=kind)]


def count_stored_bases(tx: Tx, kind: str) -> int:
    return int(tx.scalar(COUNT_STORED_BASES, kind=kind))


def write_staged_bases(tx: Tx, kind: str, now_ms: int, *, replace: bool) -> int:
    """The staged bases of ``kind``; ``replace``: a stored one is updated (and no longer withdrawn), otherwise left
    out. Returns how many were inserted or updated."""
    return int(tx.run(UPSERT_STAGED_BASES if replace else INSERT_STAGED_BASES, kind=kind, now_ms=now_ms).rowcount)
