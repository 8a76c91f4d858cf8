"""``fe-server copy-db`` as an operator runs it, in processes of its own: a district's SQLite database moved to
PostgreSQL, then ``fe-server verify`` and ``fe-server key`` on the URL find the copied records and the same key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.storage.engine import close_storage
from tests.storage.test_copy import EVENTS, SERVER_KEY, fill
from tests.system.harness import ROOT, _env

pytestmark = pytest.mark.system


def fe_server(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)


#: Until server/cli.py dispatches ``copy-db``, the same parser and runner in a process of their own.
_COPY_ALONE = (
    "import argparse, sys; from server.copy_cli import add_copy_parser, run_copy; p = argparse.ArgumentParser(); "
    "add_copy_parser(p.add_subparsers(dest='command')); sys.exit(run_copy(p.parse_args(sys.argv[1:])))"
)


def copy_db(*argv: str) -> subprocess.CompletedProcess[str]:
    if "copy-db" in fe_server("--help").stdout:
        return fe_server("copy-db", *argv)
    return subprocess.run([sys.executable, "-c", _COPY_ALONE, "copy-db", *argv], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)


def test_a_district_moves_to_postgresql(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "district" / "server.db"
    source.parent.mkdir()
    fill(source)
    close_storage(source)
    key_dir = tmp_path / "keys"
    out = copy_db("--db", str(source), "--to", postgres_url, "--key-dir", str(key_dir))
    assert out.returncode == 0, out.stderr
    assert "verified on the target as on the source" in out.stdout
    again = copy_db("--db", str(source), "--to", postgres_url, "--key-dir", str(key_dir))
    assert again.returncode == 1 and "is not empty" in again.stderr  # a second copy never merges into the first
    verified = fe_server("verify", "--db", postgres_url, "--key-dir", str(key_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"{EVENTS} records, log of {EVENTS}")
    key = fe_server("key", "--db", postgres_url, "--key-dir", str(key_dir))
    assert key.returncode == 0 and key.stdout.strip() == SERVER_KEY.public_hex  # the copied key, not a new one
