"""`/ws` handlers of the roll-call messages, and `install()`: the one line create_app calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.auth import Forbidden, Identity
from server.errors import RequestError
from server.rollcall.schedule import TargetError, resolve_sites
from server.rollcall.schedules import ScheduleRunner
from server.rollcall.service import RollCallService
from server.services import Services
from server.session import Session
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

ROLLCALLS = web.AppKey("rollcalls", RollCallService)
SCHEDULES = web.AppKey("rollcall_schedules", ScheduleRunner)


def require_caller(identity: Identity) -> None:
    """Only those who may moderate or issue directives may start, excuse or close roll-calls."""
    if not (identity.can("moderate") or identity.can("issue")):
        raise Forbidden(f"{identity.identity!r} may not call the roll (needs grant 'moderate' or 'issue')")


def _identity(session: Session) -> Identity:
    assert session.participant is not None
    return session.participant.identity


class RollCallHandlers:
    """The handlers, bound to the service."""

    def __init__(self, service: RollCallService) -> None:
        self.service = service

    async def start(self, session: Session, message: RollCallStart) -> RollCallStarted:
        """`rollcall_start`."""
        identity = _identity(session)
        require_caller(identity)
        try:
            sites = resolve_sites(self.service.services.config, sites=message.sites, group=message.group, subtree=message.subtree)
        except TargetError as exc:
            raise RequestError("bad_sites", str(exc)) from None
        room = message.room or (session.room.id if session.room is not None else None)
        rollcall = await self.service.begin(
            actor=identity.identity, caller_site=identity.site, sites=sites, mode=message.mode,
            window=message.window, grace=message.grace, title=message.title, room=room,
        )
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def answer(self, session: Session, message: RollCallAnswer) -> RollCallAnswerResult:
        """`rollcall_answer`: the press of "到 Present"."""
        identity = _identity(session)
        rollcall = await self.service.answer(message.rollcall_id, site=identity.site, identity=identity.identity)
        result = rollcall.results[identity.site]
        return RollCallAnswerResult(id=message.id, rollcall_id=rollcall.id, site=identity.site,
                                    outcome=result.outcome, response_time=result.response_time)

    async def excuse(self, session: Session, message: RollCallExcuse) -> RollCallStarted:
        """`rollcall_excuse`."""
        identity = _identity(session)
        require_caller(identity)
        rollcall = await self.service.excuse(message.rollcall_id, site=message.site, reason=message.reason, actor=identity.identity)
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def close(self, session: Session, message: RollCallClose) -> RollCallStarted:
        """`rollcall_close`."""
        identity = _identity(session)
        require_caller(identity)
        rollcall = await self.service.finish(message.rollcall_id, actor=identity.identity)
        return RollCallStarted(id=message.id, rollcall_id=rollcall.id, sites=rollcall.sites)

    async def sync(self, session: Session, message: RollCallSync) -> None:
        """`rollcall_sync`: every open call to the session's site, again (after a reconnect)."""
        site = _identity(session).site
        now = self.service.clock.now()
        for rollcall in list(self.service.active.values()):
            result = rollcall.results.get(site)
            if result is None or result.called_at is None or result.settled or result.deadline is None:
                continue
            session.send(RollCallCall(rollcall_id=rollcall.id, title=rollcall.title, site=site, deadline=result.deadline,
                                      window=rollcall.window, now=now, state="calling" if result.window_open else "overdue"))


def install(app: web.Application, services: Services) -> None:
    """Register the roll-call handlers, pages and life cycle on the app."""
    from server.rollcall import pages

    service = RollCallService(services, Path(services.config.server.data_dir) / "rollcall-snapshots")
    runner = ScheduleRunner(service)
    app[ROLLCALLS] = service
    app[SCHEDULES] = runner
    handlers = RollCallHandlers(service)
    services.handlers[RollCallStart] = handlers.start
    services.handlers[RollCallAnswer] = handlers.answer
    services.handlers[RollCallExcuse] = handlers.excuse
    services.handlers[RollCallClose] = handlers.close
    services.handlers[RollCallSync] = handlers.sync
    pages.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        await runner.start()
        yield
        runner.close()
        await service.close()

    app.cleanup_ctx.append(lifecycle)
