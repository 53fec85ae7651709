"""Incident reports (信息报送) as a pure state machine: initial report, follow-ups, review, forwarding, closing. No I/O.

The one-hour rule: an initial report is due within 60 minutes of the incident's time; one that goes
up later (filed late, or signed off late: 审核签发, server/command/review.py) is flagged late and
counted against the filing site.

Up the chain: a report that goes up reaches the filing site's parent; that level may forward the
incident to its own parent with a comment (转报), and so on up the chain, without re-typing it.
Levels above see the incident once it has reached them, and only the reports that went up.
Events:
- `report_filed` {incident_id, report_kind, summary, casualties, photo, site, draft, urgent, signed;
  initial: occurred_at, place, type, chain}
- `report_revised` {incident_id, report_id, summary, casualties, photo, site, comment}
- `report_returned` {incident_id, report_id, site, comment}; `report_signed` {incident_id, report_id, site}
- `report_forwarded` {incident_id, site, comment}: the level the incident last reached sends it one up.
- `incident_closed` {incident_id, site}; `incident_reopened` {incident_id, site, reason}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from server.command.domain import Event, IllegalTransition
from server.command.review import REVIEW_KINDS, Report, Step, Version, filed, returned, revised, signed

INITIAL_REPORT_WINDOW: Final[float] = 3600.0
CLOCK_SKEW: Final[float] = 300.0  # an incident time a little in the future is a clock, not a lie
REPORT_KINDS: Final[frozenset[str]] = frozenset({"report_filed", "incident_closed", "incident_reopened", "report_forwarded", *REVIEW_KINDS})
INCIDENT_TYPES: Final[dict[str, tuple[str, str]]] = {
    "flood": ("洪涝", "Flood"),
    "fire": ("火灾", "Fire"),
    "geological": ("地质灾害", "Landslide"),
    "traffic": ("交通事故", "Traffic accident"),
    "hazmat": ("危化品", "Hazardous materials"),
    "weather": ("气象灾害", "Severe weather"),
    "other": ("其他", "Other"),
}


@dataclass(frozen=True)
class Incident:
    """An incident's current state: where and what, the chain above it and how far up it has gone, its reports."""

    id: str
    site: str
    chain: tuple[str, ...]
    occurred_at: float
    place: str
    type: str
    reports: tuple[Report, ...]
    status: str = "open"
    late: bool = False
    last_event: str = ""
    reached: tuple[str, ...] = ()  # the levels above the incident has reached, nearest first
    forwards: tuple[Step, ...] = ()

    @property
    def latest(self) -> Report:
        """The most recent report."""
        return self.reports[-1]

    @property
    def sent(self) -> bool:
        """Whether the initial report has gone up."""
        return self.reports[0].sent

    def report(self, report_id: str) -> Report:
        """The report filed as event `report_id`; IllegalTransition if there is none."""
        for report in self.reports:
            if report.event_id == report_id:
                return report
        raise IllegalTransition("unknown_report", f"incident {self.id!r} has no report {report_id!r}")

    def sent_reports(self) -> tuple[Report, ...]:
        """The reports that went up: what the levels above see."""
        return tuple(r for r in self.reports if r.sent)

    def forward_to(self) -> str | None:
        """The next level up the chain the incident could be forwarded to, or None."""
        return self.chain[len(self.reached)] if self.sent and len(self.reached) < len(self.chain) else None


def _casualties(event: Event) -> dict[str, int]:
    raw = event.data.get("casualties", {})
    if not isinstance(raw, dict):
        raise IllegalTransition("bad_casualties", "casualties must be a mapping of counts")
    out: dict[str, int] = {}
    for key in ("dead", "injured", "missing"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise IllegalTransition("bad_casualties", f"casualties.{key} must be a whole number ≥ 0")
        out[key] = value
    return out


def apply_report(incidents: dict[str, Incident], event: Event) -> Incident:
    """The incident after `event`, or IllegalTransition; `incidents` is not modified."""
    incident_id = event.text("incident_id")
    current = incidents.get(incident_id)
    if event.kind == "report_filed" and event.text("report_kind") == "initial":
        if current is not None:
            raise IllegalTransition("duplicate_incident", f"incident {incident_id!r} already has an initial report")
        return _went_up(_initial(event, incident_id))
    step = _STEPS.get(event.kind)
    if step is None:
        raise IllegalTransition("unknown_event", f"unknown report event {event.kind!r}")
    if current is None:
        raise IllegalTransition("unknown_incident", f"no incident {incident_id!r}")
    return replace(step(current, event), last_event=event.id)


def _version(event: Event) -> Version:
    summary = event.text("summary").strip()
    if not summary:
        raise IllegalTransition("empty_summary", "a report needs a summary")
    photo = event.data.get("photo")
    return Version(event.id, event.t, event.actor, summary, _casualties(event), photo if isinstance(photo, str) else None)


def _initial(event: Event, incident_id: str) -> Incident:
    version = _version(event)
    occurred = event.data.get("occurred_at")
    if not isinstance(occurred, (int, float)) or isinstance(occurred, bool):
        raise IllegalTransition("bad_time", "an initial report needs the incident's time")
    if occurred > event.t + CLOCK_SKEW:
        raise IllegalTransition("bad_time", "the incident's time lies in the future")
    place, itype = event.text("place").strip(), event.text("type")
    if not place:
        raise IllegalTransition("empty_place", "an initial report needs a place")
    if itype not in INCIDENT_TYPES:
        raise IllegalTransition("bad_type", f"type must be one of {sorted(INCIDENT_TYPES)}")
    chain = event.data.get("chain", [])
    return Incident(
        id=incident_id,
        site=event.text("site"),
        chain=tuple(c for c in chain if isinstance(c, str)) if isinstance(chain, list) else (),
        occurred_at=float(occurred),
        place=place,
        type=itype,
        reports=(filed(event, "initial", version),),
        last_event=event.id,
    )


def _went_up(incident: Incident) -> Incident:
    """Once the initial report has gone up: late decided (for good) by when it did, the parent reached."""
    first = incident.reports[0]
    if not first.sent or first.sent_at is None or incident.reached:
        return incident
    late = first.sent_at - incident.occurred_at > INITIAL_REPORT_WINDOW
    reports = (replace(first, late=late), *incident.reports[1:])
    return replace(incident, reports=reports, late=late, reached=incident.chain[:1])


def _open(incident: Incident) -> None:
    if incident.status == "closed":
        raise IllegalTransition("already_closed", f"incident {incident.id!r} is closed")


def _own(incident: Incident, event: Event) -> None:
    if event.text("site") != incident.site:
        raise IllegalTransition("not_your_incident", f"only site {incident.site!r} reports on incident {incident.id!r}")


def _above(incident: Incident, event: Event) -> None:
    site = event.text("site")
    if site != incident.site and site not in incident.reached:
        raise IllegalTransition("not_your_incident", f"site {site!r} may not change incident {incident.id!r}")


def _followup(current: Incident, event: Event) -> Incident:
    if event.text("report_kind") != "followup":
        raise IllegalTransition("bad_report_kind", "a report is 'initial' or 'followup'")
    _open(current)
    _own(current, event)
    return replace(current, reports=(*current.reports, filed(event, "followup", _version(event))))


def _reviewed(current: Incident, event: Event) -> Incident:
    """A step of a report's review (revised, returned, signed), by the filing site."""
    _own(current, event)
    report = current.report(event.text("report_id"))
    if event.kind == "report_revised":
        _open(current)
        changed = revised(report, event, _version(event))
    elif event.kind == "report_returned":
        changed = returned(report, event)
    else:
        changed = signed(report, event)
    reports = tuple(changed if r.event_id == report.event_id else r for r in current.reports)
    return _went_up(replace(current, reports=reports))


def _forwarded(current: Incident, event: Event) -> Incident:
    """转报: the level the incident last reached sends it on to its own parent, with a comment."""
    site, to = event.text("site"), current.forward_to()
    if not current.reached or site != current.reached[-1]:
        raise IllegalTransition("not_your_incident", f"site {site!r} may not forward incident {current.id!r}")
    if to is None:
        raise IllegalTransition("nowhere_to_forward", f"incident {current.id!r} is at the top of its chain")
    comment = event.text("comment").strip()
    if not comment:
        raise IllegalTransition("comment_required", "forwarding a report needs a comment")
    step = Step(event.id, event.t, event.actor, site, "forwarded", comment, to=to)
    return replace(current, reached=(*current.reached, to), forwards=(*current.forwards, step))


def _closed(current: Incident, event: Event) -> Incident:
    if current.status == "closed":
        raise IllegalTransition("already_closed", f"incident {current.id!r} is already closed")
    _above(current, event)
    return replace(current, status="closed")


def _reopened(current: Incident, event: Event) -> Incident:
    if current.status != "closed":
        raise IllegalTransition("not_closed", f"incident {current.id!r} is open")
    _above(current, event)
    if not event.text("reason").strip():
        raise IllegalTransition("empty_reason", "reopening an incident needs a reason")
    return replace(current, status="open")


_STEPS: Final = {
    "report_filed": _followup,
    "report_revised": _reviewed,
    "report_returned": _reviewed,
    "report_signed": _reviewed,
    "report_forwarded": _forwarded,
    "incident_closed": _closed,
    "incident_reopened": _reopened,
}


@dataclass
class Board:
    """Every incident folded from the log, with late initial reports counted per site."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    late_by_site: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def fold(self, event: Event) -> Incident | None:
        """Apply one event; on refusal remember (event id, code) and return None."""
        try:
            incident = apply_report(self.incidents, event)
        except IllegalTransition as exc:
            self.skipped.append((event.id, exc.code))
            return None
        before = self.incidents.get(incident.id)
        if incident.late and (before is None or not before.late):
            self.late_by_site[incident.site] = self.late_by_site.get(incident.site, 0) + 1
        self.incidents[incident.id] = incident
        return incident

    def visible_to(self, site: str) -> list[Incident]:
        """Incidents filed by `site` or that reached it up the chain, newest first."""
        found = [i for i in self.incidents.values() if i.site == site or site in i.reached]
        return sorted(found, key=lambda i: i.latest.at, reverse=True)
