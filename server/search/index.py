"""What search reads, normalised once: each record's whole text, kept until the record changes.

Normalising every record's text at every query costs seconds on a province's year of records; here
each record's whole text (what a viewer who sees everything would see) is normalised when it first
appears or changes (its last event moved), and a query only looks for its parts in those strings.
Only the records holding every part are then turned into what this viewer may see (server/search/
records.py) and matched again, so a viewer's hits are exactly as if every record had been read,
and never hold what the viewer may not see. A viewer's record is built from whole pieces of the
text indexed here, joined by spaces, and a query's parts hold no spaces: nothing the viewer's
record holds is missing from the indexed text.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from server.command.domain import Directive
from server.command.reports import Incident
from server.duty.domain import DutyReport
from server.rollcall.domain import RollCall
from server.search.domain import normalize
from server.search.records import ControlEntry, result_text

T = TypeVar("T")


@dataclass
class Shelf(Generic[T]):
    """One kind's records: key -> (what it was at, when, its normalised whole text, the record's source).

    For a query the texts are searched as one string (joined by NUL) with `str.find`, which runs in C
    and jumps from one record holding the query's longest part to the next: a common word over fifty
    thousand duty reports costs milliseconds, not a Python step per record."""

    entries: dict[str, tuple[object, float, str, T]] = field(default_factory=dict)
    _order: list[tuple[object, float, str, T]] | None = None
    _blob: str = ""
    _starts: list[int] = field(default_factory=list)

    def put(self, key: str, marker: object, at: float, source: T, text: Callable[[], Iterable[str]]) -> None:
        """Keep a source's text (asked for only then), normalised again only if its marker moved."""
        held = self.entries.get(key)
        if held is None or held[0] != marker:
            self.entries[key] = (marker, at, normalize(" ".join(text())), source)
            self._order = None
        elif held[3] is not source:
            self.entries[key] = (marker, at, held[2], source)
            self._order = None

    def _compiled(self) -> list[tuple[object, float, str, T]]:
        if self._order is None:
            self._order = list(self.entries.values())
            self._blob = "\0".join(entry[2] for entry in self._order)
            self._starts, position = [], 0
            for entry in self._order:
                self._starts.append(position)
                position += len(entry[2]) + 1
        return self._order

    def holding(self, wanted: list[str], start: float | None = None, end: float | None = None) -> Iterator[tuple[int, float, T]]:
        """(0 if it holds the query as one phrase else 2, when, source) of the sources whose whole text holds
        every part, within [start, end) if given."""
        order = self._compiled()
        blob, starts = self._blob, self._starts
        spaced, joined = " ".join(wanted), "".join(wanted)
        longest = max(wanted, key=len)
        position = blob.find(longest)
        while position != -1:
            n = bisect.bisect_right(starts, position) - 1
            _, at, text, source = order[n]
            if (start is None or at >= start) and (end is None or at < end) and all(t in text for t in wanted):
                yield (0 if spaced in text or joined in text else 2), at, source
            position = blob.find(longest, starts[n + 1]) if n + 1 < len(starts) else -1


def directive_text(d: Directive) -> list[str]:
    """A directive's whole searchable text: title, body, every feedback, the reason of its last change."""
    return [d.title, d.body, *(f.text for r in d.recipients.values() for f in r.feedback), d.reason]


def incident_text(i: Incident) -> list[str]:
    """An incident's whole searchable text: the place and every report's summary."""
    return [i.place, *(r.summary for r in i.reports)]


def duty_text(report: DutyReport) -> list[str]:
    """A duty report's whole searchable text: its title, every version's text, the leader's comments."""
    return [f"{report.day} 值班报告", *(v.text for v in report.versions), *(c.text for c in report.comments)]


def rollcall_text(rc: RollCall, names: Mapping[str, str]) -> list[str]:
    """A roll-call's whole searchable text: its title and every called site's result."""
    return [rc.title, *(result_text(r, names) for r in rc.results.values())]


@dataclass
class SearchIndex:
    """The normalised texts of every kind, brought up to date before each query."""

    directives: Shelf[Directive] = field(default_factory=Shelf)
    incidents: Shelf[Incident] = field(default_factory=Shelf)
    duty: Shelf[DutyReport] = field(default_factory=Shelf)
    rollcalls: Shelf[RollCall] = field(default_factory=Shelf)
    control: Shelf[ControlEntry] = field(default_factory=Shelf)
    seen: dict[str, object] = field(default_factory=dict)  # domain -> the last event it was indexed at

    def moved(self, domain: str, last: object) -> bool:
        """Whether a domain's log moved since it was last indexed (and note where it is now)."""
        if self.seen.get(domain, ...) == last:
            return False
        self.seen[domain] = last
        return True

    def take_command(self, directives: Iterable[Directive], incidents: Iterable[Incident]) -> None:
        """Index what changed among the directives and incidents."""
        for d in directives:
            self.directives.put(d.id, d.last_event, d.issued_at, d, partial(directive_text, d))
        for i in incidents:
            self.incidents.put(i.id, i.last_event, i.occurred_at, i, partial(incident_text, i))

    def take_duty(self, reports: Iterable[DutyReport]) -> None:
        """Index what changed among the duty reports."""
        for r in reports:
            self.duty.put(f"{r.site}:{r.day}", (len(r.versions), len(r.comments), r.state), r.versions[-1].at, r, partial(duty_text, r))

    def take_rollcalls(self, rollcalls: Iterable[RollCall], names: Mapping[str, str]) -> None:
        """Index what changed among the roll-calls (with every site's result)."""
        for rc in rollcalls:
            self.rollcalls.put(rc.id, rc.last_event_id, rc.started_at, rc, partial(rollcall_text, rc, names))

    def take_control(self, entries: Iterable[ControlEntry], texts: Iterable[list[str]]) -> None:
        """Index new room control events (they never change)."""
        for entry, text in zip(entries, texts):
            self.control.put(f"{entry.room}/{entry.event_id}", 0, entry.at, entry, partial(list, text))
