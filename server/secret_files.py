"""Secret files (keys) made on first use, safely when several processes start at once.

A key file appears whole or not at all: the content goes to a temporary file of its own in the same folder (mode
0600, flushed to disk), which is then hard-linked to the key's name. The link fails if the name exists, so of processes
racing to make the key exactly one wins and the others read the winner's file, which is complete by the time it has a
name. A temporary file left by a process that died midway has a name no one else uses, so it never matters.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def create_secret_file(path: Path, text: str) -> bool:
    """Write ``text`` to the new file ``path`` (mode 0600) atomically; False, writing nothing, if it exists already
    (another process made it first: read theirs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def read_or_create_secret(path: Path, make_text: Callable[[], str]) -> str:
    """The text of the secret file ``path``, made with ``make_text()`` (atomically, mode 0600) if it does not exist."""
    path = Path(path)
    if not path.exists():
        create_secret_file(path, make_text())
    return path.read_text(encoding="ascii")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
