"""``fe-server copy-db --db SOURCE.db --to postgresql://... --key-dir DIR``: the subcommand's arguments and its report
on the terminal (the copy itself: server/copy_db.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from server.storage.engine import POSTGRES_SCHEMES, Backend, backend_of, redact

DEFAULT_DB = "fe-server.db"


def postgres_url(text: str) -> str:
    """A ``--to`` value: a ``postgresql://`` URL."""
    if not text.startswith(POSTGRES_SCHEMES):
        raise argparse.ArgumentTypeError(f"{redact(text)!r}: give a postgresql://user@host:port/name URL")
    return text


def add_copy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], add_db: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Add ``copy-db`` to the ``fe-server`` subcommands; ``add_db`` adds the CLI's common ``--db``, ``--key-dir`` and
    ``--key`` options (without it, plain ones)."""
    p = sub.add_parser(
        "copy-db",
        help="copy the whole SQLite database and its key files into an empty PostgreSQL database",
        description="Move a server from its SQLite file to PostgreSQL: every table is copied in one PostgreSQL transaction, "
        "which commits only if every table's row count matches and the evidence log verifies on the target with the "
        "same root; the server's key files and broker folder are copied into --key-dir. The target must be empty. "
        "Stop the server first (rows it writes during the copy would not be copied). Exit status 0 when copied, 1 otherwise.",
    )
    if add_db is not None:
        add_db(p)
    else:
        p.add_argument("--db", default=str(Path(DEFAULT_DB).resolve()), help=f"the SQLite database to copy (default: {DEFAULT_DB})")
        p.add_argument("--key-dir", type=Path, help="folder for the key files of the server on --to")
        p.add_argument("--key", type=Path, help="the server's Ed25519 key file (default: <db>.server.key)")
    p.add_argument("--to", required=True, type=postgres_url, metavar="URL", help="the empty PostgreSQL database: postgresql://user@host:port/name")


def run_copy(args: argparse.Namespace) -> int:
    """``fe-server copy-db``: 0 when copied and checked, 1 when refused, failed or rolled back (the target then holds
    no row of it)."""
    from server.copy_db import CopyRefused, copy_database  # SQLAlchemy, sqlite-utils, psycopg: loaded for this command only
    from server.storage.copy import DATABASE_ERRORS, SchemaMismatch

    if backend_of(args.db) is not Backend.SQLITE:
        print(f"fe-server: --db {redact(str(args.db))}: copy-db reads a SQLite file", file=sys.stderr)
        return 1
    if args.key_dir is None:
        print("fe-server: give --key-dir: the folder where the server on the PostgreSQL database keeps its key files", file=sys.stderr)
        return 1
    key_dir = Path(args.key_dir).resolve()
    try:
        report = copy_database(Path(args.db), args.to, key_dir, Path(args.key).resolve() if args.key else None)
    except (CopyRefused, SchemaMismatch) as e:
        print(f"fe-server: copy-db: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"fe-server: copy-db: {e}; nothing copied", file=sys.stderr)
        return 1
    except DATABASE_ERRORS as e:
        print(f"fe-server: copy-db: database error, nothing copied: {e}", file=sys.stderr)
        return 1
    for table, n in report.tables.items():
        if n:
            print(f"  {table}: {n}")
    ev = report.evidence
    print(f"copied {len(report.tables)} tables, {report.rows} rows from {args.db} to {redact(args.to)} in {report.seconds} s")
    print(f"evidence log: {ev.events} records, log of {ev.log_size}, root {ev.root}, {ev.tree_heads} tree heads: verified on the target as on the source")
    print(f"key files: {len(report.keys_copied)} copied into {key_dir}" + (f", {len(report.keys_present)} already there" if report.keys_present else ""))
    print(f"start the server with --db {redact(args.to)} --key-dir {key_dir}; device signatures were not rechecked (fe-server verify --signatures does)")
    return 0
