"""Tables of issue 16 item 3, the officer's door code (migration 0011_badges); none yet."""

from __future__ import annotations
