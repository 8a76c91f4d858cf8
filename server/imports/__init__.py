"""Importing registers from CSV files (``fe-server import``): cells.py parses cells, kinds.py says what each register
takes and checks (its docstring is the file format), reading.py reads a file, run.py checks and writes it in one
transaction (a dry run rolls it back), cli.py is the subcommand. The rows go through server/storage/registers.py."""

from __future__ import annotations

from server.imports.cli import DEFAULT_DB, MAX_PRINTED_ERRORS, add_import_parser, run_import
from server.imports.kinds import KINDS
from server.imports.run import MAX_KEPT_ERRORS, ImportResult, import_csv

__all__ = ["DEFAULT_DB", "KINDS", "MAX_KEPT_ERRORS", "MAX_PRINTED_ERRORS", "ImportResult", "add_import_parser", "import_csv", "run_import"]
