"""Reading an import's CSV file: physical lines (UTF-8, a BOM accepted), the header, and each row parsed and checked
into a spool file, outside any transaction (a big file must not hold the database's write lock while it is read)."""

from __future__ import annotations

import codecs
import csv
import marshal
import operator
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from server.imports.cells import RowError
from server.imports.kinds import Register

#: Rows per batch, in the spool and when staged into the database.
BATCH_ROWS = 5_000
_FRAME = struct.Struct("<Q")  # a spooled batch's length in bytes


class Lines:
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


def header_errors(reg: type[Register], names: list[str]) -> str | None:
    known = reg.required + reg.optional
    problems = []
    if dup := sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"column(s) named twice: {', '.join(dup)}")
    if unknown := [n or "(empty)" for n in names if n not in known]:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    if missing := [n for n in reg.required if n not in names]:
        problems.append(f"missing column(s): {', '.join(missing)}")
    return f"bad header: {'; '.join(problems)}. {expected(reg)}" if problems else None


def expected(reg: type[Register]) -> str:
    return f"Expected columns: {', '.join(reg.required)}" + (f", and optionally {', '.join(reg.optional)}" if reg.optional else "")


def open_source(source: str | Path | IO[bytes] | IO[str]) -> tuple[IO[bytes] | IO[str], str, int | None, bool]:
    """(stream, name for messages, size in bytes if known, whether we opened it)."""
    if isinstance(source, (str, Path)):
        f = open(source, "rb")  # noqa: SIM115 - closed by import_csv
        return f, str(source), Path(source).stat().st_size if Path(source).is_file() else None, True
    return source, str(getattr(source, "name", "<stream>")), None, False


@dataclass
class Parsed:
    """A file read: its register (None when the header was refused), the good rows spooled, the bad rows' errors."""

    reg: Register | None
    errors: list[tuple[int, str]]
    spool: IO[bytes] = field(default_factory=tempfile.TemporaryFile)
    rows: int = 0

    def add(self, batch: list[tuple[Any, ...]]) -> None:
        if batch:
            # Length-prefixed frames: marshal.load() on a file reads far past the object it returns, then seeks back.
            frame = marshal.dumps(batch)
            self.spool.write(_FRAME.pack(len(frame)) + frame)
            self.rows += len(batch)
            batch.clear()

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        """The spooled rows (line, *values), batch by batch, from the start (again on each call)."""
        self.spool.seek(0)
        while head := self.spool.read(_FRAME.size):
            yield marshal.loads(self.spool.read(_FRAME.unpack(head)[0]))


def parse(reg_type: type[Register], stream: IO[bytes] | IO[str], bar: tqdm[Any]) -> Parsed:
    """Read and check every row of the file; a bad header refuses the file at once."""
    lines = Lines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        return Parsed(None, [(1, f"CSV syntax error in the header: {e}")])
    if lines.bad and lines.bad[0][0] == 1:
        return Parsed(None, [lines.bad[0]])
    if header is None:
        return Parsed(None, [(1, f"empty file: a header row is required. {expected(reg_type)}")])
    names = [h.strip().lower() for h in header]
    if problem := header_errors(reg_type, names):
        return Parsed(None, [(1, problem)])
    reg = reg_type(names)
    out = Parsed(reg, [])
    width = len(names)
    # Columns in parse() order; a column left out of the header reads the empty cell appended to every row.
    pick = operator.itemgetter(*(names.index(c) if c in names else width for c in reg.required + reg.optional))
    batch: list[tuple[Any, ...]] = []
    bad_seen = 0
    end = lines.number  # the header's last line
    while True:
        start = end + 1
        try:
            row = next(reader, None)
        except csv.Error as e:
            out.errors.append((start, f"CSV syntax error: {e}; the rest of the file was not read"))
            break
        end = lines.number
        if row is None:
            break
        if len(lines.bad) > bad_seen:
            bad_seen = len(lines.bad)
            out.errors.append(lines.bad[-1])
            continue
        if not any(row):
            continue
        if len(row) != width:
            if len(row) < width or any(row[width:]):
                out.errors.append((start, f"{len(row)} cells but the header has {width} columns"))
                continue
            del row[width:]
        if any("\x00" in c for c in row):  # PostgreSQL's text cannot hold it, and no register means it
            out.errors.append((start, "a cell holds a NUL character (byte 0x00): is this a CSV text file?"))
            continue
        row.append("")
        reg.line = start
        try:
            rec = reg.parse([c.strip() for c in pick(row)])
        except RowError as e:
            out.errors.append((start, str(e)))
            continue
        batch.append((start, *rec))
        if len(batch) >= BATCH_ROWS:
            out.add(batch)
            bar.update(lines.consumed - bar.n)
    out.add(batch)
    bar.update(lines.consumed - bar.n)
    return out
