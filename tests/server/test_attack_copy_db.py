"""Hostile-operator attacks on ``fe-server copy-db`` (issue 12): every refusal must leave everything as it was, the
target database and the key folder alike. A test marked xfail(strict=True) states the correct behaviour of a bug
still open."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from server import db as dbmod
from server.ingest.batch import store_batch
from server.ingest.store import DeviceKeys
from server.storage import copy as rows
from server.storage.engine import close_storage
from tests.storage.test_copy import EVENTS, _incoming, _target_tables, copy_db, fill, source, target  # noqa: F401 - fixtures


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_tampered_source_leaves_the_key_folder_untouched(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = dbmod.connect(source)
    con.execute("UPDATE events SET device_time_ms = device_time_ms + 1 WHERE seq = 3")
    con.close()
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 1
    assert "does not verify" in capsys.readouterr().err
    assert sum(_target_tables(target).values()) == 0
    assert not key_dir.exists() or not any(key_dir.iterdir()), sorted(str(p) for p in key_dir.rglob("*"))


def test_a_source_written_during_the_copy_leaves_the_key_folder_untouched(source: Path, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = rows.copy_table

    def racing(src: Any, con: Any, table: str, row_fn: Any = None) -> int:
        if table == "events":
            assert store_batch(str(source), [_incoming(EVENTS + 1)], DeviceKeys()).stored == 1
            close_storage(source)
        return real(src, con, table, row_fn)

    monkeypatch.setattr(rows, "copy_table", racing)
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 1
    assert "the source changed during the copy" in capsys.readouterr().err
    assert not key_dir.exists() or not any(key_dir.iterdir())


def test_copying_twice_into_the_same_database_is_refused_the_second_time(source: Path, target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert copy_db(source, target, tmp_path / "keys") == 0
    before = _target_tables(target)
    capsys.readouterr()
    assert copy_db(source, target, tmp_path / "keys") == 1
    assert "is not empty" in capsys.readouterr().err
    assert _target_tables(target) == before


def test_a_key_folder_of_another_server_is_refused_and_kept(source: Path, target: str, tmp_path: Path, postgres_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """District A was moved with --key-dir keys; district B is then copied to another database with the same folder."""
    key_dir = tmp_path / "keys"
    assert copy_db(source, target, key_dir) == 0
    capsys.readouterr()
    other = tmp_path / "district2" / "server.db"
    other.parent.mkdir()
    fill(other)  # the same fixed keys: give B a server key of its own
    from protocol.signing import SigningKey

    SigningKey.generate().save(other.with_name("server.db.server.key.new"))
    other.with_name("server.db.server.key.new").replace(other.with_name("server.db.server.key"))
    kept = {p: _digest(p) for p in key_dir.rglob("*") if p.is_file()}
    name = f"attack_copy_{os.getpid()}"
    url2 = postgres_cluster.create_database(name)
    try:
        assert copy_db(other, url2, key_dir) == 1
        assert "belongs to another server" in capsys.readouterr().err
        assert {p: _digest(p) for p in key_dir.rglob("*") if p.is_file()} == kept
        assert sum(_target_tables(url2).values()) == 0
    finally:
        close_storage(url2)
        postgres_cluster.drop_database(name)


def test_a_source_that_is_no_database_is_a_clear_refusal_and_kept(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "notes.db"
    f.write_text("not a database\n" * 100)
    digest = _digest(f)
    assert copy_db(f, target, tmp_path / "keys") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert _digest(f) == digest
    assert not (tmp_path / "keys").exists()
    import psycopg

    with psycopg.connect(target) as con:  # not even migrated
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone() == (0,)
