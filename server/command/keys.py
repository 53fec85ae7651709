"""The command channel's place on the app: one typed key to everything it runs."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.command.handlers import CommandHandlers
from server.command.photo_sweep import PhotoSweeper
from server.command.photos import PhotoStore
from server.command.service import CommandService


@dataclass
class Command:
    """The command channel of one app: its service, photo store and handlers, and the sweep of unused photos."""

    service: CommandService
    photos: PhotoStore
    handlers: CommandHandlers
    sweeper: PhotoSweeper


COMMAND = web.AppKey("command", Command)
