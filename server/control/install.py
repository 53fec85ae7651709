"""Wire the room control into the server: one RoomControl per room, and a handler per control message."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from media.tasks import TaskGroup
from server.config import Config
from server.control import handlers
from server.control.room_control import RoomControl
from server.room import Room, RoomHooks
from server.services import Services
from server.store import RoomRecord, Store


def control_factory(config: Config, store: Store, background: TaskGroup) -> Callable[[Room, RoomRecord], RoomHooks]:
    """Make each room's control with the room: its configured host site and its stored lock."""

    def make(room: Room, record: RoomRecord) -> RoomHooks:
        configured = config.room(room.id)
        return RoomControl(
            room,
            store=store,
            spawn=lambda coro: background.spawn(coro, name="control-log"),
            host_site=configured.sites[0] if configured is not None and configured.sites else None,
            locked=record.locked,
        )

    return make


def install(app: web.Application, services: Services) -> None:
    """Register the control messages' handlers (the wall page's route lives in server/pages.py)."""
    handlers.register(services)
