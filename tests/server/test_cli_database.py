"""``--db`` takes a SQLite path or a PostgreSQL URL for every subcommand; with PostgreSQL the key files need --key-dir."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from server.cli import main
from server.cli_parser import database


def test_a_path_is_made_absolute_and_a_url_kept() -> None:
    assert database("x.db") == str(Path("x.db").resolve())
    assert database("postgresql://fe@db:5432/fe") == "postgresql://fe@db:5432/fe"
    with pytest.raises(argparse.ArgumentTypeError, match="postgresql:// URL"):
        database("mysql://fe@db/fe")


def test_postgresql_needs_a_key_folder_and_then_works(postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["key", "--db", postgres_url]) == 1
    assert "--key-dir" in capsys.readouterr().err
    assert main(["key", "--db", postgres_url, "--key-dir", str(tmp_path)]) == 0
    public = capsys.readouterr().out.strip()
    assert len(public) == 64 and (tmp_path / "server.server.key").exists()
    assert main(["devices", "list", "--db", postgres_url, "--key-dir", str(tmp_path)]) == 0  # migrated, empty
    assert capsys.readouterr().out == ""
    assert main(["key", "--db", postgres_url, "--key-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == public  # the same key, not a new one
