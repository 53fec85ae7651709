"""Wire the command channel into the server: its service and photos, the `/ws` handlers, pages and exports."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from server.command import export, live, pages, report_page
from server.command.handlers import CommandHandlers
from server.command.keys import COMMAND, Command
from server.command.photo_sweep import PhotoSweeper
from server.command.photos import DEFAULT_MAX_PHOTO_BYTES, DEFAULT_QUOTA_BYTES, PhotoStore
from server.command.reminders import DeadlineReminders
from server.command.service import CommandService
from server.services import Services


def install(app: web.Application, services: Services) -> Command:
    """Register the handlers, pages and exports; the log is folded once the store has started.

    Call after the app's own lifecycle is added, so the store is up when the log is read.
    The photo size limit is `COMMAND_MAX_PHOTO_BYTES` (default 8 MiB), a site's photo bytes per day
    `COMMAND_PHOTO_QUOTA_BYTES` (default 256 MiB; 0 for no quota).
    """
    service = CommandService(services)
    reminders = DeadlineReminders(service, services.config.command.remind_before)
    service.armed.append(reminders.arm)
    max_bytes = int(os.environ.get("COMMAND_MAX_PHOTO_BYTES") or DEFAULT_MAX_PHOTO_BYTES)
    quota = int(os.environ.get("COMMAND_PHOTO_QUOTA_BYTES") or DEFAULT_QUOTA_BYTES)
    photos = PhotoStore(Path(services.config.server.data_dir) / "photos", max_bytes, quota)
    handlers = CommandHandlers(service, photos)
    handlers.register(services)
    command = Command(service, photos, handlers, PhotoSweeper(service, photos))
    app[COMMAND] = command
    services.skipped.append(service.skipped)
    services.domain_counters["cp_directive_reminders_sent"] = (
        "Automatic reminders before a directive deadline this node recorded", lambda: reminders.sent,
    )
    services.domain_counters["cp_photos_removed"] = (
        "Uploaded photos that no event referenced, removed after a day", lambda: command.sweeper.removed,
    )
    app.router.add_get("/command/ws", live.command_socket)
    pages.add_routes(app)
    report_page.add_routes(app)
    export.add_routes(app)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(photos.executor, photos.load)
        await service.start()
        command.sweeper.start()
        yield
        reminders.close()
        command.sweeper.close()
        photos.close()

    app.cleanup_ctx.append(lifecycle)
    return command
