"""Who a roll-call calls and when a scheduled one fires: cron rules in a time zone, pure functions."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from datetime import datetime

from croniter import CroniterError, croniter

from server.config import Config, RollCallSchedule
from server.times import format_time


class TargetError(ValueError):
    """The chosen sites, group or subtree name nothing callable."""


class ScheduleError(ValueError):
    """A cron rule with no next time (`0 0 31 2 *`) or a time zone that cannot be read."""


def resolve_sites(
    config: Config, *, sites: Iterable[str] = (), group: str | None = None, subtree: str | None = None
) -> list[str]:
    """The site ids chosen by a list, a saved group or a subtree (its root included), in order, once each."""
    chosen: list[str] = []
    for site in sites:
        if config.find_site(site) is None:
            raise TargetError(f"unknown site {site!r}")
        chosen.append(site)
    if group:
        found = config.group(group)
        if found is None:
            raise TargetError(f"unknown group {group!r}")
        chosen += found.sites
    if subtree:
        if config.find_site(subtree) is None:
            raise TargetError(f"unknown site {subtree!r}")
        chosen += [s.id for s in config.subtree(subtree)]
    unique = list(dict.fromkeys(chosen))
    if not unique:
        raise TargetError("choose at least one site")
    return unique


def schedule_zone(config: Config, schedule: RollCallSchedule) -> zoneinfo.ZoneInfo:
    """The time zone a schedule's cron rule is read in: its own, else the city's; ScheduleError if unknown."""
    try:
        return zoneinfo.ZoneInfo(schedule.timezone or config.city.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {schedule.timezone!r}: {exc}") from None


def next_fire(cron: str, zone: zoneinfo.ZoneInfo, after: float) -> float:
    """The first time strictly after `after` (epoch seconds) that the cron rule matches in `zone`; else ScheduleError."""
    try:
        start = datetime.fromtimestamp(after, zone)
        return float(croniter(cron, start).get_next(float))
    except (CroniterError, ValueError, OverflowError, KeyError) as exc:
        raise ScheduleError(f"cron rule {cron!r} has no next time: {exc}") from None


def local_time(when: float, zone: zoneinfo.ZoneInfo) -> str:
    """`when` as local wall-clock text, e.g. "2027-01-15 17:30:00 CST"."""
    return format_time(when, zone, "%Y-%m-%d %H:%M:%S %Z")
