"""The day's board: every reporting site's state, from the duty book. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.duty.domain import STATUS_NAMES, DutyBook, DutyReport, Note, Roster, Status


@dataclass(frozen=True)
class BoardRow:
    """One reporting site on the board of a day."""

    site: str
    status: Status
    report: DutyReport | None
    roster: Roster | None
    reminders: tuple[Note, ...]
    escalated_to: str | None


def board(book: DutyBook, sites: Iterable[str], day: str, now: float, deadline: float) -> list[BoardRow]:
    """The day's state of every reporting site, in the order given."""
    passed = book.deadlines.get(day)
    return [
        BoardRow(site, book.status(site, day, now, deadline), book.reports.get((site, day)), book.rosters.get((site, day)),
                 book.reminders.get((site, day), ()), passed.escalated.get(site) if passed else None)
        for site in sites
    ]


def totals(rows: Iterable[BoardRow]) -> dict[str, int]:
    """How many sites are in each state."""
    counts = dict.fromkeys(STATUS_NAMES, 0)
    for row in rows:
        counts[row.status] += 1
    return counts
