"""Import a register from a CSV file: ``fe-server import KIND FILE``, all rows or none.

Files are UTF-8 (a byte order mark, as Excel writes it, is accepted), comma-separated, with a header row of
column names first (any order; case and surrounding spaces are ignored). Columns marked * are required in the
header and may not be empty; the others may be left out of the header (new rows then take the default, and
with --replace existing rows keep their stored value). Dates are YYYY-MM-DD in China Standard Time (UTC+8):
a valid_from date starts at 00:00 CST, a valid_to date lasts through 23:59:59.999 CST. Lists are ids
separated by ';'. Credit codes are unified social credit codes (GB 32100-2015), check character included;
they are stored upper-case. Ids have at most 64 characters, names and titles at most 200.

  fields       field_id*, name*, name_en
  agencies     agency_id*, name*, name_en, region, fields (field ids; may be empty)
  enterprises  credit_code*, name* (at most 200 characters), address, region,
               risk (low|medium|high, default medium), credit (A|B|C|D, default B); any letter case
  officers     officer_id*, name*, agency_id*, credential_no* (unique), fields* (field ids),
               valid_from*, valid_to* (date, not before valid_from), revoked (date; empty = not revoked)
  no-disturb   credit_code*, basis*, valid_from*, valid_to (empty = open-ended), added_by*
               Each row adds an entry. With --replace, the open entries of every credit code in the file are
               closed first; without it, an open entry with the same credit code and valid_from is an error.
  complaints   ticket_no*, credit_code*, field, summary, received* (date, or ISO datetime such as
               2024-03-05T14:30:00+08:00; without an offset it is CST)
  plans        plan_id*, agency_id*, field*, kind (random_draw|special, default random_draw), title*,
               valid_from*, valid_to*, credit_code*
               One row per enterprise the plan targets: a plan's rows repeat its attributes, which must agree.
               With --replace an existing plan is updated and its targets become the file's.
  assignments  reference*, credit_code*, issued_by*, valid_from*, valid_to* (at most 366 days later),
               agency_id (empty = any agency), field (empty = any field), summary
               Superior authorities' assignments (上级交办) that officers may cite as an exception: one row per
               enterprise a document names. With --replace an existing entry is updated (and no longer withdrawn).
  risk-notices the same columns, for major-risk notices (重大风险)

A key (field_id, agency_id, credit_code, officer_id, credential_no, ticket_no; for plans plan_id with
credit_code; for assignments and risk notices reference with credit_code) may appear once per file; a key already in the database is an error unless --replace is given
(a credential_no held by another officer always is). Every bad row is reported as FILE:LINE: reason (the
header is line 1, a row's line is the one it starts on), and then nothing is imported.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import datetime as dt
import functools
import json
import operator
import re
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from protocol.creditcode import CreditCodeError, validate
from server import db as dbmod

KINDS: tuple[str, ...] = ("fields", "agencies", "enterprises", "officers", "no-disturb", "complaints", "plans", "assignments", "risk-notices")

DEFAULT_DB = Path("fe-server.db")
#: Bad rows printed by the CLI; the rest are only counted.
MAX_PRINTED_ERRORS = 50
#: Bad rows kept in an ImportResult (a file of a million bad rows must not fill the memory).
MAX_KEPT_ERRORS = 10_000
#: Rows handed to SQLite per executemany while staging.
BATCH_ROWS = 5_000
MAX_NAME = 200
MAX_ID = 64
DAY_MS = 86_400_000
_CST_OFFSET_MS = 8 * 3_600_000  # China Standard Time is UTC+8, no daylight saving
_CST = dt.timezone(dt.timedelta(hours=8))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
RISKS = ("low", "medium", "high")
CREDITS = ("A", "B", "C", "D")
PLAN_KINDS = ("random_draw", "special")
MAX_BASIS_DAYS = 366  # an assignment or notice must end; the same bound as the API (server/exception_bases.py)


class _RowError(ValueError):
    """A row that cannot be imported; the message names the column."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did, or would do in a dry run."""

    kind: str
    source: str
    #: Rows imported (in a dry run: rows that would be); 0 when the file was rejected.
    rows: int
    #: Existing rows updated (--replace); for no-disturb, open entries closed.
    updated: int
    #: (line, reason) of bad rows in line order, the header being line 1; at most MAX_KEPT_ERRORS.
    errors: list[tuple[int, str]]
    error_count: int
    dry_run: bool
    #: Seconds the database's write lock was held (0 in a dry run or when rejected).
    write_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True if the file had no bad row."""
        return self.error_count == 0


# ------------------------------------------------------------------------------------------ cells


def _text(col: str, v: str, *, limit: int | None = None) -> str:
    if not v:
        raise _RowError(f"{col} is empty")
    if limit is not None and len(v) > limit:
        raise _RowError(f"{col} has {len(v)} characters, at most {limit} are allowed")
    return v


def _ident(col: str, v: str) -> str:
    return _text(col, v, limit=MAX_ID)


def _code(col: str, v: str) -> str:
    if not v:
        raise _RowError(f"{col} is empty")
    try:
        return validate(v)
    except CreditCodeError as e:
        msg = str(e)
        raise _RowError(f"{col} {msg}" if msg.startswith(repr(v)) else f"{col}: {msg}") from None


def _ids(col: str, v: str, *, required: bool) -> str:
    """A ';'-separated id list as the JSON list the registers store."""
    if not v:
        if required:
            raise _RowError(f"{col} is empty: at least one field id is required")
        return "[]"
    ids = [p.strip() for p in v.split(";")]
    if "" in ids:
        raise _RowError(f"{col} {v!r} has an empty id (check the ';' separators)")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise _RowError(f"{col} {v!r} lists {i!r} twice")
        if len(i) > MAX_ID:
            raise _RowError(f"{col}: id {i!r} has {len(i)} characters, at most {MAX_ID} are allowed")
        seen.add(i)
    return json.dumps(ids, ensure_ascii=False)


def _choice(col: str, v: str, allowed: tuple[str, ...], default: str) -> str:
    if not v:
        return default
    if v not in allowed:
        raise _RowError(f"{col} {v!r} is not one of {', '.join(allowed)}")
    return v


@functools.lru_cache(maxsize=4096)
def _day_start_ms(text: str) -> int:
    if not _DATE.fullmatch(text):
        raise ValueError("expected YYYY-MM-DD")
    return (dt.date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL) * DAY_MS - _CST_OFFSET_MS


def _date_ms(col: str, v: str) -> int:
    """00:00 CST of a YYYY-MM-DD date, as epoch ms."""
    if not v:
        raise _RowError(f"{col} is empty")
    try:
        return _day_start_ms(v)
    except ValueError as e:
        raise _RowError(f"{col} {v!r} is not a date YYYY-MM-DD ({e})") from None


def _period(v_from: str, v_to: str, *, open_ended: bool = False) -> tuple[int, int | None]:
    """valid_from at 00:00 CST and valid_to through 23:59:59.999 CST, as epoch ms."""
    start = _date_ms("valid_from", v_from)
    if open_ended and not v_to:
        return start, None
    end = _date_ms("valid_to", v_to) + DAY_MS - 1
    if end < start:
        raise _RowError(f"valid_to {v_to} is before valid_from {v_from}")
    return start, end


def _instant_ms(col: str, v: str) -> int:
    """A date (00:00 CST) or an ISO datetime (CST unless it has an offset), as epoch ms."""
    if _DATE.fullmatch(v):
        return _date_ms(col, v)
    if not v:
        raise _RowError(f"{col} is empty")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise _RowError(f"{col} {v!r} is neither a date YYYY-MM-DD nor an ISO datetime such as 2024-03-05T14:30:00+08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_CST)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


# ------------------------------------------------------------------------------------------ kinds


class _Register:
    """A register keyed by its first staged column; subclasses parse rows and may check and write differently."""

    table = ""
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    #: Staged columns, in the order parse() returns them (the database's column names).
    staged: tuple[str, ...] = ()
    #: Column groups that must be unique within the file, with how to name them.
    unique: tuple[tuple[str, ...], ...] = ()
    #: CSV column -> database column, where they differ.
    db_column: dict[str, str] = {}
    noun = "row"
    #: The line being parsed (for messages that name another line).
    line = 0

    def __init__(self, present: Sequence[str]) -> None:
        self.present = present

    @property
    def key(self) -> str:
        return self.staged[0]

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        raise NotImplementedError

    def clashes(self, con: sqlite3.Connection, replace: bool) -> list[tuple[int, str]]:
        """Staged rows that clash with the database."""
        if replace:
            return []
        k = self.key
        rows = con.execute(f"SELECT s.line, s.{k} FROM temp.staging s JOIN main.{self.table} t ON t.{k} = s.{k} ORDER BY s.line").fetchall()
        return [(line, f"{self.noun} {key!r} already exists in the database (--replace updates it)") for line, key in rows]

    def would_update(self, con: sqlite3.Connection) -> int:
        """How many existing rows --replace would update."""
        k = self.key
        return int(con.execute(f"SELECT count(*) FROM temp.staging s JOIN main.{self.table} t ON t.{k} = s.{k}").fetchone()[0])

    def write(self, con: sqlite3.Connection, replace: bool, now_ms: int) -> int:
        """Write the staged rows (inside the caller's transaction); returns how many existing rows were updated."""
        cols = ", ".join(self.staged)
        sql = f"INSERT INTO main.{self.table}({cols}) SELECT {cols} FROM temp.staging WHERE true ORDER BY {self.key}"
        if replace:
            updated = [self.db_column.get(c, c) for c in self.present if self.db_column.get(c, c) != self.key]
            sets = ", ".join(f"{c} = excluded.{c}" for c in updated)
            sql += f" ON CONFLICT({self.key}) DO " + (f"UPDATE SET {sets}" if sets else "NOTHING")
        # Inserted rows are counted, not looked up one by one: a count is cheap while the write lock is held.
        count = f"SELECT count(*) FROM main.{self.table}"
        before = con.execute(count).fetchone()[0]
        con.execute(sql)
        staged = con.execute("SELECT count(*) FROM temp.staging").fetchone()[0]
        return int(staged - (con.execute(count).fetchone()[0] - before))


class _Fields(_Register):
    table, noun = "fields", "field"
    required, optional = ("field_id", "name"), ("name_en",)
    staged = ("field_id", "name", "name_en")
    unique = (("field_id",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        field_id, name, name_en = v
        return _ident("field_id", field_id), _text("name", name, limit=MAX_NAME), name_en


class _Agencies(_Register):
    table, noun = "agencies", "agency"
    required, optional = ("agency_id", "name"), ("name_en", "region", "fields")
    staged = ("agency_id", "name", "name_en", "region", "fields")
    unique = (("agency_id",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        agency_id, name, name_en, region, fields = v
        return _ident("agency_id", agency_id), _text("name", name, limit=MAX_NAME), name_en, region, _ids("fields", fields, required=False)


class _Enterprises(_Register):
    table, noun = "enterprises", "enterprise"
    required, optional = ("credit_code", "name"), ("address", "region", "risk", "credit")
    staged = ("credit_code", "name", "address", "region", "risk", "credit")
    unique = (("credit_code",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        code, name, address, region, risk, credit = v
        return (
            _code("credit_code", code),
            _text("name", name, limit=MAX_NAME),
            address,
            region,
            _choice("risk", risk.lower(), RISKS, "medium"),
            _choice("credit", credit.upper(), CREDITS, "B"),
        )


class _Officers(_Register):
    table, noun = "officers", "officer"
    required = ("officer_id", "name", "agency_id", "credential_no", "fields", "valid_from", "valid_to")
    optional = ("revoked",)
    staged = ("officer_id", "name", "agency_id", "credential_no", "fields", "valid_from_ms", "valid_to_ms", "revoked_ms")
    unique = (("officer_id",), ("credential_no",))
    db_column = {"valid_from": "valid_from_ms", "valid_to": "valid_to_ms", "revoked": "revoked_ms"}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        officer_id, name, agency_id, credential_no, fields, v_from, v_to, revoked = v
        officer_id = _ident("officer_id", officer_id)
        name = _text("name", name, limit=MAX_NAME)
        agency_id = _ident("agency_id", agency_id)
        credential_no = _ident("credential_no", credential_no)
        fields = _ids("fields", fields, required=True)
        start, end = _period(v_from, v_to)
        return officer_id, name, agency_id, credential_no, fields, start, end, _date_ms("revoked", revoked) if revoked else None

    def clashes(self, con: sqlite3.Connection, replace: bool) -> list[tuple[int, str]]:
        errors = super().clashes(con, replace)
        taken = con.execute(
            "SELECT s.line, s.credential_no, o.officer_id FROM temp.staging s JOIN main.officers o ON o.credential_no = s.credential_no"
            " WHERE o.officer_id != s.officer_id ORDER BY s.line"
        ).fetchall()
        errors += [(line, f"credential_no {c!r} already belongs to officer {o!r} in the database") for line, c, o in taken]
        return sorted(errors)


class _NoDisturb(_Register):
    table, noun = "no_disturb", "no-disturb entry"
    required, optional = ("credit_code", "basis", "valid_from", "added_by"), ("valid_to",)
    staged = ("credit_code", "basis", "valid_from_ms", "valid_to_ms", "added_by")
    unique = (("credit_code", "valid_from_ms"),)
    _OPEN = "removed_ms IS NULL AND credit_code IN (SELECT credit_code FROM temp.staging)"

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        code, basis, v_from, added_by, v_to = v
        code = _code("credit_code", code)
        basis = _text("basis", basis)
        start, end = _period(v_from, v_to, open_ended=True)
        return code, basis, start, end, _text("added_by", added_by, limit=MAX_ID)

    def clashes(self, con: sqlite3.Connection, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = con.execute(
            "SELECT s.line, s.credit_code, n.id FROM temp.staging s JOIN main.no_disturb n"
            " ON n.credit_code = s.credit_code AND n.valid_from_ms = s.valid_from_ms AND n.removed_ms IS NULL ORDER BY s.line"
        ).fetchall()
        return [(line, f"credit_code {c!r} already has an open no-disturb entry from this valid_from (id {i}); --replace closes it") for line, c, i in rows]

    def would_update(self, con: sqlite3.Connection) -> int:
        return int(con.execute(f"SELECT count(*) FROM main.no_disturb WHERE {self._OPEN}").fetchone()[0])

    def write(self, con: sqlite3.Connection, replace: bool, now_ms: int) -> int:
        closed = con.execute(f"UPDATE main.no_disturb SET removed_ms = ? WHERE {self._OPEN}", (now_ms,)).rowcount if replace else 0
        con.execute(
            "INSERT INTO main.no_disturb(credit_code, basis, valid_from_ms, valid_to_ms, added_by, added_ms)"
            " SELECT credit_code, basis, valid_from_ms, valid_to_ms, added_by, ? FROM temp.staging ORDER BY line",
            (now_ms,),
        )
        return closed


class _Complaints(_Register):
    table, noun = "complaints", "ticket"
    required, optional = ("ticket_no", "credit_code", "received"), ("field", "summary")
    staged = ("ticket_no", "credit_code", "received_ms", "field", "summary")
    unique = (("ticket_no",),)
    db_column = {"received": "received_ms"}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        ticket_no, code, received, field, summary = v
        if len(field) > MAX_ID:
            raise _RowError(f"field has {len(field)} characters, at most {MAX_ID} are allowed")
        return _ident("ticket_no", ticket_no), _code("credit_code", code), _instant_ms("received", received), field or None, summary


class _Plans(_Register):
    table, noun = "plans", "plan"
    required, optional = ("plan_id", "agency_id", "field", "title", "valid_from", "valid_to", "credit_code"), ("kind",)
    staged = ("plan_id", "agency_id", "field", "title", "valid_from_ms", "valid_to_ms", "credit_code", "kind")
    unique = (("plan_id", "credit_code"),)
    _ATTRS = ("agency_id", "field", "title", "valid_from", "valid_to", "kind")

    def __init__(self, present: Sequence[str]) -> None:
        super().__init__(present)
        self.first: dict[str, tuple[int, tuple[str, ...]]] = {}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        plan_id, agency_id, field, title, v_from, v_to, code, kind = v
        plan_id = _ident("plan_id", plan_id)
        kind = _choice("kind", kind, PLAN_KINDS, "random_draw")
        rec = (plan_id, _ident("agency_id", agency_id), _ident("field", field), _text("title", title, limit=MAX_NAME), *_period(v_from, v_to), _code("credit_code", code), kind)
        attrs = (agency_id, field, title, v_from, v_to, kind)
        seen = self.first.setdefault(plan_id, (self.line, attrs))
        if seen[1] != attrs:
            col, here, there = next((c, a, b) for c, a, b in zip(self._ATTRS, attrs, seen[1], strict=True) if a != b)
            raise _RowError(f"plan {plan_id!r} has {col} {here!r} here but {there!r} on line {seen[0]}: a plan's rows must agree")
        return rec

    def clashes(self, con: sqlite3.Connection, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = con.execute("SELECT min(s.line), s.plan_id FROM temp.staging s JOIN main.plans p ON p.plan_id = s.plan_id GROUP BY s.plan_id ORDER BY 1").fetchall()
        return [(line, f"plan {p!r} already exists in the database (--replace updates it and replaces its targets)") for line, p in rows]

    def would_update(self, con: sqlite3.Connection) -> int:
        return int(con.execute("SELECT count(*) FROM main.plans WHERE plan_id IN (SELECT plan_id FROM temp.staging)").fetchone()[0])

    def write(self, con: sqlite3.Connection, replace: bool, now_ms: int) -> int:
        updated = self.would_update(con)
        sql = (
            "INSERT INTO main.plans(plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, created_ms)"
            " SELECT plan_id, agency_id, field, kind, title, valid_from_ms, valid_to_ms, ? FROM temp.staging"
            " WHERE line IN (SELECT min(line) FROM temp.staging GROUP BY plan_id) ORDER BY line"
        )
        if replace:
            con.execute("DELETE FROM main.plan_targets WHERE plan_id IN (SELECT plan_id FROM temp.staging)")
            sql += (
                " ON CONFLICT(plan_id) DO UPDATE SET agency_id = excluded.agency_id, field = excluded.field, kind = excluded.kind,"
                " title = excluded.title, valid_from_ms = excluded.valid_from_ms, valid_to_ms = excluded.valid_to_ms"
            )
        con.execute(sql, (now_ms,))
        con.execute("INSERT INTO main.plan_targets(plan_id, credit_code) SELECT plan_id, credit_code FROM temp.staging ORDER BY plan_id, credit_code")
        return updated


class _ExceptionBases(_Register):
    """Superior assignments or major-risk notices: one row per enterprise a document names."""

    table = "exception_bases"
    kind = ""
    required, optional = ("reference", "credit_code", "issued_by", "valid_from", "valid_to"), ("agency_id", "field", "summary")
    staged = ("reference", "credit_code", "issued_by", "valid_from_ms", "valid_to_ms", "agency_id", "field", "summary")
    unique = (("reference", "credit_code"),)
    _JOIN = "JOIN main.exception_bases b ON b.kind = ? AND b.reference = s.reference AND b.credit_code = s.credit_code"

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        reference, code, issued_by, v_from, v_to, agency_id, field, summary = v
        start, end = _period(v_from, v_to)
        if end - start > MAX_BASIS_DAYS * DAY_MS:
            raise _RowError(f"valid_from to valid_to spans more than {MAX_BASIS_DAYS} days: register it again to extend it")
        return (
            _text("reference", reference, limit=MAX_NAME),
            _code("credit_code", code),
            _text("issued_by", issued_by, limit=MAX_NAME),
            start,
            end,
            _ident("agency_id", agency_id) if agency_id else None,
            _ident("field", field) if field else None,
            summary,
        )

    def clashes(self, con: sqlite3.Connection, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = con.execute(f"SELECT s.line, s.reference, s.credit_code FROM temp.staging s {self._JOIN} ORDER BY s.line", (self.kind,)).fetchall()
        return [(line, f"{self.noun} {r!r} is already registered for {c} (--replace updates it)") for line, r, c in rows]

    def would_update(self, con: sqlite3.Connection) -> int:
        return int(con.execute(f"SELECT count(*) FROM temp.staging s {self._JOIN}", (self.kind,)).fetchone()[0])

    def write(self, con: sqlite3.Connection, replace: bool, now_ms: int) -> int:
        updated = self.would_update(con) if replace else 0
        cols = ", ".join(self.staged)
        sql = (
            f"INSERT INTO main.exception_bases(kind, {cols}, created_by, created_ms) SELECT ?, {cols}, 'import', ? FROM temp.staging WHERE true ORDER BY line"
        )
        if replace:
            sets = ", ".join(f"{c} = excluded.{c}" for c in self.staged[2:])
            sql += f" ON CONFLICT(kind, reference, credit_code) DO UPDATE SET {sets}, withdrawn_ms = NULL, withdrawn_by = NULL"
        con.execute(sql, (self.kind, now_ms))
        return updated


class _Assignments(_ExceptionBases):
    kind, noun = "superior_assignment", "assignment"


class _RiskNotices(_ExceptionBases):
    kind, noun = "major_risk", "risk notice"


_REGISTERS: dict[str, type[_Register]] = {
    "fields": _Fields,
    "agencies": _Agencies,
    "enterprises": _Enterprises,
    "officers": _Officers,
    "no-disturb": _NoDisturb,
    "complaints": _Complaints,
    "plans": _Plans,
    "assignments": _Assignments,
    "risk-notices": _RiskNotices,
}


# ------------------------------------------------------------------------------------------ reading


class _Lines:
    """The physical lines of a binary or text stream, as text without a leading BOM; counts lines and bytes read and
    remembers the lines that are not UTF-8."""

    def __init__(self, stream: IO[bytes] | IO[str]) -> None:
        self.stream = stream
        self.number = 0
        self.consumed = 0
        self.bad: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[str]:
        for raw in self.stream:
            self.number += 1
            self.consumed += len(raw)
            if isinstance(raw, bytes):
                if self.number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    self.bad.append((self.number, f"not UTF-8: byte {raw[e.start]:#04x} at byte {e.start + 1} of the line (save the file as CSV UTF-8)"))
                    line = raw.decode("utf-8", "replace")
            else:
                line = raw[1:] if self.number == 1 and raw.startswith("\ufeff") else raw
            yield line


def _header_errors(reg: type[_Register], names: list[str]) -> str | None:
    known = reg.required + reg.optional
    problems = []
    if dup := sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"column(s) named twice: {', '.join(dup)}")
    if unknown := [n or "(empty)" for n in names if n not in known]:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    if missing := [n for n in reg.required if n not in names]:
        problems.append(f"missing column(s): {', '.join(missing)}")
    return f"bad header: {'; '.join(problems)}. {_expected(reg)}" if problems else None


def _expected(reg: type[_Register]) -> str:
    return f"Expected columns: {', '.join(reg.required)}" + (f", and optionally {', '.join(reg.optional)}" if reg.optional else "")


def _open(source: str | Path | IO[bytes] | IO[str]) -> tuple[IO[bytes] | IO[str], str, int | None, bool]:
    """(stream, name for messages, size in bytes if known, whether we opened it)."""
    if isinstance(source, (str, Path)):
        f = open(source, "rb")  # noqa: SIM115 - closed by import_csv
        return f, str(source), Path(source).stat().st_size if Path(source).is_file() else None, True
    return source, str(getattr(source, "name", "<stream>")), None, False


def _connect(db_path: str | Path, dry_run: bool) -> sqlite3.Connection:
    """The database to import into; in a dry run, a read-only one (or an empty in-memory schema if there is none yet)."""
    if not dry_run:
        dbmod.migrate(db_path)
        return dbmod.connect(db_path)
    if Path(db_path).is_file():
        con = dbmod.connect(db_path, readonly=True)
        if con.execute("PRAGMA user_version").fetchone()[0] >= len(dbmod.MIGRATIONS):
            return con
        con.close()
    con = sqlite3.connect(":memory:", isolation_level=None)
    for script in dbmod.MIGRATIONS:
        for statement in (s.strip() for s in script.split(";")):
            if statement:
                con.execute(statement)
    return con


def import_csv(
    db_path: str | Path,
    kind: str,
    path_or_stream: str | Path | IO[bytes] | IO[str],
    *,
    replace: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Check every row of a CSV file and import them all in one transaction, or none if any row is bad."""
    if kind not in _REGISTERS:
        raise ValueError(f"unknown register {kind!r}; expected one of: {', '.join(KINDS)}")
    reg_type = _REGISTERS[kind]
    stream, name, size, opened = _open(path_or_stream)
    try:
        con = _connect(db_path, dry_run)
        try:
            return _run(con, reg_type, kind, stream, name, size, replace=replace, dry_run=dry_run, progress=progress)
        finally:
            con.close()
    finally:
        if opened:
            stream.close()


def _run(
    con: sqlite3.Connection, reg_type: type[_Register], kind: str, stream: IO[bytes] | IO[str], name: str, size: int | None, *, replace: bool, dry_run: bool, progress: bool
) -> ImportResult:
    def rejected(errors: list[tuple[int, str]]) -> ImportResult:
        errors.sort(key=operator.itemgetter(0))
        return ImportResult(kind=kind, source=name, rows=0, updated=0, errors=errors[:MAX_KEPT_ERRORS], error_count=len(errors), dry_run=dry_run)

    lines = _Lines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        return rejected([(1, f"CSV syntax error in the header: {e}")])
    if lines.bad and lines.bad[0][0] == 1:
        return rejected([lines.bad[0]])
    if header is None:
        return rejected([(1, f"empty file: a header row is required. {_expected(reg_type)}")])
    names = [h.strip().lower() for h in header]
    if problem := _header_errors(reg_type, names):
        return rejected([(1, problem)])
    reg = reg_type(names)
    width = len(names)
    # Columns in parse() order; a column left out of the header reads the empty cell appended to every row.
    pick = operator.itemgetter(*(names.index(c) if c in names else width for c in reg.required + reg.optional))

    con.execute(f"CREATE TEMP TABLE staging(line INTEGER NOT NULL, {', '.join(reg.staged)})")
    stage_sql = f"INSERT INTO temp.staging VALUES ({', '.join('?' * (len(reg.staged) + 1))})"
    errors: list[tuple[int, str]] = []
    batch: list[tuple[Any, ...]] = []
    staged = 0
    bad_seen = 0
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"import {kind}", file=sys.stderr, disable=None if progress else True, leave=False)
    try:
        end = lines.number  # the header's last line
        while True:
            start = end + 1
            try:
                row = next(reader, None)
            except csv.Error as e:
                errors.append((start, f"CSV syntax error: {e}; the rest of the file was not read"))
                break
            end = lines.number
            if row is None:
                break
            if len(lines.bad) > bad_seen:
                bad_seen = len(lines.bad)
                errors.append(lines.bad[-1])
                continue
            if not any(row):
                continue
            if len(row) != width:
                if len(row) < width or any(row[width:]):
                    errors.append((start, f"{len(row)} cells but the header has {width} columns"))
                    continue
                del row[width:]
            row.append("")
            reg.line = start
            try:
                rec = reg.parse([c.strip() for c in pick(row)])
            except _RowError as e:
                errors.append((start, str(e)))
                continue
            batch.append((start, *rec))
            if len(batch) >= BATCH_ROWS:
                con.executemany(stage_sql, batch)
                staged += len(batch)
                batch.clear()
                bar.update(lines.consumed - bar.n)
        con.executemany(stage_sql, batch)
        staged += len(batch)
        bar.update(lines.consumed - bar.n)
        bar.set_description(f"import {kind}: checking")
        errors += _duplicates(con, reg)
        # Checked before the write lock is taken, so that a running server's writers do not wait for it; a clashing
        # row added in between makes the INSERT fail on its key, and the check then names it.
        errors += reg.clashes(con, replace)
        if errors:
            return rejected(errors)
        if dry_run:
            return ImportResult(kind=kind, source=name, rows=staged, updated=reg.would_update(con) if replace else 0, errors=[], error_count=0, dry_run=True)
        bar.set_description(f"import {kind}: writing")
        con.execute("BEGIN IMMEDIATE")
        locked = time.monotonic()
        try:
            updated = reg.write(con, replace, int(time.time() * 1000))
            con.execute("COMMIT")
        except sqlite3.IntegrityError:
            con.execute("ROLLBACK")
            if clashes := reg.clashes(con, replace):
                return rejected(clashes)
            raise
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return ImportResult(kind=kind, source=name, rows=staged, updated=updated, errors=[], error_count=0, dry_run=False, write_s=time.monotonic() - locked)
    finally:
        bar.close()
        con.execute("DROP TABLE IF EXISTS temp.staging")


def _duplicates(con: sqlite3.Connection, reg: _Register) -> list[tuple[int, str]]:
    """Rows repeating a key of an earlier row of the file."""
    out = []
    for cols in reg.unique:
        c = ", ".join(cols)
        rows = con.execute(
            f"SELECT line, first, {c} FROM (SELECT line, {c}, min(line) OVER (PARTITION BY {c}) AS first FROM temp.staging) WHERE line > first ORDER BY line"
        ).fetchall()
        for line, first, *key in rows:
            # Epoch-ms columns are named by their CSV column, whose text the reader has in front of them.
            what = " with ".join(f"the same {col.removesuffix('_ms')}" if col.endswith("_ms") else f"{col} {k!r}" for col, k in zip(cols, key, strict=True))
            out.append((line, f"duplicate {what}: already on line {first}"))
    return out


# ------------------------------------------------------------------------------------------ CLI


def add_import_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``import KIND FILE`` to the ``fe-server`` subcommands."""
    p = sub.add_parser(
        "import",
        help="import a register (enterprises, officers, plans, ...) from a CSV file",
        description="Check every row of a CSV file and import them all in one transaction, or none if any row is bad.",
        epilog=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=f"the register: {', '.join(KINDS)}")
    p.add_argument("file", metavar="FILE", help="the CSV file; '-' reads standard input")
    p.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"the server's SQLite database (default: {DEFAULT_DB})")
    p.add_argument("--dry-run", action="store_true", help="check the file against the database, write nothing")
    p.add_argument("--replace", action="store_true", help="update rows whose key exists instead of rejecting the file")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (there is none when stderr is not a terminal)")


def run_import(args: argparse.Namespace) -> int:
    """``fe-server import``: 0 when imported (or valid, with --dry-run), 1 when the file was rejected or unreadable."""
    source: str | IO[bytes] = sys.stdin.buffer if args.file == "-" else args.file
    try:
        result = import_csv(args.db, args.kind, source, replace=args.replace, dry_run=args.dry_run, progress=args.progress)
    except OSError as e:
        print(f"fe-server: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    except sqlite3.Error as e:
        print(f"fe-server: database {args.db}: {e}", file=sys.stderr)
        return 1
    name = "<stdin>" if args.file == "-" else args.file
    if not result.ok:
        for line, reason in result.errors[:MAX_PRINTED_ERRORS]:
            print(f"{name}:{line}: {reason}", file=sys.stderr)
        if result.error_count > MAX_PRINTED_ERRORS:
            print(f"{name}: ... and {result.error_count - MAX_PRINTED_ERRORS} more bad rows", file=sys.stderr)
        print(f"{name}: rejected, {result.error_count} bad row(s); nothing imported", file=sys.stderr)
        return 1
    noun = "closed" if args.kind == "no-disturb" else "updated"
    extra = f" ({result.updated} existing {noun})" if args.replace else ""
    if result.dry_run:
        print(f"{name}: {result.rows} {args.kind} rows are valid{extra}; nothing written (dry run)")
    else:
        print(f"{name}: imported {result.rows} {args.kind} rows{extra}")
    return 0
