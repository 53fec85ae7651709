"""Wire search into the server: after the domains whose records it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.accountability.keys import ACCOUNTABILITY
from server.command.keys import COMMAND
from server.duty.keys import DUTY
from server.search import pages
from server.search.keys import SEARCH
from server.search.service import SearchService
from server.services import SERVICES


def install(app: web.Application) -> SearchService:
    """Register the search page over the domains already installed (after the accountability records, whose
    roll-call archive it shares)."""
    service = SearchService(app[SERVICES], app[COMMAND].service, app[DUTY], app[ACCOUNTABILITY].archive)
    app[SEARCH] = service
    pages.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        app[SERVICES].background.spawn(service.warm(), name="search-index")  # the logs are folded by now
        yield

    app.cleanup_ctx.append(lifecycle)
    return service
