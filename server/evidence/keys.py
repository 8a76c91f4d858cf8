"""The server's own Ed25519 key, which signs every receipt and notice."""

from __future__ import annotations

import logging
from pathlib import Path

from protocol.signing import SigningKey

log = logging.getLogger(__name__)


def load_or_create_server_key(path: Path) -> SigningKey:
    """Load the server key, creating it (mode 0600) on first use."""
    if path.exists():
        return SigningKey.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    key.save(path)
    log.info("created server key %s (public %s)", path, key.public_hex)
    return key
