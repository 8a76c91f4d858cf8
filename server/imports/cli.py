"""``fe-server import KIND FILE``: the subcommand's arguments and its report on the terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import IO

from server.imports import kinds
from server.imports.kinds import KINDS, Clashed
from server.imports.run import import_csv
from server.storage.engine import redact
from server.storage.failures import DRIVER_ERRORS

DEFAULT_DB = "fe-server.db"
#: Bad rows printed by the CLI; the rest are only counted.
MAX_PRINTED_ERRORS = 50


def add_import_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], add_db: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Add ``import KIND FILE`` to the ``fe-server`` subcommands; ``add_db`` adds the CLI's common ``--db`` option
    (without it, a plain one: a SQLite path or a postgresql:// URL)."""
    p = sub.add_parser(
        "import",
        help="import a register (enterprises, officers, plans, ...) from a CSV file",
        description="Check every row of a CSV file and import them all in one transaction, or none if any row is bad.",
        epilog=(kinds.__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=f"the register: {', '.join(KINDS)}")
    p.add_argument("file", metavar="FILE", help="the CSV file; '-' reads standard input")
    if add_db is not None:
        add_db(p)
    else:
        p.add_argument("--db", default=DEFAULT_DB, help=f"the server's database: a SQLite file or a postgresql:// URL (default: {DEFAULT_DB})")
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
    except (Clashed, *DRIVER_ERRORS) as e:
        print(f"fe-server: database {redact(str(args.db))}: {e}", file=sys.stderr)
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
    if args.kind == "hotline" and not args.replace and result.updated:
        extra = f" ({result.updated} already imported, kept as they were)"
    if result.dry_run:
        print(f"{name}: {result.rows} {args.kind} rows are valid{extra}; nothing written (dry run)")
    else:
        print(f"{name}: imported {result.rows} {args.kind} rows{extra}")
    return 0
