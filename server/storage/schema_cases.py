"""Tables of issue 15 (migration 0009_cases); none yet."""

from __future__ import annotations
