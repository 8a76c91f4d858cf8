"""Which scheduler of a cluster runs the jobs: the one holding the leader lock (docs/storage-seam.md §5.3); and
which ingest process uses a broker client id: the one holding that id's lock (``ingest_lock``).

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held on a connection of its own, outside the
storage pools, so that it lives exactly as long as that session: a leader whose process dies or whose connection
breaks loses it at once, and another scheduler's next try takes it. SQLite (one machine by construction): an
exclusive ``flock`` on ``<database>.scheduler.lock``, released by the kernel when the process dies. Other locks of
the same kind have names of their own (a file ``<database>.<name>.lock``, an advisory key of their own).

Neither lock is what keeps a slot from running twice (a leader may stall past a takeover): job runs claim their
slot in the database (server/storage/jobs.py ``claim_run``). The lock only keeps the other schedulers idle.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from pathlib import Path
from typing import Any, Protocol

from server.storage.engine import Backend, backend_of, redact

log = logging.getLogger(__name__)

#: The advisory lock's key (hashed to 64 bits by PostgreSQL, as Tx.lock's keys are).
LEADER_KEY = "fe:scheduler-leader"
#: How long connecting for the leader lock may take before this try counts as failed.
CONNECT_TIMEOUT_S = 5


class LeaderLock(Protocol):
    """A lock one scheduler of a cluster holds at a time."""

    def acquire(self) -> bool:
        """Take the lock if it is free (never waits); True if this process holds it now."""
        ...

    def held(self) -> bool:
        """Whether the lock is still held (False once the session behind it is gone)."""
        ...

    def release(self) -> None:
        """Give the lock up (nothing happens if it is not held)."""
        ...


class FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database (per open file: two holders in one process exclude
    each other too)."""

    #: Never True: a file beside the database can always be asked (an AdvisoryLock's server may be unreachable).
    unreachable = False

    def __init__(self, db: str, name: str = "scheduler") -> None:
        self.path = Path(db).with_name(f"{Path(db).name}.{name}.lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its flock
            self._fd = None


#: Seconds between keepalive probes of the leader's session, and how many may go unanswered before it is dead.
KEEPALIVE_S = 5
KEEPALIVE_COUNT = 3
#: A leader's session silent this long is ended by PostgreSQL, and its lock with it (the leader checks every few seconds).
LOST_AFTER_S = 15


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a dedicated autocommit connection."""

    def __init__(self, db: str, key: str = LEADER_KEY, application_name: str = "fe-scheduler-leader") -> None:
        self.db = db
        self.key = key
        self.application_name = application_name
        self._con: Any = None
        #: The last ``acquire`` could not reach the database (so it cannot tell whether another process holds the lock).
        self.unreachable = False

    def acquire(self) -> bool:
        import psycopg

        if self.held():
            return True
        self.release()
        self.unreachable = False
        try:
            # A leader cut off from the database (packets dropped, sockets still open) must lose the lock within seconds,
            # not after TCP's default two hours: PostgreSQL ends a session that stays idle past LOST_AFTER_S (a live
            # leader checks far more often), and keepalives on both ends catch a peer that is gone.
            con = psycopg.connect(
                self.db, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=self.application_name,
                keepalives=1, keepalives_idle=KEEPALIVE_S, keepalives_interval=KEEPALIVE_S, keepalives_count=KEEPALIVE_COUNT,
                tcp_user_timeout=KEEPALIVE_S * KEEPALIVE_COUNT * 1000,
                options=f"-c tcp_keepalives_idle={KEEPALIVE_S} -c tcp_keepalives_interval={KEEPALIVE_S} -c tcp_keepalives_count={KEEPALIVE_COUNT}"
                f" -c statement_timeout={KEEPALIVE_S * KEEPALIVE_COUNT * 1000} -c idle_session_timeout={LOST_AFTER_S * 1000}",
            )
        except psycopg.OperationalError as e:
            log.warning("%s lock: cannot connect to %s: %s", self.key, redact(self.db), e)
            self.unreachable = True
            return False
        try:
            got = con.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,)).fetchone()[0]
        except psycopg.Error:
            con.close()
            raise
        if not got:
            con.close()
            return False
        self._con = con
        return True

    def held(self) -> bool:
        """A round trip on the lock's session: the lock lives exactly as long as it does."""
        import psycopg

        if self._con is None:
            return False
        try:
            self._con.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            return False
        return True

    def backend_pid(self) -> int | None:
        """The PostgreSQL process of the lock's session (tests end it to play a leader that died)."""
        return None if self._con is None else int(self._con.info.backend_pid)

    def release(self) -> None:
        import psycopg

        if self._con is not None:
            try:
                # Unlock before closing: the backend ends (and frees the lock) only some time after the socket closes,
                # so a successor asking at once would be refused. Ending the session frees it anyway if this fails.
                self._con.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                pass
            finally:
                self._con.close()
                self._con = None


def leader_lock(db: str) -> LeaderLock:
    """The leader lock of the database ``db`` (a path or a ``postgresql://`` URL)."""
    return AdvisoryLock(db) if backend_of(db) is Backend.POSTGRES else FileLock(db)


def ingest_lock(db: str, client_id: str) -> FileLock | AdvisoryLock:
    """The lock on a broker client id among the ingest processes of the database ``db``: the broker keeps one session
    per client id, and a second process connecting with it takes that session over, the first takes it back on
    reconnecting, and so on; so only the holder of this lock connects."""
    if backend_of(db) is Backend.POSTGRES:
        return AdvisoryLock(db, key=f"fe:ingest-client:{client_id}", application_name="fe-ingest-client-lock")
    return FileLock(db, name="ingest-" + re.sub(r"[^A-Za-z0-9_.-]", "_", client_id))
