"""Each domain's folded state as searchable records, only those a viewer may see. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from server.auth import Identity
from server.command.domain import Directive
from server.command.reports import Incident
from server.command.views import Viewer, incident_concerns, may_see_directive
from server.duty.domain import DutyReport
from server.duty.views import sees_board, sees_site
from server.rollcall.domain import LABELS, RollCall, SiteResult
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
        own = i.site == identity.site
        if not own and not (i.sent and (sees_board(identity) or incident_concerns(i, viewer))):
            continue  # a draft not gone up stays with its site (审核签发)
        text = " ".join(r.summary for r in (i.reports if own else i.sent_reports()))
        yield Record("incident", i.id, (i.site,), i.occurred_at, i.place, text, f"/command/incidents/{i.id}")


def duty_records(reports: Iterable[DutyReport], identity: Identity, tree: SiteTree) -> Iterator[Record]:
    """Duty reports of the sites the viewer sees: every version's text, and the leader's comments."""
    for report in reports:
        if not sees_site(identity, report.site, tree):
            continue
        text = " ".join([*(v.text for v in report.versions), *(c.text for c in report.comments)])
        yield Record("duty", f"{report.site}:{report.day}", (report.site,), report.versions[-1].at,
                     f"{report.day} 值班报告", text, f"/duty/sites/{report.site}?day={report.day}")


def rollcall_records(rollcalls: Iterable[RollCall], identity: Identity, names: Mapping[str, str]) -> Iterator[Record]:
    """Roll-calls with each called site's result (its outcome, response time, excuse): every site's for
    callers, else only the viewer's own site's result of the roll-calls that called it."""
    caller = identity.can("moderate") or identity.can("issue")
    for rc in rollcalls:
        if not caller and identity.site not in rc.results:
            continue
        shown = rc.results.values() if caller else [rc.results[identity.site]]
        text = " ".join(result_text(r, names) for r in shown)
        yield Record("rollcall", rc.id, tuple(rc.results) if caller else (identity.site,), rc.started_at, rc.title, text,
                     f"/rollcalls/{rc.id}/report")


def result_text(result: SiteResult, names: Mapping[str, str]) -> str:
    """One called site's result as searchable text."""
    zh, en = LABELS.get(result.outcome, (result.outcome, result.outcome))
    seconds = f" {result.response_time:.0f}秒" if result.response_time is not None else ""
    reason = f" {result.reason}" if result.reason else ""
    return f"{names.get(result.site, result.site)} {zh} {en}{seconds}{reason};"


@dataclass(frozen=True)
class ControlEntry:
    """One event of a room's control log (mute, remove, floor, chair, layout, a refused join)."""

    room: str
    event_id: str
    at: float
    actor: str
    action: str
    target: str


def control_records(entries: Iterable[ControlEntry], identity: Identity, room_names: Mapping[str, str],
                    people: Mapping[str, str]) -> Iterator[Record]:
    """Room control history: all of it for those who chair or command (grant moderate or issue), else what
    was done by or to the viewer."""
    chair = identity.can("moderate") or identity.can("issue")
    for e in entries:
        if not chair and identity.identity not in (e.actor, e.target):
            continue
        title, text = control_text(e, room_names, people)
        yield Record("control", f"{e.room}/{e.event_id}", (), e.at, title, text, f"/rooms/{e.room}")


def control_text(e: ControlEntry, room_names: Mapping[str, str], people: Mapping[str, str]) -> tuple[str, str]:
    """A control event's title (room and action) and text (who did it to whom)."""
    zh, en = CONTROL_ACTIONS.get(e.action, (e.action, e.action))
    return f"{room_names.get(e.room, e.room)} {zh} {en}", f"{people.get(e.actor, e.actor)} → {people.get(e.target, e.target)}"


CONTROL_ACTIONS: Final[dict[str, tuple[str, str]]] = {
    "mute": ("静音", "Muted"), "unmute": ("解除静音", "Unmuted"), "mute_all": ("全体静音", "Muted all"),
    "allow_self_unmute": ("允许自行解除静音", "Self-unmute allowed"), "self_unmuted": ("自行解除静音", "Unmuted self"),
    "remove": ("移出会场", "Removed"), "lock": ("锁定会场", "Locked"), "end": ("结束会商", "Ended"),
    "raise_hand": ("举手", "Raised hand"), "grant_floor": ("准予发言", "Floor granted"), "chair_taken": ("主持", "Chair taken"),
    "hand_over": ("移交主持", "Chair handed over"), "layout": ("切换布局", "Layout"), "spotlight": ("主画面", "Spotlight"),
    "join_refused": ("拒绝入会", "Join refused"), "refused": ("操作被拒", "Action refused"),
}
