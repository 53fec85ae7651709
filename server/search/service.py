"""Search on this node: every domain's folded records, indexed once, as the viewer may see them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypeVar

from server.accountability.archive import RollCallArchive
from server.auth import Identity
from server.command.service import CommandService
from server.control.room_control import control_stream
from server.duty.service import DutyService
from server.search.domain import KINDS, Hit, Record, normalize, rank, search, terms
from server.search.index import SearchIndex, Shelf
from server.search.records import (
    ControlEntry,
    control_records,
    control_text,
    directive_records,
    duty_records,
    incident_records,
    rollcall_records,
)
from server.services import Services

PAGE = 1000
T = TypeVar("T")
LIMIT = 50  # hits shown at most, best first
BATCH = 100  # candidates turned into a viewer's records at a time


class SearchService:
    """Reads the command, duty, roll-call and room control logs of this node (every node folds the same)."""

    def __init__(self, services: Services, command: CommandService, duty: DutyService, archive: RollCallArchive) -> None:
        self.services = services
        self.command = command
        self.duty = duty
        self.archive = archive
        self.tree = services.sites
        self.index = SearchIndex()
        self.site_names = {s.id: s.name_zh for s in services.config.sites}
        self.room_names = {r.id: r.name_zh for r in services.config.rooms}
        self.people = {u.username: u.display_name for u in services.config.users}
        self._control_read: dict[str, str | None] = {}
        self._refreshing = asyncio.Lock()

    async def warm(self) -> None:
        """Index everything folded so far (in the background after start-up: the first query is then quick)."""
        async with self._refreshing:
            await self.refresh()

    async def refresh(self) -> None:
        """Bring the index up to what this node has folded (only what changed is normalised again), a
        slice at a time so that a year of records indexed at once never holds the server up for long."""
        if self.index.moved("command", self.command.last_event_id):
            for directives in _slices(list(self.command.ledger.directives.values())):
                self.index.take_command(directives, ())
                await asyncio.sleep(0)
            for incidents in _slices(list(self.command.board.incidents.values())):
                self.index.take_command((), incidents)
                await asyncio.sleep(0)
        if self.index.moved("duty", self.duty.book.last_event_id):
            for reports in _slices(list(self.duty.book.reports.values())):
                self.index.take_duty(reports)
                await asyncio.sleep(0)
        self.index.take_rollcalls(await self.archive.all(), self.site_names)
        rooms = dict.fromkeys([*self.room_names, *self.services.rooms.rooms])
        for room in rooms:
            await self._read_control(room)

    async def _read_control(self, room: str) -> None:
        while True:
            page = await self.services.store.read_events(control_stream(room), after=self._control_read.get(room), limit=PAGE)
            entries = [ControlEntry(room, e.id, e.at, e.actor, e.kind, str(e.data.get("target") or "")) for e in page]
            self.index.take_control(entries, (list(control_text(e, self.room_names, self.people)) for e in entries))
            if page:
                self._control_read[room] = page[-1].id
            if len(page) < PAGE:
                return

    async def find(self, identity: Identity, query: str, *, kinds: list[str], site: str | None,
                   start: float | None, end: float | None, limit: int = LIMIT) -> list[Hit]:
        """The viewer's records matching the query and the filters, best first.

        The index says which records hold every part (and whether as one phrase) and when they were;
        those are then turned into what this viewer may see, best and newest first, a batch at a time,
        until `limit` hits are found: a common word over a year of records costs one pass over the
        index's strings, not a viewer's record for each of thousands."""
        wanted = terms(query)
        if not wanted:
            return []
        async with self._refreshing:  # one refresh at a time: a query never reads a half-updated index
            await self.refresh()
        wants = set(kinds) or set(KINDS)
        index = self.index
        shelves: list[tuple[str, Shelf[Any]]] = [("directive", index.directives), ("incident", index.incidents),
                                                 ("duty", index.duty), ("rollcall", index.rollcalls), ("control", index.control)]
        found: list[tuple[int, float, int, str, Any]] = []
        for kind, shelf in shelves:
            if kind in wants:
                found += ((level, -at, n, kind, source) for n, (level, at, source) in enumerate(shelf.holding(wanted, start, end)))
        found.sort(key=lambda entry: entry[:3])
        hits: list[Hit] = []
        for begin in range(0, len(found), BATCH):
            records = [r for _, _, _, kind, source in found[begin:begin + BATCH] for r in self._viewed(kind, source, identity)]
            hits += search(records, query, kinds=kinds, site=site, start=start, end=end, limit=limit - len(hits))
            if len(hits) >= limit:
                break
        return sorted(hits, key=lambda h: rank(h.record, normalize(f"{h.record.title} {h.record.text}"), wanted))

    def _viewed(self, kind: str, source: Any, identity: Identity) -> Iterator[Record]:
        """A record as this viewer may see it (nothing if it may not)."""
        if kind == "directive":
            return directive_records([source], identity, self.tree)
        if kind == "incident":
            return incident_records([source], identity)
        if kind == "duty":
            return duty_records([source], identity, self.tree)
        if kind == "rollcall":
            return rollcall_records([source], identity, self.site_names)
        return control_records([source], identity, self.room_names, self.people)


def _slices(items: list[T], size: int = 2000) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
