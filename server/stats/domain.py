"""Statistics of a period (统计): counts per day and per site, from the other domains' folds. Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from server.command.domain import Directive
from server.duty.domain import STATUS_NAMES, DutyBook
from server.rollcall.domain import OUTCOMES, RollCall


def duty_by_day(book: DutyBook, sites: Sequence[str], days: Sequence[str], deadline: Callable[[str], float],
                now: float) -> dict[str, list[int]]:
    """For each duty report state, how many sites were in it on each day."""
    counts = {status: [0] * len(days) for status in STATUS_NAMES}
    for index, day in enumerate(days):
        due = deadline(day)
        for site in sites:
            counts[book.status(site, day, now, due)][index] += 1
    return counts


@dataclass(frozen=True)
class DirectiveStats:
    """Directives issued in the period: how many, to how many recipients, answered in time or not."""

    issued: int
    recipients: int
    acknowledged_in_time: int
    overdue: int

    @property
    def in_time_rate(self) -> float | None:
        """The share of recipients that answered in time (None without recipients)."""
        return self.acknowledged_in_time / self.recipients if self.recipients else None


def directive_stats(directives: Iterable[Directive], start: float, end: float) -> DirectiveStats:
    """Counts over the directives issued in [start, end)."""
    issued = recipients = in_time = overdue = 0
    for d in directives:
        if not start <= d.issued_at < end:
            continue
        issued += 1
        for r in d.recipients.values():
            recipients += 1
            overdue += bool(r.overdue)
            answered = r.read_at if d.cls == "reference" else r.acknowledged_at
            if answered is not None and (d.ack_by is None or answered <= d.ack_by):
                in_time += 1
    return DirectiveStats(issued, recipients, in_time, overdue)


def rollcall_outcomes(rollcalls: Iterable[RollCall], start: float, end: float) -> dict[str, int]:
    """How many called sites had each outcome, over the roll-calls started in [start, end)."""
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    for rc in rollcalls:
        if start <= rc.started_at < end:
            for result in rc.results.values():
                counts[result.outcome] += 1
    return counts
