"""Duty days and their deadline, as pure functions of a time zone: which day a time falls on, when it is due."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Final

DAY_PATTERN: Final[re.Pattern[str]] = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadDay(ValueError):
    """A day that is not a calendar date written YYYY-MM-DD."""


def parse_day(day: str) -> dt.date:
    """The date a `YYYY-MM-DD` string names; BadDay otherwise."""
    if not isinstance(day, str) or not DAY_PATTERN.match(day):
        raise BadDay(f"a day is written YYYY-MM-DD, not {day!r}")
    try:
        return dt.date.fromisoformat(day)
    except ValueError as exc:
        raise BadDay(f"{day!r} is not a calendar date: {exc}") from None


def day_of(when: float, tz: zoneinfo.ZoneInfo) -> str:
    """The local date (YYYY-MM-DD) that `when` (epoch seconds) falls on in `tz`."""
    return dt.datetime.fromtimestamp(when, tz).date().isoformat()


def deadline_of(day: str, at: str, tz: zoneinfo.ZoneInfo) -> float:
    """The epoch time of the wall-clock `at` ("HH:MM" or "HH:MM:SS") on `day` in `tz`."""
    local = dt.datetime.combine(parse_day(day), dt.time.fromisoformat(at), tzinfo=tz)
    return local.timestamp()


def next_deadline(now: float, at: str, tz: zoneinfo.ZoneInfo) -> tuple[str, float]:
    """(the day, its deadline) of the first deadline strictly after `now`: today's, else tomorrow's."""
    today = day_of(now, tz)
    due = deadline_of(today, at, tz)
    if due > now:
        return today, due
    tomorrow = (parse_day(today) + dt.timedelta(days=1)).isoformat()
    return tomorrow, deadline_of(tomorrow, at, tz)


def next_before_deadline(now: float, at: str, before: float, tz: zoneinfo.ZoneInfo) -> tuple[str, float]:
    """(the day, the time) of the first moment strictly after `now` that lies `before` seconds ahead of a day's deadline."""
    day = day_of(now, tz)
    while True:
        when = deadline_of(day, at, tz) - before
        if when > now:
            return day, when
        day = shift_day(day, 1)


def week_of(day: str) -> list[str]:
    """The seven days, Monday first, of the week that holds `day`."""
    date = parse_day(day)
    monday = date - dt.timedelta(days=date.weekday())
    return [(monday + dt.timedelta(days=n)).isoformat() for n in range(7)]


def shift_day(day: str, days: int) -> str:
    """The day `days` after (or before, if negative) `day`."""
    return (parse_day(day) + dt.timedelta(days=days)).isoformat()
