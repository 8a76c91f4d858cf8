"""The ingest's signature checks in a child process: the same verdicts as in-thread, and never skipped when the child fails."""

from __future__ import annotations

import os
import signal

import pytest

from protocol.signing import SigningKey
from server.ingest import verify_worker
from server.ingest.verify_worker import VerifierProcess, verify_here


def _items(n: int) -> list[tuple[object, bytes, bytes]]:
    keys = [SigningKey.generate() for _ in range(3)]
    items = []
    for i in range(n):
        k = keys[i % 3]
        body = f"event {i}".encode()
        sig = k.sign(body)
        if i % 5 == 0:
            sig = bytes([sig[0] ^ 1]) + sig[1:]  # forged
        elif i % 7 == 0:
            body += b" changed"  # altered after signing
        elif i % 11 == 0:
            sig = sig[:40]  # truncated
        items.append((k.verifier(), body, sig))
    return items


@pytest.fixture
def checker() -> VerifierProcess:
    v = VerifierProcess()
    yield v
    v.close()


def test_the_child_gives_the_same_verdicts_as_the_thread(checker: VerifierProcess) -> None:
    items = _items(200)
    expected = verify_here(items)  # type: ignore[arg-type]
    assert checker.verify_many(items) == expected  # type: ignore[arg-type]
    assert expected.count(False) > 40 and expected.count(True) > 100  # both kinds really are in the batch
    assert checker._proc is not None and checker._proc.is_alive()  # checked in the child, not in this thread
    assert checker.verify_many([]) == []


def test_a_killed_child_costs_nothing_but_time(checker: VerifierProcess) -> None:
    items = _items(60)
    expected = verify_here(items)  # type: ignore[arg-type]
    assert checker.verify_many(items) == expected  # type: ignore[arg-type]
    first = checker._proc
    os.kill(first.pid, signal.SIGKILL)
    first.join(5)
    assert checker.verify_many(items) == expected  # type: ignore[arg-type]  # a new child (or this thread) checks it
    assert checker.verify_many(items) == expected  # type: ignore[arg-type]
    assert checker._proc is not None and checker._proc is not first and checker._proc.is_alive()


def test_a_child_that_does_not_answer_is_replaced_and_the_batch_checked_here(checker: VerifierProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    items = _items(30)
    expected = verify_here(items)  # type: ignore[arg-type]
    checker.verify_many(items)
    first = checker._proc
    os.kill(first.pid, signal.SIGSTOP)  # hangs: the pipe stays open, no answer comes
    monkeypatch.setattr(verify_worker, "TIMEOUT_BASE_S", 0.5)
    try:
        assert checker.verify_many(items) == expected  # type: ignore[arg-type]
    finally:
        if first.is_alive():
            os.kill(first.pid, signal.SIGCONT)
    assert not first.is_alive()  # killed, not left behind


def test_checks_stay_in_the_thread_when_the_child_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_worker, "ENABLED", False)
    v = VerifierProcess()
    items = _items(20)
    assert v.verify_many(items) == verify_here(items)  # type: ignore[arg-type]
    assert v._proc is None
