"""Incident reports (信息报送) as a pure state machine: initial report, follow-ups, closing. No I/O.

The one-hour rule: an initial report is due within 60 minutes of the incident's time; a later one
is flagged late and counted against the filing site.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from server.command.domain import Event, IllegalTransition

INITIAL_REPORT_WINDOW: Final[float] = 3600.0
CLOCK_SKEW: Final[float] = 300.0  # an incident time a little in the future is a clock, not a lie
REPORT_KINDS: Final[frozenset[str]] = frozenset({"report_filed", "incident_closed", "incident_reopened"})
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
class Report:
    """One filed report (the initial one or a follow-up)."""

    event_id: str
    kind: str
    at: float
    actor: str
    summary: str
    casualties: dict[str, int]
    photo: str | None
    late: bool


@dataclass(frozen=True)
class Incident:
    """An incident's current state: where and what, the chain it goes up, its reports in order."""

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

    @property
    def latest(self) -> Report:
        """The most recent report."""
        return self.reports[-1]


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
    if event.kind == "incident_closed":
        if current is None:
            raise IllegalTransition("unknown_incident", f"no incident {incident_id!r}")
        if current.status == "closed":
            raise IllegalTransition("already_closed", f"incident {incident_id!r} is already closed")
        site = event.text("site")
        if site != current.site and site not in current.chain:
            raise IllegalTransition("not_your_incident", f"site {site!r} may not close incident {incident_id!r}")
        return replace(current, status="closed", last_event=event.id)
    if event.kind == "incident_reopened":
        if current is None:
            raise IllegalTransition("unknown_incident", f"no incident {incident_id!r}")
        if current.status != "closed":
            raise IllegalTransition("not_closed", f"incident {incident_id!r} is open")
        site = event.text("site")
        if site != current.site and site not in current.chain:
            raise IllegalTransition("not_your_incident", f"site {site!r} may not reopen incident {incident_id!r}")
        if not event.text("reason").strip():
            raise IllegalTransition("empty_reason", "reopening an incident needs a reason")
        return replace(current, status="open", last_event=event.id)
    if event.kind != "report_filed":
        raise IllegalTransition("unknown_event", f"unknown report event {event.kind!r}")
    kind = event.text("report_kind")
    summary = event.text("summary").strip()
    if not summary:
        raise IllegalTransition("empty_summary", "a report needs a summary")
    photo = event.data.get("photo")
    base = dict(event_id=event.id, at=event.t, actor=event.actor, summary=summary,
                casualties=_casualties(event), photo=photo if isinstance(photo, str) else None)
    if kind == "initial":
        if current is not None:
            raise IllegalTransition("duplicate_incident", f"incident {incident_id!r} already has an initial report")
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
        late = event.t - float(occurred) > INITIAL_REPORT_WINDOW
        chain = event.data.get("chain", [])
        return Incident(
            id=incident_id,
            site=event.text("site"),
            chain=tuple(c for c in chain if isinstance(c, str)) if isinstance(chain, list) else (),
            occurred_at=float(occurred),
            place=place,
            type=itype,
            reports=(Report(kind="initial", late=late, **base),),  # type: ignore[arg-type]
            late=late,
            last_event=event.id,
        )
    if kind != "followup":
        raise IllegalTransition("bad_report_kind", "a report is 'initial' or 'followup'")
    if current is None:
        raise IllegalTransition("unknown_incident", f"no incident {incident_id!r} to follow up")
    if current.status == "closed":
        raise IllegalTransition("already_closed", f"incident {incident_id!r} is closed")
    if event.text("site") != current.site:
        raise IllegalTransition("not_your_incident", f"only site {current.site!r} reports on incident {incident_id!r}")
    report = Report(kind="followup", late=False, **base)  # type: ignore[arg-type]
    return replace(current, reports=(*current.reports, report), last_event=event.id)


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
        if incident.id not in self.incidents and incident.late:
            self.late_by_site[incident.site] = self.late_by_site.get(incident.site, 0) + 1
        self.incidents[incident.id] = incident
        return incident

    def visible_to(self, site: str) -> list[Incident]:
        """Incidents filed by `site` or passing through it up the chain, newest first."""
        found = [i for i in self.incidents.values() if i.site == site or site in i.chain]
        return sorted(found, key=lambda i: i.latest.at, reverse=True)
