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
  hotline      ticket_id*, time* (date, or ISO datetime; CST without an offset), category* (at most 64
               characters; a field id names the agency in charge), text* (at most 4000 characters),
               credit_code, address (at least one of them: a registered enterprise's credit code, or an
               address, matched with the enterprises' addresses)
               12345 hotline tickets (server/supervision/hotline.py flags them). A ticket already imported is
               left as it is, so a file can be imported again; with --replace it is updated.

A key (field_id, agency_id, credit_code, officer_id, credential_no, ticket_no; for plans plan_id with
credit_code; for assignments and risk notices reference with credit_code; ticket_id) may appear once per file; a key already in the database is an error unless --replace is given (except a hotline ticket's)
(a credential_no held by another officer always is). Every bad row is reported as FILE:LINE: reason (the
header is line 1, a row's line is the one it starts on), and then nothing is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.imports.cells import DAY_MS, MAX_ID, MAX_NAME, RowError, choice, code, date_ms, ident, ids, instant_ms, period, text
from server.storage import hotline, registers
from server.storage.engine import Tx

KINDS: tuple[str, ...] = ("fields", "agencies", "enterprises", "officers", "no-disturb", "complaints", "plans", "assignments", "risk-notices", "hotline")
RISKS = ("low", "medium", "high")
CREDITS = ("A", "B", "C", "D")
PLAN_KINDS = ("random_draw", "special")
MAX_TICKET_TEXT = 4000  # a hotline ticket's text
MAX_BASIS_DAYS = 366  # an assignment or notice must end; the same bound as the API (server/rules/exception_bases.py)


class Clashed(Exception):
    """Rows were left out of the write because their key was stored meanwhile (by another writer, after the check)."""


class Register:
    """A register keyed by its first staged column; subclasses parse rows and may check and write differently.

    ``clashes``, ``would_update`` and ``write`` run inside the import's transaction, over its staging table."""

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

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        """Staged rows that clash with the database."""
        if replace:
            return []
        rows = registers.stored_keys(tx, self.table, self.key)
        return [(line, f"{self.noun} {key!r} already exists in the database (--replace updates it)") for line, key in rows]

    def would_update(self, tx: Tx) -> int:
        """How many existing rows --replace would update."""
        return registers.count_stored(tx, self.table, self.key)

    def write(self, tx: Tx, replace: bool, now_ms: int, staged: int) -> int:
        """Write the ``staged`` rows (inside the caller's transaction); returns how many existing rows were updated."""
        if not replace:
            if registers.write_staged(tx, self.table, self.staged, update=None) < staged:
                raise Clashed
            return 0
        updated = self.would_update(tx)
        columns = [self.db_column.get(c, c) for c in self.present]
        registers.write_staged(tx, self.table, self.staged, update=[c for c in columns if c != self.key])
        return updated


class Fields(Register):
    table, noun = "fields", "field"
    required, optional = ("field_id", "name"), ("name_en",)
    staged = ("field_id", "name", "name_en")
    unique = (("field_id",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        field_id, name, name_en = v
        return ident("field_id", field_id), text("name", name, limit=MAX_NAME), name_en


class Agencies(Register):
    table, noun = "agencies", "agency"
    required, optional = ("agency_id", "name"), ("name_en", "region", "fields")
    staged = ("agency_id", "name", "name_en", "region", "fields")
    unique = (("agency_id",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        agency_id, name, name_en, region, fields = v
        return ident("agency_id", agency_id), text("name", name, limit=MAX_NAME), name_en, region, ids("fields", fields, required=False)


class Enterprises(Register):
    table, noun = "enterprises", "enterprise"
    required, optional = ("credit_code", "name"), ("address", "region", "risk", "credit")
    staged = ("credit_code", "name", "address", "region", "risk", "credit")
    unique = (("credit_code",),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        credit_code, name, address, region, risk, credit = v
        return (
            code("credit_code", credit_code),
            text("name", name, limit=MAX_NAME),
            address,
            region,
            choice("risk", risk.lower(), RISKS, "medium"),
            choice("credit", credit.upper(), CREDITS, "B"),
        )


class Officers(Register):
    table, noun = "officers", "officer"
    required = ("officer_id", "name", "agency_id", "credential_no", "fields", "valid_from", "valid_to")
    optional = ("revoked",)
    staged = ("officer_id", "name", "agency_id", "credential_no", "fields", "valid_from_ms", "valid_to_ms", "revoked_ms")
    unique = (("officer_id",), ("credential_no",))
    db_column = {"valid_from": "valid_from_ms", "valid_to": "valid_to_ms", "revoked": "revoked_ms"}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        officer_id, name, agency_id, credential_no, fields, v_from, v_to, revoked = v
        officer_id = ident("officer_id", officer_id)
        name = text("name", name, limit=MAX_NAME)
        agency_id = ident("agency_id", agency_id)
        credential_no = ident("credential_no", credential_no)
        fields = ids("fields", fields, required=True)
        start, end = period(v_from, v_to)
        return officer_id, name, agency_id, credential_no, fields, start, end, date_ms("revoked", revoked) if revoked else None

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        errors = super().clashes(tx, replace)
        taken = registers.credentials_held_by_others(tx)
        errors += [(line, f"credential_no {c!r} already belongs to officer {o!r} in the database") for line, c, o in taken]
        return sorted(errors)


class NoDisturb(Register):
    table, noun = "no_disturb", "no-disturb entry"
    required, optional = ("credit_code", "basis", "valid_from", "added_by"), ("valid_to",)
    staged = ("credit_code", "basis", "valid_from_ms", "valid_to_ms", "added_by")
    unique = (("credit_code", "valid_from_ms"),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        credit_code, basis, v_from, added_by, v_to = v
        credit_code = code("credit_code", credit_code)
        basis = text("basis", basis)
        start, end = period(v_from, v_to, open_ended=True)
        return credit_code, basis, start, end, text("added_by", added_by, limit=MAX_ID)

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = registers.open_no_disturb_same_start(tx)
        return [(line, f"credit_code {c!r} already has an open no-disturb entry from this valid_from (id {i}); --replace closes it") for line, c, i in rows]

    def would_update(self, tx: Tx) -> int:
        return registers.count_open_no_disturb(tx)

    def write(self, tx: Tx, replace: bool, now_ms: int, staged: int) -> int:
        # Entries have no key: each row adds one (a concurrent writer cannot make this one clash).
        closed = registers.close_open_no_disturb(tx, now_ms) if replace else 0
        registers.insert_staged_no_disturb(tx, now_ms)
        return closed


class Complaints(Register):
    table, noun = "complaints", "ticket"
    required, optional = ("ticket_no", "credit_code", "received"), ("field", "summary")
    staged = ("ticket_no", "credit_code", "received_ms", "field", "summary")
    unique = (("ticket_no",),)
    db_column = {"received": "received_ms"}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        ticket_no, credit_code, received, field, summary = v
        if len(field) > MAX_ID:
            raise RowError(f"field has {len(field)} characters, at most {MAX_ID} are allowed")
        return ident("ticket_no", ticket_no), code("credit_code", credit_code), instant_ms("received", received), field or None, summary


class Plans(Register):
    table, noun = "plans", "plan"
    required, optional = ("plan_id", "agency_id", "field", "title", "valid_from", "valid_to", "credit_code"), ("kind",)
    staged = ("plan_id", "agency_id", "field", "title", "valid_from_ms", "valid_to_ms", "credit_code", "kind")
    unique = (("plan_id", "credit_code"),)
    _ATTRS = ("agency_id", "field", "title", "valid_from", "valid_to", "kind")

    def __init__(self, present: Sequence[str]) -> None:
        super().__init__(present)
        self.first: dict[str, tuple[int, tuple[str, ...]]] = {}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        plan_id, agency_id, field, title, v_from, v_to, credit_code, kind = v
        plan_id = ident("plan_id", plan_id)
        kind = choice("kind", kind, PLAN_KINDS, "random_draw")
        rec = (plan_id, ident("agency_id", agency_id), ident("field", field), text("title", title, limit=MAX_NAME), *period(v_from, v_to), code("credit_code", credit_code), kind)
        attrs = (agency_id, field, title, v_from, v_to, kind)
        seen = self.first.setdefault(plan_id, (self.line, attrs))
        if seen[1] != attrs:
            col, here, there = next((c, a, b) for c, a, b in zip(self._ATTRS, attrs, seen[1], strict=True) if a != b)
            raise RowError(f"plan {plan_id!r} has {col} {here!r} here but {there!r} on line {seen[0]}: a plan's rows must agree")
        return rec

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = registers.stored_plans(tx)
        return [(line, f"plan {p!r} already exists in the database (--replace updates it and replaces its targets)") for line, p in rows]

    def would_update(self, tx: Tx) -> int:
        return registers.count_stored_plans(tx)

    def write(self, tx: Tx, replace: bool, now_ms: int, staged: int) -> int:
        updated = self.would_update(tx) if replace else 0
        if registers.write_staged_plans(tx, now_ms, replace=replace) < registers.count_staged_plans(tx):
            raise Clashed
        return updated


class ExceptionBases(Register):
    """Superior assignments or major-risk notices: one row per enterprise a document names."""

    table = "exception_bases"
    kind = ""
    required, optional = ("reference", "credit_code", "issued_by", "valid_from", "valid_to"), ("agency_id", "field", "summary")
    staged = ("reference", "credit_code", "issued_by", "valid_from_ms", "valid_to_ms", "agency_id", "field", "summary")
    unique = (("reference", "credit_code"),)

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        reference, credit_code, issued_by, v_from, v_to, agency_id, field, summary = v
        start, end = period(v_from, v_to)
        if end - start > MAX_BASIS_DAYS * DAY_MS:
            raise RowError(f"valid_from to valid_to spans more than {MAX_BASIS_DAYS} days: register it again to extend it")
        return (
            text("reference", reference, limit=MAX_NAME),
            code("credit_code", credit_code),
            text("issued_by", issued_by, limit=MAX_NAME),
            start,
            end,
            ident("agency_id", agency_id) if agency_id else None,
            ident("field", field) if field else None,
            summary,
        )

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        if replace:
            return []
        rows = registers.stored_bases(tx, self.kind)
        return [(line, f"{self.noun} {r!r} is already registered for {c} (--replace updates it)") for line, r, c in rows]

    def would_update(self, tx: Tx) -> int:
        return registers.count_stored_bases(tx, self.kind)

    def write(self, tx: Tx, replace: bool, now_ms: int, staged: int) -> int:
        updated = self.would_update(tx) if replace else 0
        if registers.write_staged_bases(tx, self.kind, now_ms, replace=replace) < staged:
            raise Clashed
        return updated


class Assignments(ExceptionBases):
    kind, noun = "superior_assignment", "assignment"


class RiskNotices(ExceptionBases):
    kind, noun = "major_risk", "risk notice"


class Hotline(Register):
    """12345 hotline tickets, keyed by ticket id; importing a file again adds only the tickets not yet stored."""

    table, noun = "hotline_tickets", "ticket"
    required, optional = ("ticket_id", "time", "category", "text"), ("credit_code", "address")
    staged = hotline.STAGED
    unique = (("ticket_id",),)
    db_column = {"time": "received_ms"}

    def parse(self, v: Sequence[str]) -> tuple[Any, ...]:
        ticket_id, time, category, body, credit_code, address = v
        if not credit_code and not address:
            raise RowError("credit_code and address are both empty: a ticket names an enterprise or an address")
        return (
            ident("ticket_id", ticket_id),
            instant_ms("time", time),
            code("credit_code", credit_code) if credit_code else None,
            text("address", address, limit=MAX_NAME) if address else "",
            ident("category", category),
            text("text", body, limit=MAX_TICKET_TEXT),
        )

    def clashes(self, tx: Tx, replace: bool) -> list[tuple[int, str]]:
        return [(line, f"credit_code {c!r} is not a registered enterprise (import it with the enterprises first)") for line, c in hotline.unknown_codes(tx)]

    def would_update(self, tx: Tx) -> int:
        return hotline.count_stored(tx)

    def write(self, tx: Tx, replace: bool, now_ms: int, staged: int) -> int:
        """Returns the tickets already stored: updated with ``replace``, else kept as they were."""
        stored = hotline.count_stored(tx)
        hotline.write_staged(tx, now_ms, replace=replace)
        return stored


REGISTERS: dict[str, type[Register]] = {
    "fields": Fields,
    "agencies": Agencies,
    "enterprises": Enterprises,
    "officers": Officers,
    "no-disturb": NoDisturb,
    "complaints": Complaints,
    "plans": Plans,
    "assignments": Assignments,
    "risk-notices": RiskNotices,
    "hotline": Hotline,
}
