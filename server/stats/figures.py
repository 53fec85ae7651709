"""Per-site figures of a period (统计): how fast and how reliably each site answers. Pure functions, no I/O.

For every site and a period [start, end) (its days for the duty reports):
- directives received (as a recipient, issued in the period, not cancelled), the median time from
  issue to acknowledgement (to reading, for a reference directive), the share answered by the
  deadline (or at all, without one), and for mandatory ones the share with feedback;
- incident reports whose initial report went up in the period, and the share of them late;
- roll-calls that called the site (started in the period): the share answered (on time or late,
  with video) and the median response time;
- duty reports due (days whose deadline has passed, or already filed): the share filed on time.
`total` adds every site up (its medians over all the sites' samples).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from server.command.domain import Directive
from server.command.reports import Incident
from server.duty.domain import DutyBook
from server.rollcall.domain import RollCall

PRESENT = ("answered", "late")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class _Tally:
    """What is counted for one site while the records are read."""

    received: int = 0
    on_time: int = 0
    ack_times: list[float] = field(default_factory=list)
    feedback_due: int = 0
    fed_back: int = 0
    incidents: int = 0
    incidents_late: int = 0
    called: int = 0
    present: int = 0
    responses: list[float] = field(default_factory=list)
    duty_due: int = 0
    duty_on_time: int = 0
    duty_late: int = 0


@dataclass(frozen=True)
class SiteFigures:
    """One site's figures of a period (or the total of all sites, `site` "")."""

    site: str
    received: int
    on_time: int
    ack_median: float | None
    feedback_due: int
    fed_back: int
    incidents: int
    incidents_late: int
    called: int
    present: int
    response_median: float | None
    duty_due: int
    duty_on_time: int
    duty_late: int

    @property
    def on_time_rate(self) -> float | None:
        """Directives answered by their deadline, of those received."""
        return _rate(self.on_time, self.received)

    @property
    def feedback_rate(self) -> float | None:
        """Mandatory directives with feedback, of those received."""
        return _rate(self.fed_back, self.feedback_due)

    @property
    def late_rate(self) -> float | None:
        """Initial incident reports that went up late, of those that went up."""
        return _rate(self.incidents_late, self.incidents)

    @property
    def attendance(self) -> float | None:
        """Roll-calls answered on camera (on time or late), of those that called the site."""
        return _rate(self.present, self.called)

    @property
    def duty_compliance(self) -> float | None:
        """Duty reports filed on time, of those due."""
        return _rate(self.duty_on_time, self.duty_due)


def _figures(site: str, t: _Tally) -> SiteFigures:
    return SiteFigures(site, t.received, t.on_time, _median(t.ack_times), t.feedback_due, t.fed_back, t.incidents,
                       t.incidents_late, t.called, t.present, _median(t.responses), t.duty_due, t.duty_on_time, t.duty_late)


@dataclass(frozen=True)
class Records:
    """What the figures are read from: the other domains' folds."""

    directives: Iterable[Directive]
    incidents: Iterable[Incident]
    rollcalls: Iterable[RollCall]
    book: DutyBook
    reporting: Sequence[str]
    deadline: Callable[[str], float]
    now: float


Slot = Callable[[str, float], tuple[object, ...]]  # (site, when) -> the tallies it counts in (none, one or more)


def _directives(tallies: dict[object, _Tally], directives: Iterable[Directive], slot: Slot) -> None:
    for d in directives:
        if d.status == "cancelled":
            continue
        for r in d.recipients.values():
            keys = slot(r.site, d.issued_at)
            if not keys:
                continue
            answered = r.read_at if d.cls == "reference" else r.acknowledged_at
            for key in keys:
                tally = tallies[key]
                tally.received += 1
                if answered is not None:
                    tally.ack_times.append(max(0.0, answered - d.issued_at))
                    tally.on_time += d.ack_by is None or answered <= d.ack_by
                if d.cls == "mandatory":
                    tally.feedback_due += 1
                    tally.fed_back += bool(r.feedback)


def _incidents(tallies: dict[object, _Tally], incidents: Iterable[Incident], slot: Slot) -> None:
    for i in incidents:
        sent_at = i.reports[0].sent_at if i.reports else None
        for key in () if sent_at is None else slot(i.site, sent_at):
            tallies[key].incidents += 1
            tallies[key].incidents_late += i.late


def _rollcalls(tallies: dict[object, _Tally], rollcalls: Iterable[RollCall], slot: Slot) -> None:
    for rc in rollcalls:
        for site, result in rc.results.items():
            if result.outcome in ("excused", "waiting", "calling"):
                continue  # an excused site, or one not called yet, owes nothing
            for key in slot(site, rc.started_at):
                tally = tallies[key]
                tally.called += 1
                if result.outcome in PRESENT:
                    tally.present += 1
                    if result.response_time is not None:
                        tally.responses.append(result.response_time)


def _duty(tallies: dict[object, _Tally], records: Records, days: Sequence[str],
          slot: Callable[[str, str], tuple[object, ...]]) -> None:
    deadlines = {day: records.deadline(day) for day in days}  # once a day, not once a site and day
    for site in records.reporting:
        for day, deadline in deadlines.items():
            keys = slot(site, day)
            if not keys:
                continue
            status = records.book.status(site, day, records.now, deadline)
            if status in ("filed", "late", "missing"):
                for key in keys:
                    tallies[key].duty_due += 1
                    tallies[key].duty_on_time += status == "filed"
                    tallies[key].duty_late += status == "late"


def _tally(tallies: dict[object, _Tally], records: Records, days: Sequence[str], slot: Slot,
           day_slot: Callable[[str, str], tuple[object, ...]]) -> None:
    _directives(tallies, records.directives, slot)
    _incidents(tallies, records.incidents, slot)
    _rollcalls(tallies, records.rollcalls, slot)
    _duty(tallies, records, days, day_slot)


def _sum(tallies: Iterable[_Tally]) -> _Tally:
    total = _Tally()
    for t in tallies:
        for name in ("received", "on_time", "feedback_due", "fed_back", "incidents", "incidents_late", "called", "present",
                     "duty_due", "duty_on_time", "duty_late"):
            setattr(total, name, getattr(total, name) + getattr(t, name))
        total.ack_times += t.ack_times
        total.responses += t.responses
    return total


def by_site(records: Records, sites: Sequence[str], days: Sequence[str], start: float, end: float) -> tuple[list[SiteFigures], SiteFigures]:
    """Each site's figures over [start, end) (its `days` for the duty reports), and their total."""
    per_site, total, _ = by_site_and_day(records, sites, days, [start], end)
    return per_site, total


def by_day(records: Records, sites: Sequence[str], days: Sequence[str], starts: Sequence[float], end: float) -> list[SiteFigures]:
    """The total of `sites` on each day (`starts` the start of each, `end` that of the day after): figures over time."""
    return by_site_and_day(records, sites, days, starts, end)[2]


def by_site_and_day(records: Records, sites: Sequence[str], days: Sequence[str], starts: Sequence[float],
                    end: float) -> tuple[list[SiteFigures], SiteFigures, list[SiteFigures]]:
    """Each site's figures, their total, and the total of each day (`starts` the start of each day, or only
    the period's), in one pass over the records."""
    tallies: dict[object, _Tally] = {site: _Tally() for site in sites}
    daily = len(starts) == len(days)
    tallies.update({("day", n): _Tally() for n in range(len(days) if daily else 0)})
    wanted = set(sites)

    def slot(site: str, t: float) -> tuple[object, ...]:
        if site not in wanted or not starts[0] <= t < end:
            return ()
        return (site, ("day", bisect.bisect_right(starts, t) - 1)) if daily else (site,)

    index = {day: n for n, day in enumerate(days)}
    _tally(tallies, records, days, slot,
           lambda site, day: ((site, ("day", index[day])) if daily else (site,)) if site in wanted else ())
    total = _figures("", _sum(tallies[site] for site in sites))
    return [_figures(site, tallies[site]) for site in sites], total, [_figures("", tallies[("day", n)]) for n in range(len(days) if daily else 0)]
