"""The command channel: directives down, incident reports up, every change an event in the store's log."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from server.command.handlers import CommandHandlers
from server.command.photos import DEFAULT_MAX_PHOTO_BYTES, PhotoStore
from server.command.service import CommandService
from server.services import Services


@dataclass
class Command:
    """The command channel of one app: its service, photo store and handlers."""

    service: CommandService
    photos: PhotoStore
    handlers: CommandHandlers


COMMAND = web.AppKey("command", Command)


def install(app: web.Application, services: Services) -> Command:
    """Register the handlers, pages and exports; the log is folded once the store has started.

    Call after the app's own lifecycle is added, so the store is up when the log is read.
    The photo size limit is `COMMAND_MAX_PHOTO_BYTES` (default 8 MiB).
    """
    from server.command import export, live, pages

    service = CommandService(services)
    max_bytes = int(os.environ.get("COMMAND_MAX_PHOTO_BYTES") or DEFAULT_MAX_PHOTO_BYTES)
    photos = PhotoStore(Path(services.config.server.data_dir) / "photos", max_bytes)
    handlers = CommandHandlers(service, photos)
    handlers.register(services)
    command = Command(service, photos, handlers)
    app[COMMAND] = command
    app.router.add_get("/command/ws", live.command_socket)
    pages.add_routes(app)
    export.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield

    app.cleanup_ctx.append(lifecycle)
    return command
