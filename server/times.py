"""Times from clients, bounded before they are stored; times in records, formatted without ever raising."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Final

DAY: Final[float] = 86400.0
# A deadline more than a year out is a typo or an attack (1e300 once broke every page showing it).
MAX_AHEAD: Final[float] = 366 * DAY
# An incident may be reported long after it happened (a concealed one found later), but not decades.
MAX_BEHIND: Final[float] = 5 * 366 * DAY


def _utc(when: float) -> str:
    return format_time(when, dt.timezone.utc, "%Y-%m-%d %H:%M UTC")


def deadline_problem(name: str, value: float, now: float) -> str | None:
    """Why `value` cannot be a deadline set at `now` (more than a year ahead, or not finite), or None."""
    if not math.isfinite(value):
        return f"{name} must be a time in seconds, not {value!r}"
    if value > now + MAX_AHEAD:
        return f"{name} must lie within a year from now (at the latest {_utc(now + MAX_AHEAD)}), not {value!r}"
    return None


def past_time_problem(name: str, value: float, now: float) -> str | None:
    """Why `value` cannot be the time of something that happened (over five years ago, or not finite), or None."""
    if not math.isfinite(value):
        return f"{name} must be a time in seconds, not {value!r}"
    if value < now - MAX_BEHIND:
        return f"{name} must lie within five years before now (at the earliest {_utc(now - MAX_BEHIND)}), not {value!r}"
    return None


def format_time(value: float | None, tz: dt.tzinfo | str, fmt: str = "%Y-%m-%d %H:%M:%S", *, none: str = "") -> str:
    """`value` (epoch seconds) as local text; `none` for None and the bare number for a time no calendar holds."""
    if value is None:
        return none
    try:
        zone = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
        return dt.datetime.fromtimestamp(value, zone).strftime(fmt)
    except (OverflowError, OSError, ValueError, TypeError, zoneinfo.ZoneInfoNotFoundError):
        # A record from before the bounds above may hold 1e300 or NaN: a page must still render.
        return f"{value!r} (out of range)"
