"""Each domain's folded state as searchable records, only those a viewer may see. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from server.auth import Identity
from server.command.domain import Directive
from server.command.reports import Incident
from server.command.views import Viewer, incident_concerns, may_see_directive
from server.duty.domain import DutyReport
from server.duty.views import sees_board, sees_site
from server.rollcall.domain import RollCall
from server.search.domain import Record
from server.sites import SiteTree


def directive_records(directives: Iterable[Directive], identity: Identity, tree: SiteTree) -> Iterator[Record]:
    """Directives the viewer issued, received, or sees overdue below it; with every feedback's text."""
    viewer = Viewer(identity.identity, identity.site, identity.can("issue"))
    for d in directives:
        visible = may_see_directive(d, viewer, tree)
        if visible is None:
            continue
        feedback = " ".join(f.text for s in visible for f in d.recipients[s].feedback)
        yield Record("directive", d.id, (d.issuer_site, *visible), d.issued_at, d.title, f"{d.body} {feedback} {d.reason}",
                     f"/command/directives/{d.id}")


def incident_records(incidents: Iterable[Incident], identity: Identity) -> Iterator[Record]:
    """Incident reports of the viewer's site and the sites below it (all of them for the city's view)."""
    viewer = Viewer(identity.identity, identity.site, identity.can("issue"))
    for i in incidents:
        if not (sees_board(identity) or incident_concerns(i, viewer)):
            continue
        text = " ".join(r.summary for r in i.reports)
        yield Record("incident", i.id, (i.site,), i.occurred_at, i.place, text, f"/command/incidents/{i.id}")


def duty_records(reports: Iterable[DutyReport], identity: Identity, tree: SiteTree) -> Iterator[Record]:
    """Duty reports of the sites the viewer sees: every version's text, and the leader's comments."""
    for report in reports:
        if not sees_site(identity, report.site, tree):
            continue
        text = " ".join([*(v.text for v in report.versions), *(c.text for c in report.comments)])
        yield Record("duty", f"{report.site}:{report.day}", (report.site,), report.versions[-1].at,
                     f"{report.day} 值班报告", text, f"/duty/sites/{report.site}?day={report.day}")


def rollcall_records(rollcalls: Iterable[RollCall], identity: Identity) -> Iterator[Record]:
    """Roll-calls (their titles and excuse reasons): all for callers, else those that called the viewer's site."""
    caller = identity.can("moderate") or identity.can("issue")
    for rc in rollcalls:
        if not caller and identity.site not in rc.results:
            continue
        reasons = " ".join(r.reason for r in rc.results.values() if r.reason)
        yield Record("rollcall", rc.id, tuple(rc.results), rc.started_at, rc.title, reasons, f"/rollcalls/{rc.id}/report")
