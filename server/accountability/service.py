"""The accountability records of a period, gathered from the folds of the other domains on this node."""

from __future__ import annotations

import dataclasses
import zoneinfo
from collections.abc import Awaitable, Callable

from server.accountability.archive import RollCallArchive
from server.accountability.domain import Item, Standing, directive_items, duty_items, incident_items, ranking, rollcall_items
from server.command.service import CommandService
from server.duty.days import BadDay, deadline_of, parse_day, shift_day
from server.duty.service import DutyService
from server.errors import RequestError
from server.rollcall.service import RollCallService

MAX_DAYS = 366


class AccountabilityService:
    """Reads the command, duty and roll-call state of this node; every node folds the same logs."""

    def __init__(self, command: CommandService, duty: DutyService, rollcalls: RollCallService,
                 recording_at: Callable[[str, float], Awaitable[str | None]] | None = None) -> None:
        self.command = command
        self.duty = duty
        self.rollcalls = rollcalls
        self.archive = RollCallArchive(rollcalls)
        # The player of the recording of a room at a moment (server/recording/), if it was recorded.
        self.recording_at = recording_at

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone days are read in (the duty report's)."""
        return self.duty.zone

    def period(self, first: str, last: str) -> list[str]:
        """The days from `first` to `last`, both included; RequestError for a bad or too long period."""
        try:
            start, end = parse_day(first), parse_day(last)
        except BadDay as exc:
            raise RequestError("bad_day", str(exc)) from None
        if end < start:
            raise RequestError("bad_period", f"the period ends ({last}) before it starts ({first})")
        if (end - start).days >= MAX_DAYS:
            raise RequestError("bad_period", f"a period is at most {MAX_DAYS} days")
        return [shift_day(first, n) for n in range((end - start).days + 1)]

    async def items(self, days: list[str]) -> list[Item]:
        """Every item of the period, oldest first."""
        start = deadline_of(days[0], "00:00", self.zone)
        end = deadline_of(shift_day(days[-1], 1), "00:00", self.zone)
        rollcalls = await self.archive.all()
        found = [
            *duty_items(self.duty.book, days),
            *incident_items(self.command.board.incidents.values(), start, end),
            *directive_items(self.command.ledger.directives.values(), start, end),
            *rollcall_items(rollcalls, start, end),
        ]
        if self.recording_at is not None:
            found = [dataclasses.replace(item, recording=await self.recording_at(item.room, item.at)) if item.room else item
                     for item in found]
        return sorted(found, key=lambda item: (item.at, item.site, item.kind))

    def ranking(self, items: list[Item]) -> list[Standing]:
        """The reporting sites ranked by their items."""
        return ranking(items, self.duty.reporting)
