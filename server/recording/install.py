"""Wire recording into the server: its service and policy watcher, the chair's `/ws` messages, the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.recording import pages
from server.recording.handlers import RecordingHandlers
from server.recording.keys import RECORDINGS
from server.recording.service import RecordingService
from server.rollcall.keys import ROLLCALLS
from server.services import Services
from signaling.recording import RecordingStart, RecordingStop


def install(app: web.Application, services: Services) -> RecordingService:
    """Register recording on the app (after the roll-call, whose open roll-calls its policy follows)."""
    rollcalls = app[ROLLCALLS]
    service = RecordingService(services, services.config.recording,
                               active_rollcalls=lambda: [(rc.id, rc.room) for rc in rollcalls.active.values() if rc.open])
    app[RECORDINGS] = service
    services.skipped.append(service.skipped)
    handlers = RecordingHandlers(service)
    services.handlers[RecordingStart] = handlers.start
    services.handlers[RecordingStop] = handlers.stop
    services.domain_counters["cp_recording_sessions"] = ("Recording sessions under way on this node", lambda: len(service.live))
    services.domain_counters["cp_recording_dropped_packets"] = (
        "Packets the recorders' full queues dropped (the relay never waits for the disk)",
        lambda: service.dropped_total + sum(live.recorder.dropped for live in service.live.values()))
    pages.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.close()  # before the rooms close: every segment closed and hashed

    app.cleanup_ctx.append(lifecycle)
    return service
