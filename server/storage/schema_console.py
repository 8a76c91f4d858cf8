"""Tables of issue 16 (migration 0010_console); none yet."""

from __future__ import annotations
