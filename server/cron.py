"""Cron rules and time zones as pure functions: when a rule fires next, a time as local wall-clock text."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from croniter import CroniterError, croniter

from server.times import format_time


class ScheduleError(ValueError):
    """A cron rule with no next time (`0 0 31 2 *`) or a time zone that cannot be read."""


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The named time zone; ScheduleError if there is none of that name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}: {exc}") from None


def is_valid_rule(cron: str) -> bool:
    """Whether `cron` is a five-field cron rule croniter reads."""
    return len(cron.split()) == 5 and bool(croniter.is_valid(cron))


def next_fire(cron: str, tz: zoneinfo.ZoneInfo, after: float) -> float:
    """The first time strictly after `after` (epoch seconds) that the cron rule matches in `tz`; else ScheduleError."""
    try:
        start = datetime.fromtimestamp(after, tz)
        return float(croniter(cron, start).get_next(float))
    except (CroniterError, ValueError, OverflowError, KeyError) as exc:
        raise ScheduleError(f"cron rule {cron!r} has no next time: {exc}") from None


def local_time(when: float, tz: zoneinfo.ZoneInfo) -> str:
    """`when` as local wall-clock text, e.g. "2027-01-15 17:30:00 CST"."""
    return format_time(when, tz, "%Y-%m-%d %H:%M:%S %Z")
