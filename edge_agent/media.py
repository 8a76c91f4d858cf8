"""Watching the recorder's output folder: every finished file's metadata goes out through the outbox.

A file is finished when its size and modification time stay the same over ``settle_polls`` polls.
Its SHA-256 is computed while streaming it, what the file tells (duration, capture time, GPS) is read
by ``mediainfo``, and the device's own knowledge (officer, inspection, case, labels) is added. The
file stays on the device: the hash is the promise. A file changed or deleted after its hash was sent
is reported as a MediaIntegrity event, and every sent file is hashed again every ``rehash_s``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent.agent import Agent, Submission
from edge_agent.errors import EdgeAgentError
from edge_agent.mediainfo import probe, sha256_file

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    event_id TEXT NOT NULL,
    state TEXT NOT NULL,
    checked_ms INTEGER NOT NULL
);
"""


class MediaWatcher:
    """Polls one folder for one agent."""

    def __init__(self, agent: Agent) -> None:
        cfg = agent.config.media
        self.agent = agent
        self.settings = cfg
        folder = Path(cfg.watch_dir)
        self.folder = folder if folder.is_absolute() else agent.base_dir / folder
        self.extensions = {e.lower() for e in cfg.extensions}
        self._db = sqlite3.connect(agent.base_dir / "media.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._pending: dict[str, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, polls unchanged)
        self._last_rehash = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"media-{agent.device_id}", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._db.close()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.poll_s):
            try:
                self.poll()
            except (OSError, EdgeAgentError, sqlite3.Error) as e:  # the next poll tries again; nothing was marked done
                log.error("%s: media poll failed: %s", self.agent.device_id, e)

    def _files(self) -> dict[str, Path]:
        if not self.folder.is_dir():
            return {}
        return {str(p.relative_to(self.folder)): p for p in sorted(self.folder.rglob("*")) if p.is_file() and p.suffix.lower() in self.extensions}

    def poll(self) -> None:
        """One pass: publish finished new files, check known ones."""
        on_disk = self._files()
        known = {r[0]: r for r in self._db.execute("SELECT path, size, mtime_ns, sha256, event_id, state FROM files ORDER BY path")}
        rehash_all = time.monotonic() - self._last_rehash >= self.settings.rehash_s
        for rel, path in on_disk.items():
            if rel in known:
                continue
            st = path.stat()
            size, mtime, polls = self._pending.get(rel, (-1, -1, 0))
            polls = polls + 1 if (size, mtime) == (st.st_size, st.st_mtime_ns) else 0
            self._pending[rel] = (st.st_size, st.st_mtime_ns, polls)
            if polls >= self.settings.settle_polls:
                self._publish(rel, path)
                del self._pending[rel]
        for rel in list(self._pending):
            if rel not in on_disk:
                del self._pending[rel]
        for rel, (_, size, mtime, digest, event_id, state) in known.items():
            if state != "sent":
                continue
            path = on_disk.get(rel)
            if path is None:
                self._report(rel, event_id, digest, "deleted", None, None)
                continue
            st = path.stat()
            if rehash_all or (st.st_size, st.st_mtime_ns) != (size, mtime):
                now_digest, n = sha256_file(path)
                if now_digest != digest:
                    self._report(rel, event_id, digest, "modified", now_digest, n)
                else:
                    self._db.execute("UPDATE files SET size = ?, mtime_ns = ?, checked_ms = ? WHERE path = ?", (st.st_size, st.st_mtime_ns, _now(), rel))
        if rehash_all:
            self._last_rehash = time.monotonic()

    def _publish(self, rel: str, path: Path) -> None:
        info = probe(path)
        ctx = self.agent.context
        fields = {**info.captured_fields(), "file_name": rel}
        fields.update((key, value) for key, value in ctx.items() if value)
        accepted = self.agent.submit(Submission("media_captured", fields))
        st = path.stat()
        self._db.execute(
            "INSERT INTO files(path, size, mtime_ns, sha256, event_id, state, checked_ms) VALUES (?, ?, ?, ?, ?, 'sent', ?)",
            (rel, st.st_size, st.st_mtime_ns, info.sha256, accepted.event_id, _now()),
        )
        log.info("%s: %s (%s, %d bytes) recorded as %s", self.agent.device_id, rel, info.media_kind, info.size_bytes, accepted.event_id)

    def _report(self, rel: str, event_id: str, digest: str, problem: str, now_digest: str | None, size: int | None) -> None:
        fields: dict[str, Any] = {"media_event_id": event_id, "file_name": rel, "problem": problem, "sha256_expected": digest}
        if now_digest is not None:
            fields.update(sha256_now=now_digest, size_now=size)
        self.agent.submit(Submission("media_integrity", fields))
        self._db.execute("UPDATE files SET state = ?, checked_ms = ? WHERE path = ?", (problem, _now(), rel))
        log.error("ALARM %s: %s was %s after its hash was sent", self.agent.device_id, rel, problem)


def _now() -> int:
    return int(time.time() * 1000)
