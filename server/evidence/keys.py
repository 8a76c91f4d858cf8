"""The server's own Ed25519 key, which signs every receipt and notice."""

from __future__ import annotations

import logging
from pathlib import Path

from protocol.signing import SigningKey
from server.secret_files import create_secret_file

log = logging.getLogger(__name__)


def load_or_create_server_key(path: Path) -> SigningKey:
    """Load the server key, creating it (mode 0600, atomically: processes starting at once end with one key) on first
    use; a key file that is empty or not a key is a KeyFormatError naming the file."""
    if not path.exists():
        key = SigningKey.generate()
        if create_secret_file(path, key.seed_hex() + "\n"):
            log.info("created server key %s (public %s)", path, key.public_hex)
            return key
    return SigningKey.load(path)
