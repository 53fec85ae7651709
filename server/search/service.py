"""Search on this node: every domain's folded records, indexed once, as the viewer may see them."""

from __future__ import annotations

from server.accountability.archive import RollCallArchive
from server.auth import Identity
from server.command.service import CommandService
from server.control.room_control import control_stream
from server.duty.service import DutyService
from server.search.domain import Hit, Record, search, terms
from server.search.index import SearchIndex
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

    async def refresh(self) -> None:
        """Bring the index up to what this node has folded (only what changed is normalised again)."""
        if self.index.moved("command", self.command.last_event_id):
            self.index.take_command(self.command.ledger.directives.values(), self.command.board.incidents.values())
        if self.index.moved("duty", self.duty.book.last_event_id):
            self.index.take_duty(self.duty.book.reports.values())
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
                   start: float | None, end: float | None) -> list[Hit]:
        """The viewer's records matching the query and the filters, best first."""
        wanted = terms(query)
        if not wanted:
            return []
        await self.refresh()
        wants = set(kinds) or {"directive", "incident", "duty", "rollcall", "control"}
        index = self.index
        records: list[Record] = []
        if "directive" in wants:
            records += directive_records(index.directives.holding(wanted), identity, self.tree)
        if "incident" in wants:
            records += incident_records(index.incidents.holding(wanted), identity)
        if "duty" in wants:
            records += duty_records(index.duty.holding(wanted), identity, self.tree)
        if "rollcall" in wants:
            records += rollcall_records(index.rollcalls.holding(wanted), identity, self.site_names)
        if "control" in wants:
            records += control_records(index.control.holding(wanted), identity, self.room_names, self.people)
        return search(records, query, kinds=kinds, site=site, start=start, end=end)
