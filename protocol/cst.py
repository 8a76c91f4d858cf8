"""China Standard Time (UTC+8, no daylight saving): the zone of every date a person reads, every working-day deadline
and every "today" the rules count in, on devices and on the server alike."""

from __future__ import annotations

import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8))
#: CST's offset from UTC in milliseconds, for SQL that buckets instants into CST days.
CST_OFFSET_MS = 8 * 3_600_000


def cst_date(ms: int) -> dt.date:
    """The China Standard Time date of an instant (milliseconds since the epoch)."""
    return dt.datetime.fromtimestamp(ms / 1000, CST).date()
