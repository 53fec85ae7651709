"""Wire the roll-call into the server: its service and schedules, the `/ws` handlers, the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.rollcall import pages
from server.rollcall.handlers import RollCallHandlers
from server.rollcall.keys import ROLLCALLS, SCHEDULES
from server.rollcall.schedules import ScheduleRunner
from server.rollcall.service import RollCallService
from server.services import Services
from signaling.rollcall import RollCallAnswer, RollCallClose, RollCallExcuse, RollCallStart, RollCallSync


def install(app: web.Application, services: Services) -> None:
    """Register the roll-call handlers, pages and life cycle on the app."""
    service = RollCallService(services, Path(services.config.server.data_dir) / "rollcall-snapshots")
    runner = ScheduleRunner(service)
    app[ROLLCALLS] = service
    app[SCHEDULES] = runner
    services.skipped += [service.skipped, runner.skipped]
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
