"""Sizes of property tests: bounded in the default run, ten times larger with HYPOTHESIS_PROFILE=explore."""

from __future__ import annotations

import os


def examples(n: int) -> int:
    """How many examples a property test tries (``n`` in the default run)."""
    return n * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else n
