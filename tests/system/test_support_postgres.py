"""The private PostgreSQL helper works (tests/support/postgres.py): a real cluster made by initdb in a
temporary folder, on a free port, run as an unprivileged user when the tests run as root; killed with
SIGKILL and restarted with its committed data; several at once; nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.support import wait_for
from tests.support.postgres import SYSTEM_PORT, Postgres, PostgresError, processes_in, reap_orphans

pytestmark = pytest.mark.system


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_cluster_starts_on_its_own_port_and_answers_queries(postgres: Postgres) -> None:
    assert postgres.port != SYSTEM_PORT
    assert postgres.url == f"postgresql://fe@127.0.0.1:{postgres.port}/fe"
    with psycopg.connect(postgres.url) as conn:
        server_port, data_dir, db = conn.execute(
            "SELECT current_setting('port')::int, current_setting('data_directory'), current_database()"
        ).fetchone()  # type: ignore[misc]
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO t VALUES (%s, %s)", (1, "执法 / enforcement"))
        conn.commit()
        assert conn.execute("SELECT note FROM t WHERE id = %s", (1,)).fetchone() == ("执法 / enforcement",)
    # It is our own cluster, not the machine's service: our port and our temporary data folder.
    assert (server_port, Path(data_dir), db) == (postgres.port, postgres.data_dir, "fe")
    # The Unix socket lives in the cluster's folder, not in /var/run/postgresql.
    with psycopg.connect(postgres.socket_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert (postgres.socket_dir / f".s.PGSQL.{postgres.port}").exists()


def test_it_never_runs_as_root_and_listens_on_loopback_only(postgres: Postgres) -> None:
    assert postgres.pid is not None
    uid = os.stat(f"/proc/{postgres.pid}").st_uid
    assert uid != 0
    assert uid == os.geteuid() or os.geteuid() == 0  # run as root: the service user instead
    with postgres.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_sigkill_of_the_cluster_keeps_committed_data_and_restarts_on_the_same_port(postgres: Postgres) -> None:
    port = postgres.port
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO events SELECT generate_series(1, 1000)")
    # An open transaction at the moment of the crash: it must vanish, not half-appear.
    open_conn = postgres.connect(autocommit=False)
    open_conn.execute("INSERT INTO events VALUES (5000)")
    before = postgres.processes()
    assert postgres.pid in before and len(before) > 1  # postmaster and its children

    postgres.kill()

    assert not postgres.is_running
    assert not [pid for pid in before if _alive(pid)]  # children too, not just the postmaster
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres.url, connect_timeout=2)
    with pytest.raises(psycopg.OperationalError):
        open_conn.commit()
    open_conn.close()

    postgres.restart()

    assert postgres.port == port and postgres.starts == 2
    with postgres.connect() as conn:
        assert conn.execute("SELECT count(*), max(id) FROM events").fetchone() == (1000, 1000)
    assert "database system was interrupted" in postgres.log_text()  # crash recovery ran


def test_kill_is_repeatable_under_load(postgres: Postgres) -> None:
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE n (id bigserial PRIMARY KEY)")
    committed = 0
    for _ in range(2):
        stop = threading.Event()
        counts: list[int] = []

        def write() -> None:
            done = 0
            try:
                with postgres.connect() as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO n DEFAULT VALUES")
                        done += 1
            except psycopg.OperationalError:
                pass  # the crash cut us off; an INSERT that did not return may or may not be stored
            counts.append(done)

        writer = threading.Thread(target=write)
        writer.start()
        with postgres.connect() as conn:  # wait on the condition: the writer has committed rows
            wait_for(lambda: conn.execute("SELECT count(*) FROM n").fetchone()[0] > committed + 10, timeout=10)  # type: ignore[index]
        postgres.kill()
        stop.set()
        writer.join(10)
        assert not writer.is_alive()
        postgres.restart()
        with postgres.connect() as conn:
            stored = conn.execute("SELECT count(*) FROM n").fetchone()[0]  # type: ignore[index]
        # Every INSERT that returned (autocommit) is stored; at most the one in flight may be too.
        assert committed + counts[0] <= stored <= committed + counts[0] + 1
        committed = stored


def test_stop_is_graceful_and_restart_keeps_data(postgres: Postgres) -> None:
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE k (v text)")
        conn.execute("INSERT INTO k VALUES ('kept')")
    postgres.stop()
    assert postgres.processes() == []
    assert "database system is shut down" in postgres.log_text()
    postgres.restart()
    with postgres.connect() as conn:
        assert conn.execute("SELECT v FROM k").fetchall() == [("kept",)]


def test_two_clusters_at_once_are_separate(postgres_factory: Callable[..., Postgres]) -> None:
    a, b = postgres_factory(), postgres_factory()
    assert a.port != b.port and a.directory != b.directory
    with a.connect() as conn:
        conn.execute("CREATE TABLE only_in_a (x int)")
    with b.connect() as conn:
        assert conn.execute("SELECT to_regclass('only_in_a')").fetchone() == (None,)
    a.kill()
    with b.connect() as conn:  # killing one leaves the other alone
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert b.processes() and not a.processes()


def test_create_database_gives_a_fresh_database(postgres: Postgres) -> None:
    url = postgres.create_database("case_1")
    assert url.endswith("/case_1")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("case_1",)
    with pytest.raises(ValueError, match="lower-case"):
        postgres.create_database('x"; DROP DATABASE fe; --')


def test_close_leaves_no_process_and_no_folder() -> None:
    with Postgres() as pg:
        with pg.connect() as conn:  # a backend of a connected client too
            conn.execute("SELECT 1")
            pids = pg.processes()
            data_dir = pg.data_dir
            assert len(pids) > 1
    assert not [pid for pid in pids if _alive(pid)]
    assert processes_in(data_dir) == []
    assert not pg.directory.exists()


def test_a_failed_start_says_why_with_the_log_tail(postgres_factory: Callable[..., Postgres]) -> None:
    with socket.socket() as holder:  # the port is taken by someone else
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cluster = postgres_factory(start=False, port=port, start_timeout=15)
        with pytest.raises(PostgresError, match=r"exited with status \d+ while starting") as err:
            cluster.start()
    assert "--- log tail ---" in str(err.value) and "could not" in str(err.value)
    assert cluster.processes() == []


def test_a_sigkill_from_outside_is_noticed(postgres: Postgres) -> None:
    assert postgres.pid is not None
    os.kill(postgres.pid, signal.SIGKILL)  # someone else kills only the postmaster
    postgres.kill()  # cleans up the orphaned children, whoever reaped them
    assert postgres.processes() == []
    postgres.restart()
    with postgres.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_clusters_of_a_dead_test_run_are_reaped_and_live_ones_kept(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fe-reap-"))  # a temp folder of our own: other runs' clusters are not touched
    os.chmod(folder, 0o755)
    try:
        orphan = Postgres(folder / "fe-postgres-orphan").start()
        live = Postgres(folder / "fe-postgres-live").start()
        gone = subprocess.Popen(["true"])
        gone.wait()  # a test process that died without cleaning up
        (orphan.directory / "owner").write_text(f"{gone.pid} 1")
        orphan_pids = orphan.processes()

        assert reap_orphans(folder) == [orphan.directory]

        assert not [pid for pid in orphan_pids if _alive(pid)] and not orphan.directory.exists()
        with live.connect() as conn:  # ours (this process is alive): untouched
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert reap_orphans(folder) == []
    finally:
        for cluster in (locals().get("orphan"), locals().get("live")):
            if cluster is not None:
                cluster.close()  # also reaps the Popen of the postmaster that reap_orphans killed
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user the cluster runs as that user, who may enter the folder")
def test_a_folder_closed_to_the_service_user_is_refused_with_a_reason(tmp_path: Path) -> None:
    closed = tmp_path / "closed"  # pytest's own temp folder is mode 0700, root's
    closed.mkdir(mode=0o700)
    with pytest.raises(PostgresError, match="closed to the OS user"):
        Postgres(closed / "pg")


def test_postgres_url_is_a_fresh_database_on_the_shared_cluster(postgres_url: str, postgres_cluster: Postgres) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    assert postgres_url == postgres_cluster.url_for(name) and name in postgres_cluster.databases()
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE mine (x int)")


def test_drop_database_ends_open_sessions_and_refuses_the_main_one(postgres: Postgres) -> None:
    url = postgres.create_database("scratch")
    open_conn = psycopg.connect(url)  # a test that forgot to close its connection must not block the drop
    postgres.drop_database("scratch")
    assert "scratch" not in postgres.databases()
    with pytest.raises(psycopg.OperationalError):
        open_conn.execute("SELECT 1")
    open_conn.close()
    with pytest.raises(ValueError):
        postgres.drop_database("fe")


def test_setup_installs_postgresql_exactly_when_its_server_binaries_are_missing(tmp_path: Path) -> None:
    setup = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"
    [check] = [line for line in setup.read_text().splitlines() if "missing+=(postgresql)" in line]
    assert "/usr/lib/postgresql/" in check  # the folder bin_dir() looks in

    def wanted(root: Path) -> bool:
        script = "set -euo pipefail; missing=(); " + check.replace("/usr/lib/postgresql/", f"{root}/") + '; echo "${missing[*]}"'
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        return out.strip() == "postgresql"

    assert wanted(tmp_path)  # nothing installed
    (tmp_path / "15" / "bin").mkdir(parents=True)
    assert wanted(tmp_path)  # a version folder without initdb (a client-only install)
    (tmp_path / "15" / "bin" / "initdb").touch()
    assert not wanted(tmp_path)
