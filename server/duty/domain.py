"""The daily duty report (每日值班报告) as a pure fold: rosters, filings, the deadline, reminders. No I/O.

Events of the `duty` stream, each with its time `at` from the server's clock:
- `roster_set` {site, day, officer, leader}: who is on duty at a site that day (latest wins).
- `handover` {site, day, text}: a shift handover note.
- `report_filed` {site, day, officer, leader, all_well, incidents, text, deadline, signed}: a version
  of the site's report for the day; `signed` when the duty leader (grant `sign`) filed it or no
  sign-off is configured, else a draft for the leader to review.
- `report_returned` {site, day, comment}: the leader sends the draft back with a comment.
- `report_signed` {site, day}: the leader signs the latest draft off (审核签发): it goes up.
  The first time a report goes up decides for good whether it was late: after the deadline the
  report names, or after the day's deadline was recorded as passed.
- `deadline_passed` {day, deadline, missing, escalated}: the day's deadline, recorded once, with
  the sites whose report had not gone up (reminded) and the parent each was escalated to.
- `reminded` {site, day, note}: a reminder (催办) to a site that has not filed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from server.duty.days import BadDay, parse_day
from server.store import StoredEvent, event_id_key

Status = Literal["filed", "late", "missing", "draft", "pending"]
STATUS_NAMES: Final[dict[str, tuple[str, str]]] = {
    "filed": ("已报", "Filed"),
    "late": ("迟报", "Late"),
    "missing": ("未报", "Missing"),
    "draft": ("待签发", "Awaiting sign-off"),
    "pending": ("待报", "Not yet filed"),
}
ReportState = Literal["draft", "returned", "signed"]
MAX_NAME: Final[int] = 64
MAX_TEXT: Final[int] = 4000
MAX_INCIDENTS: Final[int] = 50


class DutyRefused(Exception):
    """An event the duty book does not take; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AlreadyRecorded(DutyRefused):
    """The step was taken already (the day's deadline recorded by another node)."""


@dataclass(frozen=True)
class Roster:
    """Who is on duty at a site on a day."""

    site: str
    day: str
    officer: str
    leader: str
    set_by: str
    at: float


@dataclass(frozen=True)
class Note:
    """A shift handover note or a reminder: who, when, what."""

    event_id: str
    at: float
    actor: str
    text: str


@dataclass(frozen=True)
class Filing:
    """One version of a duty report."""

    event_id: str
    at: float
    actor: str
    officer: str
    leader: str
    all_well: bool
    incidents: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class DutyReport:
    """A site's report for a day: every version kept; whether it went up late decided the first time it did."""

    site: str
    day: str
    deadline: float
    versions: tuple[Filing, ...]
    state: ReportState = "draft"
    went_up_at: float | None = None
    late: bool = False
    signed_by: str = ""
    signed_version: int = 0  # the number (from 1) of the version that went up last; 0 for none
    comments: tuple[Note, ...] = ()  # the leader's, when returning a draft

    @property
    def latest(self) -> Filing:
        """The version in force."""
        return self.versions[-1]

    @property
    def filed_at(self) -> float:
        """When the first version came in."""
        return self.versions[0].at


@dataclass(frozen=True)
class DeadlinePassed:
    """A day's deadline as recorded: who had filed nothing and where each was escalated."""

    day: str
    at: float
    deadline: float
    missing: tuple[str, ...]
    escalated: dict[str, str]


@dataclass
class DutyBook:
    """Everything folded from the duty stream so far."""

    rosters: dict[tuple[str, str], Roster] = field(default_factory=dict)
    reports: dict[tuple[str, str], DutyReport] = field(default_factory=dict)
    deadlines: dict[str, DeadlinePassed] = field(default_factory=dict)
    reminders: dict[tuple[str, str], tuple[Note, ...]] = field(default_factory=dict)
    handovers: dict[tuple[str, str], tuple[Note, ...]] = field(default_factory=dict)
    last_event_id: str | None = None

    def went_up(self, site: str, day: str) -> bool:
        """Whether the site's report of the day has gone up (signed off)."""
        report = self.reports.get((site, day))
        return report is not None and report.went_up_at is not None

    def status(self, site: str, day: str, now: float, deadline: float) -> Status:
        """filed, late, missing (nothing by the deadline) or pending (nothing yet, still time)."""
        report = self.reports.get((site, day))
        if report is not None and report.went_up_at is not None:
            return "late" if report.late else "filed"
        if day in self.deadlines or now >= deadline:
            return "missing"
        return "pending" if report is None else "draft"


def _text(data: Mapping[str, object], key: str, limit: int, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise DutyRefused("bad_field", f"{key} must be text")
    value = value.strip()
    if required and not value:
        raise DutyRefused("missing_field", f"{key} is required")
    if len(value) > limit:
        raise DutyRefused("too_long", f"{key} exceeds {limit} characters")
    return value


def _number(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DutyRefused("bad_field", f"{key} must be a number, not {value!r}")
    return float(value)


def _site_day(data: Mapping[str, object]) -> tuple[str, str]:
    site = _text(data, "site", MAX_NAME)
    day = _text(data, "day", 10)
    try:
        parse_day(day)
    except BadDay as exc:
        raise DutyRefused("bad_day", str(exc)) from None
    return site, day


def _strings(data: Mapping[str, object], key: str, limit: int) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise DutyRefused("bad_field", f"{key} must be a list of ids")
    if len(value) > limit:
        raise DutyRefused("too_many", f"{key} holds more than {limit}")
    return tuple(dict.fromkeys(value))


def _roster(book: DutyBook, event: StoredEvent) -> None:
    site, day = _site_day(event.data)
    officer, leader = _text(event.data, "officer", MAX_NAME), _text(event.data, "leader", MAX_NAME)
    book.rosters[(site, day)] = Roster(site, day, officer, leader, event.actor, _number(event.data, "at"))


def _handover(book: DutyBook, event: StoredEvent) -> None:
    site, day = _site_day(event.data)
    note = Note(event.id, _number(event.data, "at"), event.actor, _text(event.data, "text", MAX_TEXT))
    book.handovers[(site, day)] = (*book.handovers.get((site, day), ()), note)


def _filed(book: DutyBook, event: StoredEvent) -> None:
    site, day = _site_day(event.data)
    all_well = event.data.get("all_well")
    if not isinstance(all_well, bool):
        raise DutyRefused("bad_field", "all_well must be true or false")
    incidents = _strings(event.data, "incidents", MAX_INCIDENTS)
    text = _text(event.data, "text", MAX_TEXT, required=False)
    if all_well and incidents:
        raise DutyRefused("all_well_with_incidents", "a report of 平安 all well links no incidents")
    if not all_well and not incidents and not text:
        raise DutyRefused("nothing_reported", "report 平安 all well, or the day's incidents or what happened")
    signed = event.data.get("signed", True)
    if not isinstance(signed, bool):
        raise DutyRefused("bad_field", "signed must be true or false")
    at, deadline = _number(event.data, "at"), _number(event.data, "deadline")
    filing = Filing(event.id, at, event.actor, _text(event.data, "officer", MAX_NAME), _text(event.data, "leader", MAX_NAME),
                    all_well, incidents, text)
    current = book.reports.get((site, day)) or DutyReport(site, day, deadline, ())
    report = replace(current, versions=(*current.versions, filing), state="draft")
    book.reports[(site, day)] = _went_up(book, report, event.actor, at) if signed else report


def _went_up(book: DutyBook, report: DutyReport, actor: str, at: float) -> DutyReport:
    """The report with its latest version signed off; late decided now if it never went up before."""
    first = report.went_up_at is None
    return replace(report, state="signed", signed_by=actor, signed_version=len(report.versions),
                   went_up_at=at if first else report.went_up_at,
                   late=(at > report.deadline or report.day in book.deadlines) if first else report.late)


def _draft(book: DutyBook, event: StoredEvent) -> DutyReport:
    site, day = _site_day(event.data)
    report = book.reports.get((site, day))
    if report is None:
        raise DutyRefused("no_report", f"{site} has no report of {day}")
    if report.state != "draft":
        raise DutyRefused("not_a_draft", f"the report of {site} on {day} is {report.state}, not a draft to review")
    return report


def _signed(book: DutyBook, event: StoredEvent) -> None:
    report = _draft(book, event)
    book.reports[(report.site, report.day)] = _went_up(book, report, event.actor, _number(event.data, "at"))


def _returned(book: DutyBook, event: StoredEvent) -> None:
    report = _draft(book, event)
    note = Note(event.id, _number(event.data, "at"), event.actor, _text(event.data, "comment", MAX_TEXT))
    book.reports[(report.site, report.day)] = replace(report, state="returned", comments=(*report.comments, note))


def _deadline(book: DutyBook, event: StoredEvent) -> None:
    day = _text(event.data, "day", 10)
    try:
        parse_day(day)
    except BadDay as exc:
        raise DutyRefused("bad_day", str(exc)) from None
    if day in book.deadlines:
        raise AlreadyRecorded("deadline_recorded", f"the deadline of {day} is recorded already")
    escalated = event.data.get("escalated", {})
    if not isinstance(escalated, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in escalated.items()):
        raise DutyRefused("bad_field", "escalated must map sites to their parents")
    book.deadlines[day] = DeadlinePassed(day, _number(event.data, "at"), _number(event.data, "deadline"),
                                         _strings(event.data, "missing", 100_000), dict(escalated))


def _reminded(book: DutyBook, event: StoredEvent) -> None:
    site, day = _site_day(event.data)
    report = book.reports.get((site, day))
    if report is not None and report.went_up_at is not None:
        raise DutyRefused("already_filed", f"{site} has filed its report of {day}")
    note = Note(event.id, _number(event.data, "at"), event.actor, _text(event.data, "note", MAX_TEXT, required=False))
    book.reminders[(site, day)] = (*book.reminders.get((site, day), ()), note)


_HANDLERS = {
    "roster_set": _roster,
    "handover": _handover,
    "report_filed": _filed,
    "report_signed": _signed,
    "report_returned": _returned,
    "deadline_passed": _deadline,
    "reminded": _reminded,
}


def check(book: DutyBook, event: StoredEvent) -> None:
    """Raise DutyRefused unless the book would take `event` now; the book is not changed."""
    probe = DutyBook(dict(book.rosters), dict(book.reports), dict(book.deadlines), dict(book.reminders),
                     dict(book.handovers), book.last_event_id)
    apply(probe, event)


def apply(book: DutyBook, event: StoredEvent) -> None:
    """Fold one event into the book (in place), or raise DutyRefused and change nothing."""
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        raise DutyRefused("unknown_event", f"unknown duty event {event.kind!r}")
    handler(book, event)


def fold(events: Iterable[StoredEvent], book: DutyBook | None = None) -> tuple[DutyBook, list[tuple[str, str]]]:
    """The book after `events` (ids already folded are passed over), and (event id, why) of each refused one."""
    book = book if book is not None else DutyBook()
    skipped: list[tuple[str, str]] = []
    for event in events:
        if book.last_event_id is not None and event_id_key(event.id) <= event_id_key(book.last_event_id):
            continue
        try:
            apply(book, event)
        except DutyRefused as exc:
            skipped.append((event.id, f"{exc.code}: {exc.message}"))
        book.last_event_id = event.id
    return book, skipped
