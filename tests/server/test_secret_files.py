"""Key files made on first use by several processes at once (server/secret_files.py): one key for all, no errors."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from protocol.signing import KeyFormatError
from server.console import badges
from server.evidence.keys import load_or_create_server_key
from server.secret_files import create_secret_file, read_or_create_secret

PROCESSES = 8


def _start_at_once(base: str, barrier, out) -> None:  # type: ignore[no-untyped-def]
    try:
        barrier.wait(10)
        door = badges.load_key(Path(base)).hex()
        server = load_or_create_server_key(Path(base + ".server.key")).public_hex
        out.put(("ok", door, server))
    except BaseException as e:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(e), ""))


@pytest.mark.parametrize("round_", range(3))
def test_processes_starting_at_once_end_with_one_key_each(tmp_path: Path, round_: int) -> None:
    ctx = multiprocessing.get_context("fork")
    base = tmp_path / "fresh" / "server.db"  # not even the folder exists
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [ctx.Process(target=_start_at_once, args=(str(base), barrier, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert [r for r in results if r[0] != "ok"] == []
    assert len({r[1] for r in results}) == 1 and len({r[2] for r in results}) == 1
    assert results[0][1] == badges.load_key(base).hex()
    assert results[0][2] == load_or_create_server_key(base.with_name("server.db.server.key")).public_hex
    for key in (badges.key_path(base), base.with_name("server.db.server.key")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in base.parent.iterdir()) == ["server.db.badge.key", "server.db.server.key"]  # no temp file left


def test_a_leftover_temporary_file_does_not_matter(tmp_path: Path) -> None:
    base = tmp_path / "server.db"
    for name in (".server.db.badge.key.123.0000.tmp", ".server.db.server.key.123.0000.tmp"):  # a process died midway
        (tmp_path / name).write_text("")
    assert len(badges.load_key(base)) == 32
    key = load_or_create_server_key(tmp_path / "server.db.server.key")
    assert load_or_create_server_key(tmp_path / "server.db.server.key").public_hex == key.public_hex


@pytest.mark.parametrize("content", ["", "\n", "not hex at all\n", "abcd\n", "é\n"])
def test_an_empty_or_damaged_key_file_is_named(tmp_path: Path, content: str) -> None:
    base = tmp_path / "server.db"
    badges.key_path(base).write_text(content)
    with pytest.raises(RuntimeError, match=r"server\.db\.badge\.key: .*door-code key") as e:
        badges.load_key(base)
    assert "fromhex" not in str(e.value)
    server = tmp_path / "server.db.server.key"
    server.write_text(content)
    with pytest.raises(KeyFormatError, match=r"server\.db\.server\.key: "):
        load_or_create_server_key(server)
    assert server.read_text() == content  # a damaged key is never replaced by a new one


def test_the_helper_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a" / "secret"
    assert create_secret_file(path, "first\n") is True
    assert create_secret_file(path, "second\n") is False
    assert read_or_create_secret(path, lambda: "third\n") == "first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and os.listdir(path.parent) == ["secret"]
