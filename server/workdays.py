"""Working days on the official Chinese calendar (holidays and adjusted working weekends, 调休).

Data come from the maintained ``chinese-calendar`` package, which covers the years the State Council
has announced. For a year it does not cover yet, Monday to Friday are counted and the result is marked
approximate, so a deadline is never silently wrong.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar


def is_workday(day: dt.date) -> tuple[bool, bool]:
    """(is a working day, known from the official calendar)."""
    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:  # the package has no data for that year yet
        return day.weekday() < 5, False


def add_working_days(start: dt.date, days: int) -> tuple[dt.date, bool]:
    """The date ``days`` working days after ``start`` (start itself not counted), and whether it is exact."""
    day, left, exact = start, days, True
    while left > 0:
        day += dt.timedelta(days=1)
        working, known = is_workday(day)
        exact = exact and known
        if working:
            left -= 1
    return day, exact


def working_days_between(first: dt.date, last: dt.date) -> int:
    """Working days after ``first`` up to and including ``last``."""
    n, day = 0, first
    while day < last:
        day += dt.timedelta(days=1)
        n += is_workday(day)[0]
    return n
