"""The cells of an import's CSV rows: text, ids, credit codes, choices, dates in China Standard Time."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re

from protocol.cst import CST, CST_OFFSET_MS
from protocol.creditcode import CreditCodeError, validate

MAX_NAME = 200
MAX_ID = 64
DAY_MS = 86_400_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class RowError(ValueError):
    """A row that cannot be imported; the message names the column."""


def text(col: str, v: str, *, limit: int | None = None) -> str:
    if not v:
        raise RowError(f"{col} is empty")
    if limit is not None and len(v) > limit:
        raise RowError(f"{col} has {len(v)} characters, at most {limit} are allowed")
    return v


def ident(col: str, v: str) -> str:
    return text(col, v, limit=MAX_ID)


def code(col: str, v: str) -> str:
    if not v:
        raise RowError(f"{col} is empty")
    try:
        return validate(v)
    except CreditCodeError as e:
        msg = str(e)
        raise RowError(f"{col} {msg}" if msg.startswith(repr(v)) else f"{col}: {msg}") from None


def ids(col: str, v: str, *, required: bool) -> str:
    """A ';'-separated id list as the JSON list the registers store."""
    if not v:
        if required:
            raise RowError(f"{col} is empty: at least one field id is required")
        return "[]"
    ids = [p.strip() for p in v.split(";")]
    if "" in ids:
        raise RowError(f"{col} {v!r} has an empty id (check the ';' separators)")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise RowError(f"{col} {v!r} lists {i!r} twice")
        if len(i) > MAX_ID:
            raise RowError(f"{col}: id {i!r} has {len(i)} characters, at most {MAX_ID} are allowed")
        seen.add(i)
    return json.dumps(ids, ensure_ascii=False)


def choice(col: str, v: str, allowed: tuple[str, ...], default: str) -> str:
    if not v:
        return default
    if v not in allowed:
        raise RowError(f"{col} {v!r} is not one of {', '.join(allowed)}")
    return v


@functools.lru_cache(maxsize=4096)
def _day_start_ms(text: str) -> int:
    if not _DATE.fullmatch(text):
        raise ValueError("expected YYYY-MM-DD")
    return (dt.date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL) * DAY_MS - CST_OFFSET_MS


def date_ms(col: str, v: str) -> int:
    """00:00 CST of a YYYY-MM-DD date, as epoch ms."""
    if not v:
        raise RowError(f"{col} is empty")
    try:
        return _day_start_ms(v)
    except ValueError as e:
        raise RowError(f"{col} {v!r} is not a date YYYY-MM-DD ({e})") from None


def period(v_from: str, v_to: str, *, open_ended: bool = False) -> tuple[int, int | None]:
    """valid_from at 00:00 CST and valid_to through 23:59:59.999 CST, as epoch ms."""
    start = date_ms("valid_from", v_from)
    if open_ended and not v_to:
        return start, None
    end = date_ms("valid_to", v_to) + DAY_MS - 1
    if end < start:
        raise RowError(f"valid_to {v_to} is before valid_from {v_from}")
    return start, end


def instant_ms(col: str, v: str) -> int:
    """A date (00:00 CST) or an ISO datetime (CST unless it has an offset), as epoch ms."""
    if _DATE.fullmatch(v):
        return date_ms(col, v)
    if not v:
        raise RowError(f"{col} is empty")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise RowError(f"{col} {v!r} is neither a date YYYY-MM-DD nor an ISO datetime such as 2024-03-05T14:30:00+08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=CST)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)

