"""Accountability records (迟报、漏报、未签收、缺席): derived from the other domains' folds, as pure functions.

Each item names a site, what it failed at, when, and where the evidence is (a page of the record it
comes from). Nothing here is stored: the directives, incident reports, duty reports and roll-calls
are the records; an item is what they say about a site in a period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from server.command.domain import Directive
from server.command.reports import Incident
from server.duty.domain import DutyBook
from server.rollcall.domain import RollCall

KINDS: Final[dict[str, tuple[str, str]]] = {
    "duty_missing": ("值班报告漏报", "Duty report missing"),
    "duty_late": ("值班报告迟报", "Duty report late"),
    "incident_late": ("首报超时", "Initial report late"),
    "directive_ack": ("指令逾期未签收", "Directive not acknowledged in time"),
    "directive_feedback": ("指令逾期未反馈", "Directive feedback not in time"),
    "rollcall_absent": ("点名缺席", "Roll-call absent"),
    "rollcall_no_video": ("点名无视频", "Roll-call: no video"),
}


@dataclass(frozen=True)
class Item:
    """One failure of one site, with a link to its evidence."""

    site: str
    kind: str
    at: float
    title: str
    evidence: str  # a path on this server
    room: str | None = None  # the room it happened in (a roll-call's), where a recording may show it
    recording: str | None = None  # the player at that moment, when the room was being recorded


def within(at: float | None, start: float, end: float) -> bool:
    """Whether `at` lies in [start, end)."""
    return at is not None and start <= at < end


def duty_items(book: DutyBook, days: Iterable[str]) -> list[Item]:
    """Missing duty reports (at the recorded deadline) and late ones, on the given days: a site missing at the
    deadline that filed later counts once, as late."""
    wanted = set(days)
    items: list[Item] = []
    for day in sorted(wanted):
        passed = book.deadlines.get(day)
        if passed is None:
            continue
        for site in passed.missing:
            if book.went_up(site, day):
                continue  # filed after the deadline: the late item stands for it
            items.append(Item(site, "duty_missing", passed.deadline, f"{day} 值班报告 duty report", f"/duty/sites/{site}?day={day}"))
    for (site, day), report in book.reports.items():  # once over the reports, not once per day
        if day in wanted and report.late and report.went_up_at is not None:
            items.append(Item(site, "duty_late", report.went_up_at, f"{day} 值班报告 duty report", f"/duty/sites/{site}?day={day}"))
    return items


def incident_items(incidents: Iterable[Incident], start: float, end: float) -> list[Item]:
    """Initial incident reports filed later than the one-hour rule allows."""
    return [Item(i.site, "incident_late", i.reports[0].at, f"{i.place}: {i.reports[0].summary[:60]}", f"/command/incidents/{i.id}")
            for i in incidents if i.late and i.reports and within(i.reports[0].at, start, end)]


def directive_items(directives: Iterable[Directive], start: float, end: float) -> list[Item]:
    """Recipients marked overdue on an acknowledgement or a feedback, by deadline."""
    items: list[Item] = []
    for d in directives:
        for r in d.recipients.values():
            for obligation, deadline in (("acknowledge", d.ack_by), ("feedback", d.feedback_by)):
                if obligation in r.overdue and deadline is not None and start <= deadline < end:
                    kind = "directive_ack" if obligation == "acknowledge" else "directive_feedback"
                    items.append(Item(r.site, kind, deadline, d.title, f"/command/directives/{d.id}"))
    return items


def rollcall_items(rollcalls: Iterable[RollCall], start: float, end: float) -> list[Item]:
    """Sites absent from a roll-call, or present without video."""
    items: list[Item] = []
    for rc in rollcalls:
        if not within(rc.started_at, start, end):
            continue
        for site, result in rc.results.items():
            if result.outcome in ("absent", "no_video"):
                items.append(Item(site, f"rollcall_{result.outcome}", result.called_at or rc.started_at, rc.title,
                                  f"/rollcalls/{rc.id}/report", room=rc.room))
    return items


@dataclass(frozen=True)
class Standing:
    """A site's count of each kind of item in the period, and its place in the ranking (1 = fewest)."""

    site: str
    counts: Mapping[str, int]
    total: int
    rank: int


def ranking(items: Iterable[Item], sites: Iterable[str]) -> list[Standing]:
    """Every site of `sites` ranked by its number of items, fewest first (equal totals share a place)."""
    counts: dict[str, dict[str, int]] = {site: dict.fromkeys(KINDS, 0) for site in sites}
    for item in items:
        if item.site in counts and item.kind in KINDS:
            counts[item.site][item.kind] += 1
    ordered = sorted(counts.items(), key=lambda pair: sum(pair[1].values()))
    standings: list[Standing] = []
    for index, (site, by_kind) in enumerate(ordered):
        total = sum(by_kind.values())
        rank = standings[-1].rank if standings and standings[-1].total == total else index + 1
        standings.append(Standing(site, by_kind, total, rank))
    return standings
