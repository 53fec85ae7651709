"""The command channel's `/ws` handlers: each turns one client message into one stored event.

Who acts is the session's verified identity; a site answers only for itself; only the "issue"
grant issues, updates or cancels. Every refusal is a wire error and is itself logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from server.command.domain import AlreadyDone, IllegalTransition, owes, pending
from server.command.photo_owners import effective_owners
from server.command.photos import PhotoStore
from server.command.replay import Replays, Request
from server.command.service import Caller, CommandService, new_id
from server.errors import RequestError
from server.times import deadline_problem, past_time_problem
from server.outbox import Outbox
from server.services import ClientSession, Services
from server.store import EventIdInvalid, event_id_key
from signaling.command import (
    CommandOk,
    CommandSubscribe,
    DirectiveAcknowledge,
    DirectiveCancel,
    DirectiveRemind,
    DirectiveFeedback,
    DirectiveIssue,
    DirectiveRead,
    DirectiveRemind,
    DirectiveUpdate,
    IncidentClose,
    IncidentReopen,
    ReportFile,
)
from signaling.messages import ServerMessage


MAX_TITLE: Final[int] = 200
MAX_TEXT: Final[int] = 10_000
MAX_RECIPIENTS: Final[int] = 20_000


def caller_of(session: Any) -> Caller:
    """The verified caller behind a session (room `/ws` or console socket)."""
    participant = session.participant
    if participant is None:
        raise RequestError("not_joined", "join first")
    return Caller(participant.identity, session.id, session.remote)


class CommandHandlers:
    """The handlers, bound to one command service and photo store."""

    def __init__(self, service: CommandService, photos: PhotoStore) -> None:
        self.service = service
        self.photos = photos
        self.replays = Replays(service)

    def register(self, services: Services) -> None:
        """Put every handler in the one dispatch table."""
        services.handlers.update({
            CommandSubscribe: self.subscribe,
            DirectiveIssue: self.issue,
            DirectiveUpdate: self.update,
            DirectiveCancel: self.cancel,
            DirectiveRemind: self.remind,
            DirectiveRead: self.read,
            DirectiveAcknowledge: self.acknowledge,
            DirectiveFeedback: self.feedback,
            DirectiveRemind: self.remind,
            ReportFile: self.file_report,
            IncidentClose: self.close_incident,
            IncidentReopen: self.reopen_incident,
        })

    async def _record(self, caller: Caller, action: str, kind: str, data: Mapping[str, object]) -> str:
        try:
            event = await self.service.record(caller, kind, data)
        except IllegalTransition as exc:
            raise await self.service.refuse(caller, action, exc.code, exc.message) from None
        return event.id

    async def _require_issue(self, caller: Caller, action: str) -> None:
        if not caller.identity.can("issue"):
            raise await self.service.refuse(caller, action, "forbidden", f"{caller.identity.identity!r} lacks grant 'issue'")

    async def _own_site(self, caller: Caller, action: str, site: str | None) -> str:
        if site is not None and site != caller.identity.site:
            raise await self.service.refuse(
                caller, action, "not_your_site", f"{caller.identity.identity!r} answers for site {caller.identity.site!r}, not {site!r}")
        return caller.identity.site

    async def _checked_text(self, caller: Caller, action: str, field: str, value: str, limit: int) -> None:
        if len(value) > limit:
            raise await self.service.refuse(caller, action, "too_long", f"{field} exceeds {limit} characters")

    async def _photo(self, caller: Caller, action: str, photo: str | None) -> None:
        if photo is None:
            return
        if self.photos.path(photo) is None:
            raise await self.service.refuse(caller, action, "unknown_photo", f"no uploaded photo {photo!r}")
        # A photo belongs to the sites that uploaded it: another site's reference must not take it over.
        owners = effective_owners(self.photos.owners(photo), self.service.photo_refs.get(photo, []))
        if caller.identity.site not in owners:
            raise await self.service.refuse(
                caller, action, "not_your_photo", f"photo {photo!r} was uploaded by another site; upload your own")

    async def _checked_times(self, caller: Caller, action: str, deadlines: Mapping[str, float | None],
                             past: Mapping[str, float | None] | None = None) -> None:
        """Refuse a client's time no record should hold: a deadline over a year out, an event years ago."""
        now = self.service.clock.now()
        for check, times in ((deadline_problem, deadlines), (past_time_problem, past or {})):
            for name, value in times.items():
                problem = None if value is None else check(name, value, now)
                if problem:
                    raise await self.service.refuse(caller, action, "time_out_of_range", problem)

    async def issue(self, session: ClientSession, msg: DirectiveIssue) -> CommandOk:
        """`directive_issue`: store the directive, push it to the recipients' live sessions."""
        caller = caller_of(session)
        await self._require_issue(caller, "issue")
        await self._checked_text(caller, "issue", "title", msg.title, MAX_TITLE)
        await self._checked_text(caller, "issue", "body", msg.body, MAX_TEXT)
        await self._checked_times(caller, "issue", {"ack_by": msg.ack_by, "feedback_by": msg.feedback_by})
        recipients, unknown = self.service.sites.resolve(msg.sites, msg.subtrees)
        if unknown:
            raise await self.service.refuse(caller, "issue", "unknown_site", f"unknown sites: {', '.join(sorted(set(unknown))[:20])}")
        if not recipients:
            raise await self.service.refuse(caller, "issue", "no_recipients", "a directive needs at least one recipient site")
        if len(recipients) > MAX_RECIPIENTS:
            raise await self.service.refuse(caller, "issue", "too_many_recipients", f"at most {MAX_RECIPIENTS} recipients")
        directive_id = new_id("d")
        event_id = await self._record(caller, "issue", "issued", {
            "directive_id": directive_id, "cls": msg.cls, "title": msg.title, "body": msg.body,
            "recipients": recipients, "ack_by": msg.ack_by, "feedback_by": msg.feedback_by,
        })
        return CommandOk(id=msg.id, event_id=event_id, directive_id=directive_id)

    async def update(self, session: ClientSession, msg: DirectiveUpdate) -> CommandOk:
        """`directive_update`: the issuer changes text or deadlines, with a reason."""
        caller = caller_of(session)
        await self._require_issue(caller, "update")
        data: dict[str, object] = {"directive_id": msg.directive_id, "reason": msg.reason}
        for key in ("title", "body", "ack_by", "feedback_by"):
            value = getattr(msg, key)
            if value is not None:
                data[key] = value
        await self._checked_text(caller, "update", "title", msg.title or "", MAX_TITLE)
        await self._checked_text(caller, "update", "body", msg.body or "", MAX_TEXT)
        await self._checked_times(caller, "update", {"ack_by": msg.ack_by, "feedback_by": msg.feedback_by})
        event_id = await self._record(caller, "update", "updated", data)
        return CommandOk(id=msg.id, event_id=event_id, directive_id=msg.directive_id)

    async def cancel(self, session: ClientSession, msg: DirectiveCancel) -> CommandOk:
        """`directive_cancel`: the issuer withdraws a directive, with a reason."""
        caller = caller_of(session)
        await self._require_issue(caller, "cancel")
        event_id = await self._record(caller, "cancel", "cancelled", {"directive_id": msg.directive_id, "reason": msg.reason})
        return CommandOk(id=msg.id, event_id=event_id, directive_id=msg.directive_id)

    async def remind(self, session: ClientSession, msg: DirectiveRemind) -> CommandOk:
        """`directive_remind` (催办): the issuer reminds the listed recipients, or every one still owing a step."""
        caller = caller_of(session)
        await self._require_issue(caller, "remind")
        await self._checked_text(caller, "remind", "note", msg.note, MAX_TITLE)
        d = self.service.ledger.directives.get(msg.directive_id)
        sites = msg.sites or ([r.site for r in d.recipients.values() if owes(d, r)] if d is not None else [])
        if len(sites) > MAX_RECIPIENTS:
            raise await self.service.refuse(caller, "remind", "too_many", f"at most {MAX_RECIPIENTS} sites")
        event_id = await self._record(caller, "remind", "reminded", {"directive_id": msg.directive_id, "sites": sites, "note": msg.note})
        return CommandOk(id=msg.id, event_id=event_id, directive_id=msg.directive_id)

    async def read(self, session: ClientSession, msg: DirectiveRead) -> CommandOk:
        """`directive_read`: the caller's site read it (a repeat is a no-op)."""
        caller = caller_of(session)
        site = await self._own_site(caller, "read", msg.site)
        try:
            event = await self.service.record(caller, "read", {"directive_id": msg.directive_id, "site": site})
        except AlreadyDone:
            return CommandOk(id=msg.id, directive_id=msg.directive_id)
        except IllegalTransition as exc:
            raise await self.service.refuse(caller, "read", exc.code, exc.message) from None
        return CommandOk(id=msg.id, event_id=event.id, directive_id=msg.directive_id)

    async def acknowledge(self, session: ClientSession, msg: DirectiveAcknowledge) -> CommandOk:
        """`directive_acknowledge`: the caller's site acknowledges."""
        caller = caller_of(session)
        site = await self._own_site(caller, "acknowledge", msg.site)
        event_id = await self._record(caller, "acknowledge", "acknowledged", {"directive_id": msg.directive_id, "site": site})
        return CommandOk(id=msg.id, event_id=event_id, directive_id=msg.directive_id)

    async def feedback(self, session: ClientSession, msg: DirectiveFeedback) -> CommandOk:
        """`directive_feedback`: the caller's site reports back (text, photo, done or not)."""
        caller = caller_of(session)
        site = await self._own_site(caller, "feedback", msg.site)
        await self._checked_text(caller, "feedback", "text", msg.text, MAX_TEXT)
        await self._photo(caller, "feedback", msg.photo)
        event_id = await self._record(caller, "feedback", "feedback", {
            "directive_id": msg.directive_id, "site": site, "text": msg.text, "photo": msg.photo, "final": msg.final,
        })
        return CommandOk(id=msg.id, event_id=event_id, directive_id=msg.directive_id)

    async def file_report(self, session: ClientSession, msg: ReportFile) -> CommandOk:
        """`report_file`: an initial report opens an incident; a follow-up adds to one."""
        caller = caller_of(session)
        await self._checked_text(caller, "report", "summary", msg.summary, MAX_TEXT)
        await self._checked_text(caller, "report", "place", msg.place, MAX_TITLE)
        await self._checked_times(caller, "report", {}, {"occurred_at": msg.occurred_at})
        await self._photo(caller, "report", msg.photo)
        site = caller.identity.site
        data: dict[str, object] = {
            "summary": msg.summary, "photo": msg.photo, "site": site,
            "casualties": {"dead": msg.casualties.dead, "injured": msg.casualties.injured, "missing": msg.casualties.missing},
        }
        if msg.incident_id is None:
            incident_id = new_id("i")
            data.update(incident_id=incident_id, report_kind="initial", occurred_at=msg.occurred_at,
                        place=msg.place, type=msg.incident_type, chain=[s.id for s in self.service.sites.ancestors(site)])
        else:
            incident_id = msg.incident_id
            data.update(incident_id=incident_id, report_kind="followup")
        data.update(self.service.review_flags(caller.identity, incident_id, msg.incident_type, msg.urgent))
        event_id = await self._record(caller, "report", "report_filed", data)
        return CommandOk(id=msg.id, event_id=event_id, incident_id=incident_id)

    async def close_incident(self, session: ClientSession, msg: IncidentClose) -> CommandOk:
        """`incident_close`: the filing site or a level above closes an incident."""
        caller = caller_of(session)
        event_id = await self._record(caller, "close", "incident_closed", {"incident_id": msg.incident_id, "site": caller.identity.site})
        return CommandOk(id=msg.id, event_id=event_id, incident_id=msg.incident_id)

    async def reopen_incident(self, session: ClientSession, msg: IncidentReopen) -> CommandOk:
        """`incident_reopen`: the filing site or a level above opens a closed incident again, saying why."""
        caller = caller_of(session)
        await self._checked_text(caller, "reopen", "reason", msg.reason, MAX_TITLE)
        event_id = await self._record(caller, "reopen", "incident_reopened",
                                      {"incident_id": msg.incident_id, "site": caller.identity.site, "reason": msg.reason})
        return CommandOk(id=msg.id, event_id=event_id, incident_id=msg.incident_id)

    async def subscribe(self, session: Any, msg: CommandSubscribe) -> ServerMessage | None:
        """`command_subscribe`: live updates from now on, and everything after `after` that concerns us.

        The replay runs in the background (server/command/replay.py) and ends with `command_synced`;
        the socket keeps serving its other requests meanwhile.
        """
        caller = caller_of(session)
        if msg.after is not None:
            try:
                event_id_key(msg.after)
            except EventIdInvalid as exc:
                raise await self.service.refuse(caller, "subscribe", "bad_event_id", str(exc)) from None
        listener = getattr(session, "listener", None) or self.service.listeners.session(session)
        listener.reads = True
        ws = getattr(session, "ws", None)
        outbox = Outbox.of(ws) if isinstance(ws, web.WebSocketResponse) else None
        return self.replays.start(session, Request(listener, outbox, msg.after, msg.id))
