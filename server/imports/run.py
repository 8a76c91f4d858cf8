"""One import: the file read and checked, then staged, checked against the database and written in one transaction,
all rows or none. A dry run is the same transaction, rolled back: it checks against the real rows on either backend."""

from __future__ import annotations

import operator
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from server import db as dbmod
from server.imports.kinds import KINDS, REGISTERS, Clashed, Register
from server.imports.reading import Parsed, open_source, parse
from server.storage import registers
from server.storage.engine import Backend, Tx, backend_of, close_storage, sqlite_connect, storage_for
from server.storage.revisions import sqlite_file_is_current

#: Bad rows kept in an ImportResult (a file of a million bad rows must not fill the memory).
MAX_KEPT_ERRORS = 10_000
#: Transactions tried when other writers store clashing rows between an import's check and its write.
WRITE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did, or would do in a dry run."""

    kind: str
    source: str
    #: Rows imported (in a dry run: rows that would be); 0 when the file was rejected.
    rows: int
    #: Existing rows updated (--replace); for no-disturb, open entries closed; for hotline tickets without --replace,
    #: those already stored and kept as they were.
    updated: int
    #: (line, reason) of bad rows in line order, the header being line 1; at most MAX_KEPT_ERRORS.
    errors: list[tuple[int, str]]
    error_count: int
    dry_run: bool
    #: Seconds the write transaction was open (the database's write lock on SQLite); 0 when rejected or dry.
    write_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True if the file had no bad row."""
        return self.error_count == 0


class _RolledBack(Exception):
    """Ends the import's transaction without committing it (a dry run, or a rejected file), carrying the answer."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.kind)
        self.result = result


def import_csv(
    db_path: str | Path,
    kind: str,
    path_or_stream: str | Path | IO[bytes] | IO[str],
    *,
    replace: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Check every row of a CSV file and import them all in one transaction, or none if any row is bad.

    ``db_path`` is a SQLite file or a ``postgresql://`` URL."""
    if kind not in REGISTERS:
        raise ValueError(f"unknown register {kind!r}; expected one of: {', '.join(KINDS)}")
    stream, name, size, opened = open_source(path_or_stream)
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"import {kind}", file=sys.stderr, disable=None if progress else True, leave=False)
    try:
        parsed = parse(REGISTERS[kind], stream, bar)
        with parsed.spool:
            if parsed.reg is None:
                return _rejected(kind, name, parsed.errors, dry_run)
            bar.set_description(f"import {kind}: checking")
            with _target(db_path, dry_run) as target:
                return _write(target, parsed, kind, name, replace=replace, dry_run=dry_run)
    finally:
        bar.close()
        if opened:
            stream.close()


def _write(db: str, parsed: Parsed, kind: str, name: str, *, replace: bool, dry_run: bool) -> ImportResult:
    """The transaction, run again when rows were stored by someone else between its check and its write (the next
    check names them)."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            return storage_for(db).write(lambda tx: _check_and_write(tx, parsed, kind, name, replace=replace, dry_run=dry_run))
        except _RolledBack as done:
            return done.result
        except Clashed:
            continue
    raise Clashed(f"{kind}: rows were stored by other writers during each of {WRITE_ATTEMPTS} attempts")


def _check_and_write(tx: Tx, parsed: Parsed, kind: str, name: str, *, replace: bool, dry_run: bool) -> ImportResult:
    """Inside the write transaction: stage the spooled rows, check them, write them (or roll back, by raising)."""
    began = time.monotonic()
    reg = parsed.reg
    assert reg is not None
    registers.create_staging(tx, reg.staged)
    for batch in parsed.batches():
        registers.stage(tx, reg.staged, batch)
    errors = parsed.errors + _duplicates(tx, reg) + reg.clashes(tx, replace)
    if errors:
        raise _RolledBack(_rejected(kind, name, errors, dry_run))
    if dry_run:
        updated = reg.would_update(tx) if replace else 0
        raise _RolledBack(ImportResult(kind=kind, source=name, rows=parsed.rows, updated=updated, errors=[], error_count=0, dry_run=True))
    # Clashed (rows stored meanwhile by another transaction: PostgreSQL's statements each see what is committed when
    # they start) rolls this transaction back, and _write runs it again.
    updated = reg.write(tx, replace, int(time.time() * 1000), parsed.rows)
    registers.drop_staging(tx)
    return ImportResult(kind=kind, source=name, rows=parsed.rows, updated=updated, errors=[], error_count=0, dry_run=False, write_s=time.monotonic() - began)


def _rejected(kind: str, name: str, errors: list[tuple[int, str]], dry_run: bool) -> ImportResult:
    errors = sorted(errors, key=operator.itemgetter(0))
    return ImportResult(kind=kind, source=name, rows=0, updated=0, errors=errors[:MAX_KEPT_ERRORS], error_count=len(errors), dry_run=dry_run)


def _duplicates(tx: Tx, reg: Register) -> list[tuple[int, str]]:
    """Rows repeating a key of an earlier row of the file."""
    out = []
    for cols in reg.unique:
        for line, first, *key in registers.duplicates(tx, cols):
            # Epoch-ms columns are named by their CSV column, whose text the reader has in front of them.
            what = " with ".join(f"the same {col.removesuffix('_ms')}" if col.endswith("_ms") else f"{col} {k!r}" for col, k in zip(cols, key, strict=True))
            out.append((int(line), f"duplicate {what}: already on line {first}"))
    return out


@contextmanager
def _target(db: str | Path, dry_run: bool) -> Iterator[str]:
    """The database to import into: ``db``, migrated first unless this is a dry run. A dry run writes nothing, not even
    a schema: a SQLite file that is missing or of an older schema is checked on a migrated copy (empty if missing)."""
    if not dry_run:
        dbmod.migrate(db)
        yield str(db)
        return
    if backend_of(db) is Backend.POSTGRES or sqlite_file_is_current(db, len(dbmod.MIGRATIONS)):
        yield str(db)
        return
    with tempfile.TemporaryDirectory(prefix="fe-import-dry-run-") as tmp:
        copy = str(Path(tmp) / "copy.db")
        if Path(db).is_file():
            _copy_sqlite(Path(db), copy)
        dbmod.migrate(copy)
        try:
            yield copy
        finally:
            close_storage(copy)


def _copy_sqlite(source: Path, dest: str) -> None:
    """A consistent copy of a SQLite database (its WAL included), by SQLite's backup API."""
    src, out = sqlite_connect(source, readonly=True), sqlite3.connect(dest)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()
