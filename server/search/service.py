"""Search on this node: every domain's folded records, as the viewer may see them."""

from __future__ import annotations

from itertools import chain

from server.auth import Identity
from server.command.service import CommandService
from server.duty.service import DutyService
from server.rollcall.service import RollCallService
from server.search.domain import Hit, search
from server.search.records import directive_records, duty_records, incident_records, rollcall_records
from server.sites import SiteTree

ROLLCALLS = 2000  # the most recent roll-calls searched


class SearchService:
    """Reads the command, duty and roll-call state of this node (every node folds the same logs)."""

    def __init__(self, command: CommandService, duty: DutyService, rollcalls: RollCallService, tree: SiteTree) -> None:
        self.command = command
        self.duty = duty
        self.rollcalls = rollcalls
        self.tree = tree

    async def find(self, identity: Identity, query: str, *, kinds: list[str], site: str | None,
                   start: float | None, end: float | None) -> list[Hit]:
        """The viewer's records matching the query and the filters, newest first."""
        wants = set(kinds)
        rollcalls = await self.rollcalls.history(limit=ROLLCALLS) if not wants or "rollcall" in wants else []
        records = chain(
            directive_records(self.command.ledger.directives.values(), identity, self.tree),
            incident_records(self.command.board.incidents.values(), identity),
            duty_records(self.duty.book.reports.values(), identity, self.tree),
            rollcall_records(rollcalls, identity),
        )
        return search(records, query, kinds=kinds, site=site, start=start, end=end)
