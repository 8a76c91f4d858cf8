"""The ingest's Ed25519 checks in a process of its own.

libsodium verifies without holding the GIL, but a thread that verifies one signature at a time takes the GIL back
after each (about 20,000 times a second under load), fighting paho's thread and the writer for it: on two cores that
cost about 40 us an event on top of the 55 us of the check itself (bench/README.md, issue 13). A child process checks
a whole batch per round trip instead: the batch goes over a pipe as (public key, body, signature) triples, one byte a
verdict comes back, and the ingest's own process keeps the GIL for paho and the writer.

If the child cannot be started, dies, or does not answer in time, the batch is checked in the calling thread and the
child is started again for the next one: a check is never skipped, only moved.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from protocol.signing import VerifyKey

log = logging.getLogger(__name__)

#: ``FE_INGEST_VERIFY_PROCESS=0`` checks in the ingest's own thread (benchmarks compare the two).
ENABLED = os.environ.get("FE_INGEST_VERIFY_PROCESS", "1") != "0"
#: How long a batch's answer may take: a fixed part and a part per signature (~55 us each on a loaded machine).
TIMEOUT_BASE_S = 5.0
TIMEOUT_PER_ITEM_S = 0.002
#: Public keys the child keeps parsed (a device's key is parsed once, not per event).
KEYS_KEPT = 20_000


#: Checks a batch's signatures: (key, body, signature) each, a verdict each in order (the ingest's is
#: ``VerifierProcess.verify_many``, in a process of its own).
VerifyMany = Callable[[Sequence[tuple[VerifyKey, bytes, bytes]]], list[bool]]


def verify_here(items: Sequence[tuple[VerifyKey, bytes, bytes]]) -> list[bool]:
    """Check the signatures in this thread."""
    return [key.verify(body, sig) for key, body, sig in items]


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the child process (tested through VerifierProcess)
    keys: dict[bytes, VerifyKey] = {}
    while True:
        try:
            items = conn.recv()
        except (EOFError, OSError):  # the ingest is gone
            return
        if items is None:
            return
        out = bytearray(len(items))
        for i, (public, body, sig) in enumerate(items):
            key = keys.get(public)
            if key is None:
                if len(keys) >= KEYS_KEPT:
                    keys.clear()
                key = keys[public] = VerifyKey(public)
            out[i] = key.verify(body, sig)
        conn.send_bytes(bytes(out))


class VerifierProcess:
    """Checks batches of signatures in a child process (started at first use, again after a failure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    def verify_many(self, items: Sequence[tuple[VerifyKey, bytes, bytes]]) -> list[bool]:
        """Whether each (key, body, signature) verifies, in order."""
        if not items:
            return []
        if ENABLED:
            with self._lock:
                try:
                    return self._ask(items)
                except (OSError, EOFError, ValueError, TimeoutError) as e:
                    log.warning("the signature-checking process failed (%s: %s); checking this batch here, and starting it again", type(e).__name__, e)
                    self._close()
        return verify_here(items)

    def _ask(self, items: Sequence[tuple[VerifyKey, bytes, bytes]]) -> list[bool]:
        conn = self._connection()
        conn.send([(key.public_bytes, bytes(body), bytes(sig)) for key, body, sig in items])
        if not conn.poll(TIMEOUT_BASE_S + TIMEOUT_PER_ITEM_S * len(items)):
            raise TimeoutError(f"no answer for {len(items)} signatures")
        out = conn.recv_bytes()
        if len(out) != len(items):
            raise ValueError(f"{len(out)} verdicts for {len(items)} signatures")
        return [b == 1 for b in out]

    def _connection(self) -> Connection:
        if self._conn is None or self._proc is None or not self._proc.is_alive():
            self._close()
            ctx = multiprocessing.get_context("spawn")  # never fork a process running paho's and the writer's threads
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs,), name="fe-ingest-verifier", daemon=True)
            proc.start()
            theirs.close()
            self._proc, self._conn = proc, ours
        return self._conn

    def _close(self) -> None:
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            conn.close()
        if proc is not None:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._close()
