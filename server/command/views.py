"""What each viewer may see of the command state, as wire shapes. Pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from server.command.domain import DIRECTIVE_KINDS, Directive, Event, Recipient
from server.command.reports import Incident
from server.sites import SiteTree
from signaling.command import (
    Casualties,
    CommandEvent,
    DirectiveInfo,
    EventInfo,
    FeedbackInfo,
    IncidentInfo,
    RecipientInfo,
    ReportInfo,
)

# What an event's data may show to viewers: never the session or address (those stay in the log).
_PRIVATE = frozenset({"session", "remote", "recipients"})


@dataclass(frozen=True)
class Viewer:
    """Who looks: an identity string, its site, and whether it may issue."""

    identity: str
    site: str
    can_issue: bool = False


def directive_info(d: Directive) -> DirectiveInfo:
    """A directive's header."""
    return DirectiveInfo(
        id=d.id, cls=d.cls, title=d.title, body=d.body, issuer=d.issuer, issuer_site=d.issuer_site,  # type: ignore[arg-type]
        issued_at=d.issued_at, ack_by=d.ack_by, feedback_by=d.feedback_by, status=d.status,
        version=d.version, reason=d.reason, recipient_count=len(d.recipients),
    )


def recipient_info(r: Recipient) -> RecipientInfo:
    """One recipient's progress."""
    return RecipientInfo(
        site=r.site, stage=r.stage, delivered_at=r.delivered_at, read_at=r.read_at,
        acknowledged_at=r.acknowledged_at, done_at=r.done_at, overdue=list(r.overdue),
        feedback=[FeedbackInfo(event_id=f.event_id, at=f.at, actor=f.actor, text=f.text, photo=f.photo, final=f.final)
                  for f in r.feedback],
        reminders=list(r.reminders),
    )


def incident_info(i: Incident, viewer: Viewer) -> IncidentInfo:
    """An incident with its reports as `viewer` may see it: the filing site sees its drafts, the levels above
    only the reports that went up."""
    reports = i.reports if viewer.site == i.site else i.sent_reports()
    return IncidentInfo(
        id=i.id, site=i.site, chain=list(i.chain), reached=list(i.reached), occurred_at=i.occurred_at,
        place=i.place, type=i.type, status=i.status, late=i.late,  # type: ignore[arg-type]
        reports=[ReportInfo(event_id=r.event_id, kind=r.kind, at=r.at, actor=r.actor, summary=r.summary,  # type: ignore[arg-type]
                            casualties=Casualties(**r.casualties), photo=r.photo, late=r.late, state=r.state,
                            urgent=r.urgent, reviewed=r.reviewed, versions=len(r.versions)) for r in reports],
    )


def event_info(event: Event) -> EventInfo:
    """The public part of an event."""
    data = {k: v for k, v in event.data.items() if k not in _PRIVATE}
    return EventInfo(
        id=event.id, kind=event.kind, at=event.t, actor=event.actor, site=event.text("site"),
        directive_id=event.text("directive_id") or None, incident_id=event.text("incident_id") or None, data=data,
    )


def touched_sites(d: Directive, event: Event) -> list[str]:
    """The recipient sites an event changed."""
    if event.kind == "issued":
        return list(d.recipients)
    if event.kind in ("delivered", "reminded"):
        sites = event.data.get("sites")
        return [s for s in sites if isinstance(s, str) and s in d.recipients] if isinstance(sites, list) else []
    site = event.text("site")
    return [site] if site in d.recipients and event.kind not in ("updated", "cancelled") else []


def directive_concerns(d: Directive, event: Event, viewer: Viewer, tree: SiteTree,
                       delivered: frozenset[str] | None = None) -> list[str] | None:
    """The recipient sites `viewer` sees change with this event, or None if it does not concern them.

    `delivered` may carry a `delivered` event's sites as a set, computed once per fan-out.
    """
    if viewer.identity == d.issuer:
        return touched_sites(d, event)
    if viewer.site in d.recipients:
        if event.kind in ("issued", "updated", "cancelled"):
            return [viewer.site]
        if event.kind in ("delivered", "reminded"):
            sites = delivered if delivered is not None else frozenset(touched_sites(d, event))
            if viewer.site in sites:
                return [viewer.site]
        elif event.kind == "reminded":
            return [viewer.site] if viewer.site in touched_sites(d, event) else None
        elif event.text("site") == viewer.site:
            return [viewer.site]
    if event.kind == "overdue":
        site = event.text("site")
        if tree.parent_id(site) == viewer.site:
            return [site]
    return None


def may_see_directive(d: Directive, viewer: Viewer, tree: SiteTree) -> list[str] | None:
    """The recipients `viewer` may see of a directive (all for its issuer), or None for no access."""
    if viewer.identity == d.issuer:
        return list(d.recipients)
    if viewer.site in d.recipients:
        return [viewer.site]
    children = [s for s, r in d.recipients.items() if r.overdue and tree.parent_id(s) == viewer.site]
    return children or None


def directive_message(d: Directive, event: Event, sites: list[str]) -> CommandEvent:
    """The push for one directive event showing `sites`."""
    return CommandEvent(
        event=event_info(event),
        directive=directive_info(d),
        recipients={s: recipient_info(d.recipients[s]) for s in sites},
    )


def incident_concerns(i: Incident, viewer: Viewer) -> bool:
    """Whether the viewer's site filed the incident or the incident has reached it up the chain."""
    return viewer.site == i.site or viewer.site in i.reached


def incident_event_concerns(i: Incident, event: Event, viewer: Viewer) -> bool:
    """Whether the viewer may see this event of an incident: a step of a report's review that has not
    gone up (a draft filed or revised, a return) stays with the filing site."""
    if not incident_concerns(i, viewer):
        return False
    if viewer.site == i.site or event.kind not in ("report_filed", "report_revised", "report_returned"):
        return True
    report_id = event.id if event.kind == "report_filed" else event.text("report_id")
    return any(r.event_id == report_id and r.sent for r in i.reports)


def is_directive_event(kind: str) -> bool:
    """Whether an event kind belongs to directives (else to incident reports)."""
    return kind in DIRECTIVE_KINDS
