"""Wire the daily duty report into the server: its service and deadline, its pages and actions."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.command.keys import COMMAND
from server.duty import handlers, pages
from server.duty.deadline import DeadlineRunner
from server.duty.keys import DEADLINE, DUTY
from server.duty.service import DutyService
from server.services import Services


def install(app: web.Application, services: Services) -> DutyService:
    """Register the duty pages, actions and life cycle; after the command channel, whose incidents a report links."""
    command = app[COMMAND]

    def incident_site(incident_id: str) -> str | None:
        incident = command.service.board.incidents.get(incident_id)
        return None if incident is None else incident.site

    service = DutyService(services, incident_site)
    runner = DeadlineRunner(service)
    app[DUTY] = service
    app[DEADLINE] = runner
    services.skipped.append(service.skipped)
    pages.add_routes(app)
    handlers.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        await runner.start()
        yield
        runner.close()

    app.cleanup_ctx.append(lifecycle)
    return service
