"""The rooms this node hosts: configured ones at start, ad-hoc ones created while running."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from media.counters import RelayCounters
from media.liveness import LivenessSettings
from server.config import Config
from server.connection import CloseReason, LifecycleCounters
from server.errors import NotFound, RoomMoved
from server.ice_servers import peer_ice_urls
from server.room import Room, RoomHooks
from server.span import Span
from server.store import PresenceRecord, RoomRecord, Store, StoreError

logger = logging.getLogger(__name__)

PRESENCE_TTL = 30.0


class RoomRegistry:
    """Rooms by id, their records in the store, and the presence of their participants."""

    def __init__(
        self,
        config: Config,
        store: Store,
        counters: RelayCounters,
        *,
        lifecycle: LifecycleCounters | None = None,
        control: Callable[[Room, RoomRecord], RoomHooks] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.lifecycle = lifecycle or LifecycleCounters()
        self.rooms: dict[str, Room] = {}
        self._control = control
        # The live nodes' public URLs, for the welcome (set by server/nodes.py).
        self.alternates: Callable[[], list[str]] = list
        # When rooms span nodes (server/span.py), each room's part here; rooms are then not claimed.
        self.spans: Callable[[Room], Span] | None = None

    async def start(self) -> None:
        """Record the configured rooms in the store."""
        for room in self.config.rooms:
            await self.store.put_room(
                RoomRecord(id=room.id, name_zh=room.name_zh, name_en=room.name_en, created_at=time.time(), locked=room.locked)
            )

    async def get(self, room_id: str) -> Room:
        """The live room, created on first use from its record; NotFound if no record exists."""
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        record = await self.store.get_room(room_id)
        if record is None:
            raise NotFound("unknown_room", f"no room {room_id!r}")
        if self.spans is None:
            owner = await self.store.claim_room(room_id, self.store.node_id, ttl=PRESENCE_TTL)
            if owner != self.store.node_id:  # claimed by another node since it was located
                raise RoomMoved(f"room {room_id!r} is on node {owner!r} now: connect again")
        room = self.rooms.get(room_id)  # another request may have created it meanwhile
        if room is None:
            room = self._new_room(record)
            self.rooms[room_id] = room
            await room.control.resume()
            if self.spans is not None:
                room.span = self.spans(room)
                await room.span.start()
        return room

    def _new_room(self, record: RoomRecord) -> Room:
        settings = self.config.server
        make_control = self._control
        return Room(
            record.id,
            f"{record.name_zh} {record.name_en}",
            counters=self.counters,
            lifecycle=self.lifecycle,
            ice_servers=peer_ice_urls(settings.ice_servers),
            max_tracks=settings.max_tracks,
            liveness=LivenessSettings(stalled_after=settings.media_stalled_after, connect_timeout=settings.connect_timeout),
            grace=settings.reconnect_grace,
            control=(lambda room: make_control(room, record)) if make_control is not None else None,
            alternates=self.alternates,
        )

    async def record_presence(self, room: Room) -> None:
        """Write or refresh the presence of every participant of `room` in the store."""
        for participant in list(room.participants.values()):
            await self.store.set_presence(
                PresenceRecord(
                    room=room.id,
                    identity=participant.id,
                    site=participant.identity.site,
                    name=participant.identity.name,
                    node=self.store.node_id,
                    session_id=participant.session_id,
                    joined_at=participant.joined_at,
                    role=participant.role,
                ),
                ttl=PRESENCE_TTL,
            )

    async def forget_presence(self, room: Room, identity: str) -> None:
        """Remove `identity`'s presence once it has left `room` altogether (no other connection holds
        it); with the store away the record just expires by itself."""
        if identity in room.participants:
            return
        try:
            await self.store.remove_presence(room.id, identity)
        except StoreError as exc:
            logger.warning("presence not removed room=%s identity=%s error=%s", room.id, identity, exc)

    async def refresh(self) -> None:
        """Refresh the presence of every hosted room (called periodically; server/nodes.py renews placements)."""
        for room in list(self.rooms.values()):
            await self.record_presence(room)

    async def drop(self, room_id: str, owner: str) -> None:
        """Another node holds the room now: end this node's copy (its clients connect again and are
        relayed to the owner)."""
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        logger.warning("room moved room=%s owner=%s: ending its copy on this node", room_id, owner)
        await room.end_all(CloseReason.ROOM_MOVED)
        await room.close()

    async def close(self) -> None:
        """Close every room's media."""
        for room in list(self.rooms.values()):
            await room.close()
        self.rooms.clear()
