"""Event ids: UUIDs in the version 7 layout (RFC 9562), time-ordered.

Ordered ids keep the server's indexes on event ids append-mostly: random (version 4) ids scatter every
batch over the whole B-tree and make each insert cost several random page writes.
"""

from __future__ import annotations

import os
import time
import uuid


def new_event_id(now_ms: int | None = None) -> str:
    """A new time-ordered UUID (48-bit Unix milliseconds, version 7, 74 random bits) in canonical form."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
