"""Wire the statistics dashboard into the server: after the accountability records it reads through."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.accountability.keys import ACCOUNTABILITY
from server.services import SERVICES
from server.stats import pages
from server.stats.keys import STATS
from server.stats.service import StatsService


def install(app: web.Application) -> StatsService:
    """Register the dashboard; its chart thread stops with the app."""
    service = StatsService(app[ACCOUNTABILITY], app[SERVICES].sites)
    app[STATS] = service
    pages.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        service.warm()
        yield
        service.close()

    app.cleanup_ctx.append(lifecycle)
    return service
