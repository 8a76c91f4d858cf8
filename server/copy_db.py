"""Moving a district's server from its SQLite file to PostgreSQL without losing a record (``fe-server copy-db``).

The rows go in one PostgreSQL transaction (server/storage/copy.py), which commits only after the checks have passed
on what it wrote: every table has as many rows as the source snapshot, and the evidence log verifies on the target
(server/evidence/verify.py) with the same Merkle root, size and tree heads as on the source. Any failure or mismatch rolls it
back, so the target is either an exact copy or as empty as it was. The target must be empty to begin with: a copy
never merges into, or overwrites, records that are evidence. The source is read as one snapshot; a server still
writing to it makes the copy roll back (the row counts are taken again just before the commit): stop it first.

The server's key files move with the data (settings.key_base): ``<db>.server.key``, ``<db>.code-K*.key`` and the
broker folder ``<db>.broker/`` beside the SQLite file become ``<key-dir>/server.server.key``,
``<key-dir>/server.code-K*.key`` and ``<key-dir>/server.broker/``, so the server started on the URL signs with the
same keys and devices keep their broker accounts. A key file already there with other bytes is never overwritten.
"""

from __future__ import annotations

import glob
import os
import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from protocol.signing import SigningKey
from server import db as dbmod
from protocol import merkle
from server.broker.access import PID_FILE, broker_dir_for
from server.settings import ServerSettings
from server.storage import copy as rows
from server.storage import evidence as evstore
from server.storage.engine import Backend, Tx, backend_of, redact
from server.storage.schema import metadata
from server.evidence.verify import verify

#: The table whose rows name the database: APScheduler's pickled jobs carry ``run_job``'s arguments.
JOB_TABLE = "apscheduler_jobs"
#: The broker's configuration names files of its folder by absolute path: rewritten to the new folder.
BROKER_CONF = "mosquitto.conf"


class CopyRefused(Exception):
    """The copy did not happen (or was rolled back); the message says why, for the operator."""


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What the evidence log looks like on one side: it must look the same on both."""

    verifies: bool
    events: int
    log_size: int
    root: str
    tree_heads: int
    problems: int


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``copy_database`` did."""

    tables: dict[str, int]  # rows copied per table, in the order copied
    seconds: float
    evidence: Evidence
    keys_copied: list[str]  # target paths written
    keys_present: list[str]  # target paths already there with the same bytes

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- key files -------------------------------------------------------------------------------------------------------


def _content(source: Path, old_broker: Path, new_broker: Path) -> bytes:
    data = source.read_bytes()
    if source.name == BROKER_CONF and source.parent == old_broker:
        data = data.replace(str(old_broker).encode(), str(new_broker).encode())
    return data


def key_files(source_db: Path, key: Path | None, url: str, key_dir: Path) -> list[tuple[Path, Path]]:
    """(file beside the SQLite database, where the server on ``url`` looks for it), for every key and broker file.
    A running broker's pid file stays behind (the new folder's broker is another one)."""
    settings = ServerSettings(db_path=url, key_dir=key_dir)
    base = settings.key_base
    pairs: list[tuple[Path, Path]] = []
    server_key = key or source_db.with_name(source_db.name + ".server.key")
    if server_key.is_file():
        pairs.append((server_key, settings.server_key_path))
    for code_key in sorted(source_db.parent.glob(glob.escape(source_db.name) + ".code-*.key")):
        pairs.append((code_key, base.with_name(base.name + code_key.name[len(source_db.name):])))
    old_broker, new_broker = broker_dir_for(source_db), broker_dir_for(base)
    if old_broker.is_dir():
        for f in sorted(old_broker.rglob("*")):
            if f.is_file() and f.name != PID_FILE:
                pairs.append((f, new_broker / f.relative_to(old_broker)))
    return pairs


def plan_keys(pairs: list[tuple[Path, Path]], old_broker: Path, new_broker: Path) -> tuple[list[tuple[Path, Path, bytes]], list[Path]]:
    """Which files to write and which are already there; refuses when a target file differs."""
    to_write: list[tuple[Path, Path, bytes]] = []
    present: list[Path] = []
    for src, dst in pairs:
        data = _content(src, old_broker, new_broker)
        if dst.exists():
            if dst.read_bytes() != data:
                raise CopyRefused(f"{dst} exists and differs from {src}: the target's key folder belongs to another server; nothing copied")
            present.append(dst)
        else:
            to_write.append((src, dst, data))
    return to_write, present


def write_keys(to_write: list[tuple[Path, Path, bytes]]) -> None:
    """Write each file with its source's permissions (keys stay 0600), whole or not at all (rename into place)."""
    for src, dst, data in to_write:
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dst.with_name(dst.name + ".copying")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, src.stat().st_mode & 0o777)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)


# --- evidence --------------------------------------------------------------------------------------------------------


def evidence_of(tx: Tx, public_key: str) -> Evidence:
    """The evidence log of one side: verified (without device signatures) and its Merkle root."""
    report = verify(tx, public_key)
    frontier = merkle.Frontier()
    for leaf in evstore.leaf_hashes(tx):
        frontier.append(bytes(leaf))
    return Evidence(
        verifies=report.ok, events=report.events, log_size=frontier.size, root=frontier.root().hex(), tree_heads=len(report.tree_heads),
        problems=len(report.problems),
    )


def _server_public_key(source_db: Path, key: Path | None, source: Tx) -> str:
    path = key or source_db.with_name(source_db.name + ".server.key")
    if path.is_file():
        return SigningKey.load(path).public_hex
    if evstore.tree_heads(source):
        raise CopyRefused(f"no server key at {path}: its signed tree heads cannot be checked; give --key")
    return SigningKey.generate().public_hex  # no head signed yet: any key checks an empty list of heads


# --- scheduled jobs --------------------------------------------------------------------------------------------------


def job_rewriter(url: str, server_key: Path) -> rows.RowFn:
    """A stored APScheduler job's arguments name the SQLite file and its key (a run asked for by hand and not yet
    run would otherwise run on the old file): they name the target and its key instead. Our own rows: trusted."""

    def rewrite(row: dict[str, Any]) -> dict[str, Any]:
        state = pickle.loads(row["job_state"])  # noqa: S301 - written by this server's own job store
        kwargs = state.get("kwargs") or {}
        if isinstance(kwargs.get("db"), str) and backend_of(kwargs["db"]) is Backend.SQLITE:
            state["kwargs"] = {**kwargs, "db": redact(url), "key_path": str(server_key)}
            return {**row, "job_state": pickle.dumps(state, pickle.HIGHEST_PROTOCOL)}
        return row

    return rewrite


# --- the whole copy --------------------------------------------------------------------------------------------------


def _refuse_non_empty(con: Any, url: str) -> None:
    table = rows.first_non_empty(con, [t.name for t in metadata.sorted_tables])
    if table is not None:
        raise CopyRefused(f"the target {redact(url)} is not empty: table {table} has rows; copy only into an empty database (nothing was changed)")


def _check(copied: Mapping[str, int], source_counts: Mapping[str, int], target_counts: Mapping[str, int], before: Evidence, after: Evidence) -> None:
    wrong = [f"{t}: {source_counts[t]} in the source, {copied[t]} copied, {target_counts[t]} in the target" for t in copied
             if not source_counts[t] == copied[t] == target_counts[t]]  # fmt: skip
    if wrong:
        raise CopyRefused("row counts differ, nothing copied: " + "; ".join(wrong))
    if not before.verifies:
        raise CopyRefused(f"the source's evidence log does not verify ({before.problems} problem(s)); run fe-server verify on it; nothing copied")
    if after != before:
        raise CopyRefused(f"the evidence log differs on the target, nothing copied: source {before}, target {after}")


def _refuse_if_changed(source_db: Path, tables: list[str], copied: Mapping[str, int]) -> None:
    """The copy is of a snapshot: rows a server still running wrote since are not in it. Counted again on a fresh
    connection just before the commit, so such a copy is rolled back instead of silently missing them."""
    with rows.sqlite_snapshot(source_db) as now:
        counts = rows.source_counts(now, tables)
    changed = [f"{t} had {copied[t]} rows, has {counts[t]} now" for t in tables if counts[t] != copied[t]]
    if changed:
        raise CopyRefused(f"the source changed during the copy ({'; '.join(changed)}): is a server still running on it? Stop it and copy again; nothing copied")


def copy_database(source_db: Path, url: str, key_dir: Path, key: Path | None = None) -> CopyReport:
    """Copy the SQLite database ``source_db`` (and its key files) into the empty PostgreSQL database ``url``."""
    started = time.perf_counter()
    if not source_db.is_file():
        raise CopyRefused(f"{source_db}: no such SQLite database")
    with rows.connect_target(url) as con:  # before migrating: a non-empty target is not touched at all
        _refuse_non_empty(con, url)
    dbmod.migrate(source_db)
    dbmod.migrate(url)
    settings = ServerSettings(db_path=url, key_dir=key_dir)
    old_broker, new_broker = broker_dir_for(source_db), broker_dir_for(settings.key_base)
    with rows.sqlite_snapshot(source_db) as source, rows.connect_target(url) as con:
        source_tx = Tx(source.conn, Backend.SQLITE)
        public_key = _server_public_key(source_db, key, source_tx)
        to_write: list[tuple[Path, Path, bytes]] = []
        try:
            with con.transaction():
                tables = rows.tables_to_copy(source, rows.target_tables(con))
                rows.check_columns(source, con, tables)
                rows.lock_tables(con, tables)
                _refuse_non_empty(con, url)
                to_write, present = plan_keys(key_files(source_db, key, url, key_dir), old_broker, new_broker)
                before = evidence_of(source_tx, public_key)
                copied = rows.copy_tables(source, con, tables, {JOB_TABLE: job_rewriter(url, settings.server_key_path)})
                after = evidence_of(Tx(con, Backend.POSTGRES), public_key)
                _check(copied, rows.source_counts(source, tables), rows.target_counts(con, tables), before, after)
                _refuse_if_changed(source_db, tables, copied)
                # Last before the commit: a refused copy leaves the key folder as it was, and no server started on the
                # URL finds the records without their keys.
                write_keys(to_write)
        except BaseException:
            for _, dst, _ in to_write:  # the commit (or a key write) failed: the folder goes back to how it was
                dst.unlink(missing_ok=True)
            raise
    return CopyReport(
        tables=copied, seconds=round(time.perf_counter() - started, 2), evidence=after, keys_copied=[str(d) for _, d, _ in to_write],
        keys_present=[str(p) for p in present],
    )
