"""scripts/setup.sh waits for the package manager's lock (held by unattended upgrades on a fresh machine)
instead of failing with apt-get's exit 100. The script's functions are sourced and run against a lock file
of the test's own, locked the way apt and dpkg lock theirs (fcntl)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"
DEADLINE_S = 20.0


def run_wait(lock: Path, timeout_s: int) -> subprocess.Popen[str]:
    env = {**os.environ, "FE_DPKG_LOCK_FILES": str(lock), "FE_APT_LOCK_TIMEOUT_S": str(timeout_s), "FE_APT_LOCK_POLL_S": "0.1"}
    return subprocess.Popen(["bash", "-c", f'source "{SETUP}" && wait_for_dpkg_lock'], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def lock(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A lock file and an open descriptor on it (lock it with fcntl.lockf, as dpkg does)."""
    path = tmp_path / "lock-frontend"
    path.touch()
    fd = os.open(path, os.O_RDWR)
    try:
        yield path, fd
    finally:
        os.close(fd)


def test_a_free_lock_is_passed_at_once(lock: tuple[Path, int]) -> None:
    proc = run_wait(lock[0], timeout_s=5)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    assert "waiting" not in out


def test_a_held_lock_is_waited_for_with_a_message_then_passed(lock: tuple[Path, int]) -> None:
    path, fd = lock
    fcntl.lockf(fd, fcntl.LOCK_EX)
    proc = run_wait(path, timeout_s=60)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until the script says it is waiting
    assert "waiting up to 60s" in first, first
    assert proc.poll() is None  # still waiting while the lock is held
    fcntl.lockf(fd, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    assert "lock is free" in out


def test_a_lock_held_too_long_fails_with_a_reason(lock: tuple[Path, int]) -> None:
    path, fd = lock
    fcntl.lockf(fd, fcntl.LOCK_EX)
    started = time.monotonic()
    proc = run_wait(path, timeout_s=1)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode != 0 and "still held after 1s" in err, (out, err)
    assert time.monotonic() - started < DEADLINE_S


def test_every_apt_get_in_the_script_waits_for_the_lock() -> None:
    lines = [line.strip() for line in SETUP.read_text().splitlines() if not line.strip().startswith("#")]
    calls = [line for line in lines if "apt-get" in line and not line.startswith("echo")]
    assert calls, "setup.sh no longer runs apt-get?"
    for line in calls:  # apt-get itself only inside apt_get(), which waits and passes DPkg::Lock::Timeout
        assert "DPkg::Lock::Timeout" in line, line
    assert "apt_get update" in SETUP.read_text() and "apt_get install" in SETUP.read_text()
