"""Who a roll-call calls, and the time zone a scheduled one's cron rule is read in."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable

from server.config import Config, RollCallSchedule
from server.cron import zone
from server.sites import SiteTree


class TargetError(ValueError):
    """The chosen sites, group or subtree name nothing callable."""


def resolve_sites(
    tree: SiteTree, config: Config, *, sites: Iterable[str] = (), group: str | None = None, subtree: str | None = None
) -> list[str]:
    """The site ids chosen by a list, a saved group or a subtree (its root included), in order, once each."""
    chosen: list[str] = []
    for site in sites:
        if site not in tree:
            raise TargetError(f"unknown site {site!r}")
        chosen.append(site)
    if group:
        found = config.group(group)
        if found is None:
            raise TargetError(f"unknown group {group!r}")
        chosen += found.sites
    if subtree:
        if subtree not in tree:
            raise TargetError(f"unknown site {subtree!r}")
        chosen += [s.id for s in tree.subtree(subtree)]
    unique = list(dict.fromkeys(chosen))
    if not unique:
        raise TargetError("choose at least one site")
    return unique


def schedule_zone(config: Config, schedule: RollCallSchedule) -> zoneinfo.ZoneInfo:
    """The time zone a schedule's cron rule is read in: its own, else the city's; ScheduleError if unknown."""
    return zone(schedule.timezone or config.city.timezone)
