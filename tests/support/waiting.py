"""Polling with a deadline: the only way tests wait for something to happen (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNSET = object()


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that value.

    Raises AssertionError after ``timeout`` seconds, naming ``message`` (a string, or a callable
    evaluated only on failure, for messages that describe the state at that moment), the last value the
    predicate returned, or the exception it last raised. An exception from the predicate counts as
    "not yet": the predicate is called again until the deadline.
    The predicate is always called at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: object = _UNSET
    last_exc: BaseException | None = None
    while True:
        final = time.monotonic() >= deadline
        try:
            value = predicate()
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        else:
            last_exc = None
            last = value
            if value:
                return value
        if final:
            break
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    text = message() if callable(message) else message
    details = []
    if last is not _UNSET:
        details.append(f"last value: {last!r}")
    if last_exc is not None:
        details.append(f"last exception: {type(last_exc).__name__}: {last_exc}")
    suffix = f" ({'; '.join(details)})" if details else ""
    raise AssertionError(f"timed out after {timeout:g} s: {text}{suffix}")
