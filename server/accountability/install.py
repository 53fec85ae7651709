"""Wire the accountability records into the server: after the command channel, the roll-call and the duty reports."""

from __future__ import annotations

from aiohttp import web

from server.accountability import pages
from server.accountability.keys import ACCOUNTABILITY
from server.accountability.service import AccountabilityService
from server.command.keys import COMMAND
from server.duty.keys import DUTY
from server.recording.keys import RECORDINGS
from server.rollcall.keys import ROLLCALLS


def install(app: web.Application) -> AccountabilityService:
    """Register the periodic review pages over the domains already installed."""
    recordings = app.get(RECORDINGS)
    service = AccountabilityService(app[COMMAND].service, app[DUTY], app[ROLLCALLS],
                                    recordings.player_at if recordings is not None else None)
    app[ACCOUNTABILITY] = service
    pages.add_routes(app)
    return service
