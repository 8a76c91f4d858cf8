"""The device's clock: what the agent stamps events with and measures the time exchange by.

``FE_CLOCK_SKEW_MS`` (milliseconds, may be negative) shifts it from the machine's clock, to run an agent
whose clock is wrong (as ``faketime`` would) in tests and demos. Durations use ``time.monotonic``.
"""

from __future__ import annotations

import os
import time

from edge_agent.errors import EdgeAgentError

#: Environment variable that shifts the device clock, in milliseconds (e.g. 172800000 for two days ahead).
SKEW_ENV = "FE_CLOCK_SKEW_MS"


def _skew_ms() -> int:
    raw = os.environ.get(SKEW_ENV, "").strip()
    if not raw:
        return 0
    try:
        return int(raw)
    except ValueError:
        raise EdgeAgentError(f"{SKEW_ENV}={raw!r}: expected a whole number of milliseconds, e.g. 172800000 for two days ahead") from None


SKEW_MS = _skew_ms()


def now_ms() -> int:
    """The device clock, epoch milliseconds."""
    return int(time.time() * 1000) + SKEW_MS
