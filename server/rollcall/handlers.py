"""`/ws` handlers of the roll-call messages."""

from __future__ import annotations

from server.auth import Identity
from server.errors import RequestError
from server.rollcall.schedule import TargetError, resolve_sites
from server.rollcall.service import RollCallService, require_caller
from server.services import ClientSession
from signaling.rollcall import (
    RollCallAnswer,
    RollCallAnswerResult,
    RollCallCall,
    RollCallClose,
    RollCallExcuse,
    RollCallStart,
    RollCallStarted,
    RollCallSync,
)


def _identity(session: ClientSession) -> Identity:
    assert session.participant is not None
    return session.participant.identity


class RollCallHandlers:
    """The handlers, bound to the service."""

    def __init__(self, service: RollCallService) -> None:
        self.service = service

    async def start(self, session: ClientSession, message: RollCallStart) -> RollCallStarted:
        """`rollcall_start`."""
        identity = _identity(session)
        require_caller(identity)
        try:
            sites = resolve_sites(self.service.services.sites, self.service.services.config, sites=message.sites, group=message.group, subtree=message.subtree)
        except TargetError as exc:
            raise RequestError("bad_sites", str(exc)) from None
        room = message.room or (session.room.id if session.room is not None else None)
        rollcall = await self.service.begin(
            actor=identity.identity, caller_site=identity.site, sites=sites, mode=message.mode,
            window=message.window, grace=message.grace, title=message.title, room=room,
        )
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def answer(self, session: ClientSession, message: RollCallAnswer) -> RollCallAnswerResult:
        """`rollcall_answer`: the press of "到 Present"."""
        identity = _identity(session)
        rollcall = await self.service.answer(message.rollcall_id, site=identity.site, identity=identity.identity)
        result = rollcall.results[identity.site]
        return RollCallAnswerResult(id=message.id, rollcall_id=rollcall.id, site=identity.site,
                                    outcome=result.outcome, response_time=result.response_time)

    async def excuse(self, session: ClientSession, message: RollCallExcuse) -> RollCallStarted:
        """`rollcall_excuse`."""
        identity = _identity(session)
        require_caller(identity)
        rollcall = await self.service.excuse(message.rollcall_id, site=message.site, reason=message.reason, actor=identity.identity)
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def close(self, session: ClientSession, message: RollCallClose) -> RollCallStarted:
        """`rollcall_close`."""
        identity = _identity(session)
        require_caller(identity)
        rollcall = await self.service.finish(message.rollcall_id, actor=identity.identity)
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def sync(self, session: ClientSession, message: RollCallSync) -> None:
        """`rollcall_sync`: every open call to the session's site, again (after a reconnect)."""
        site = _identity(session).site
        now = self.service.clock.now()
        for rollcall in list(self.service.active.values()):
            result = rollcall.results.get(site)
            if result is None or result.called_at is None or result.settled or result.deadline is None:
                continue
            session.send(RollCallCall(rollcall_id=rollcall.id, title=rollcall.title, site=site, deadline=result.deadline,
                                      window=rollcall.window, now=now, state="calling" if result.window_open else "overdue"))
