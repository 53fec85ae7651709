"""Roll-calls for the periodic review and the statistics, each folded from its log once it is over.

A closed roll-call no longer changes, so it is folded once and kept; the index of roll-calls is read
on from where it was last read. Only roll-calls still open are asked again (the live ones from the
roll-call service's memory, those of another node from their log). A year of daily roll-calls is
then read once per node, not at every page.
"""

from __future__ import annotations

import logging

from server.rollcall.domain import FoldError, RollCall, RollCallId, fold
from server.rollcall.service import INDEX_STREAM, RollCallService, read_all, stream_of

logger = logging.getLogger(__name__)


class RollCallArchive:
    """Every roll-call of the log, oldest first: closed ones folded once, open ones read fresh."""

    def __init__(self, rollcalls: RollCallService) -> None:
        self.rollcalls = rollcalls
        self._ids: list[str] = []
        self._known: set[str] = set()
        self._closed: dict[str, RollCall] = {}
        self._index_read: str | None = None

    async def all(self) -> list[RollCall]:
        """The roll-calls of the log in the order they were created."""
        services = self.rollcalls.services
        for event in await read_all(services, INDEX_STREAM, after=self._index_read):
            self._index_read = event.id
            rollcall_id = event.data.get("id")
            if event.kind == "created" and isinstance(rollcall_id, str) and rollcall_id not in self._known:
                self._known.add(rollcall_id)
                self._ids.append(rollcall_id)
        found: list[RollCall] = []
        for rollcall_id in self._ids:
            rollcall = self._closed.get(rollcall_id) or self.rollcalls.active.get(RollCallId(rollcall_id)) \
                or await self._fold(rollcall_id)
            if rollcall is not None:
                found.append(rollcall)
        return found

    async def _fold(self, rollcall_id: str) -> RollCall | None:
        events = await read_all(self.rollcalls.services, stream_of(rollcall_id))
        if not events:
            return None
        try:
            rollcall = fold(events)
        except FoldError as exc:
            logger.warning("roll-call not folded id=%s why=%s", rollcall_id, exc)
            return None
        if not rollcall.open:
            self._closed[rollcall_id] = rollcall
        return rollcall
