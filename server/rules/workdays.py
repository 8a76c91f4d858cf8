"""Working days on the official Chinese calendar (holidays and adjusted working weekends, 调休).

Data come from the maintained ``chinese-calendar`` package, which covers the years the State Council
has announced. For a year it does not cover yet, Monday to Friday are counted and the result is marked
approximate, so a deadline is never silently wrong. Dates outside ``FIRST_DAY``..``LAST_DAY`` are refused
(``Invalid``): counting days from year 9999 would overflow, and from year 1 would loop for millions of days.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar

from server.errors import Invalid

#: The dates worked with: the official calendar's era (chinese-calendar has data from 2004; later years fall
#: back to Monday to Friday) to the end of the century. No decision or disclosure lies outside.
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)
#: The most working days counted at once (disclosure deadlines are 7 or 20): bounds the loop.
MAX_WORKING_DAYS = 1000
#: The latest date ``add_working_days`` can return (MAX_WORKING_DAYS from LAST_DAY, with room for holidays):
#: a deadline counted from the last day falls after it, and must still be counted up to.
LATEST_DEADLINE = LAST_DAY + dt.timedelta(days=2 * MAX_WORKING_DAYS)


def check_day(name: str, day: dt.date, last: dt.date = LAST_DAY) -> None:
    """Invalid unless ``day`` lies between FIRST_DAY and ``last``."""
    if not FIRST_DAY <= day <= last:
        raise Invalid(f"{name} 须在 {FIRST_DAY} 至 {last} 之间 / {name} must be between {FIRST_DAY} and {last}, got {day}")


def is_workday(day: dt.date) -> tuple[bool, bool]:
    """(is a working day, known from the official calendar)."""
    try:
        return chinese_calendar.is_workday(day), True
    except NotImplementedError:  # the package has no data for that year yet
        return day.weekday() < 5, False


def add_working_days(start: dt.date, days: int) -> tuple[dt.date, bool]:
    """The date ``days`` working days after ``start`` (start itself not counted), and whether it is exact.

    Invalid for a start outside FIRST_DAY..LAST_DAY or a count outside 0..MAX_WORKING_DAYS."""
    check_day("start", start)
    if not 0 <= days <= MAX_WORKING_DAYS:
        raise Invalid(f"工作日数须在 0 至 {MAX_WORKING_DAYS} 之间 / working days must be between 0 and {MAX_WORKING_DAYS}, got {days}")
    day, left, exact = start, days, True
    while left > 0:
        day += dt.timedelta(days=1)
        working, known = is_workday(day)
        exact = exact and known
        if working:
            left -= 1
    return day, exact


def working_days_between(first: dt.date, last: dt.date) -> int:
    """Working days after ``first`` up to and including ``last`` (Invalid for a date outside
    FIRST_DAY..LATEST_DEADLINE: ``last`` is often a deadline counted from a day up to LAST_DAY)."""
    check_day("first", first, LATEST_DEADLINE)
    check_day("last", last, LATEST_DEADLINE)
    n, day = 0, first
    while day < last:
        day += dt.timedelta(days=1)
        n += is_workday(day)[0]
    return n
