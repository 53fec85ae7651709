"""MemoryStore: the embedded default; one process, nothing to install, nothing kept."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from .base import (
    DeviceLinkRecord,
    PresenceRecord,
    RevocationRecord,
    RoomRecord,
    StoredEvent,
    StreamMoved,
    encode_event_data,
    event_id_key,
)
from .nodes import NodeRecord, RoomPart, room_parts_stream

__all__ = ["MemoryStore"]

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    """One event stream: its events and their sort keys, kept side by side for bisect."""

    events: list[StoredEvent] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)


class MemoryStore:
    """In-process store; expiry follows the injected clock."""

    durable = False

    def __init__(self, *, node_id: str, clock: Callable[[], float] = time.time) -> None:
        """Create an empty store for node_id, reading time from clock."""
        self.node_id = node_id
        self._clock = clock
        self._rooms: dict[str, RoomRecord] = {}
        # Values carry the clock time at which they stop being live.
        self._placements: dict[str, tuple[str, float]] = {}
        self._presence: dict[str, dict[str, tuple[PresenceRecord, float]]] = {}
        self._streams: dict[str, _Stream] = {}
        # Revocations by token id, each with its sequence number; expired ones are dropped when read.
        self._revocations: dict[str, RevocationRecord] = {}
        self._revocation_seq = 0
        self._device_links: dict[str, DeviceLinkRecord] = {}
        self._claims: dict[str, float] = {}  # key -> when the claim lapses
        self._appended: asyncio.Event | None = None  # set (and replaced) at each append, for wait_events

    async def start(self) -> None:
        """Say that nothing outlives this process."""
        log.warning(
            "store=memory node=%s records live only as long as this process; "
            "set REDIS_URL for a durable, multi-node store",
            self.node_id,
        )

    async def close(self) -> None:
        """Nothing to release."""

    async def put_room(self, room: RoomRecord) -> None:
        """Insert or replace a room."""
        self._rooms[room.id] = room

    async def get_room(self, room_id: str) -> RoomRecord | None:
        """Return the room or None."""
        return self._rooms.get(room_id)

    async def list_rooms(self) -> list[RoomRecord]:
        """Return every room, sorted by id."""
        return [self._rooms[key] for key in sorted(self._rooms)]

    async def delete_room(self, room_id: str) -> None:
        """Delete a room and its placement."""
        self._rooms.pop(room_id, None)
        self._placements.pop(room_id, None)

    async def set_presence(self, presence: PresenceRecord, ttl: float) -> None:
        """Insert or refresh a presence until now + ttl."""
        room = self._presence.setdefault(presence.room, {})
        room[presence.identity] = (presence, self._clock() + ttl)

    async def remove_presence(self, room: str, identity: str) -> None:
        """Remove a presence if present."""
        entries = self._presence.get(room)
        if entries is not None:
            entries.pop(identity, None)
            if not entries:
                del self._presence[room]

    async def list_presence(self, room: str) -> list[PresenceRecord]:
        """Return live presences sorted by joined_at, dropping expired ones."""
        entries = self._presence.get(room)
        if not entries:
            return []
        now = self._clock()
        for identity in [i for i, (_, expires_at) in entries.items() if expires_at <= now]:
            del entries[identity]
        live = [presence for presence, _ in entries.values()]
        return sorted(live, key=lambda p: (p.joined_at, p.identity))

    async def append_event(
        self, stream: str, *, actor: str, kind: str, data: Mapping[str, object]
    ) -> StoredEvent:
        """Append an event with an id of the same form and order as a Redis stream id."""
        return self._append(stream, actor, kind, data)

    async def append_events_at(
        self, stream: str, last: str | None, events: list[tuple[str, str, Mapping[str, object]]]
    ) -> list[StoredEvent]:
        """Append them all, in order, only if the stream's last event is `last`."""
        for _, _, data in events:
            encode_event_data(data)  # all or none: refuse what cannot be stored before storing any
        held = self._streams.get(stream)
        current = held.events[-1].id if held and held.events else None
        if current != last:
            raise StreamMoved(stream, last, current)
        return [self._append(stream, actor, kind, data) for actor, kind, data in events]

    def _append(self, stream: str, actor: str, kind: str, data: Mapping[str, object]) -> StoredEvent:
        # A JSON round trip gives the caller the same copy semantics (and the same
        # refusals) as Redis, and keeps later mutation of `data` out of the log.
        payload = msgspec.json.decode(encode_event_data(data), type=dict[str, object])
        now = self._clock()
        events = self._streams.setdefault(stream, _Stream())
        ms = int(now * 1000)
        if events.keys and ms <= events.keys[-1][0]:
            key = (events.keys[-1][0], events.keys[-1][1] + 1)
        else:
            key = (ms, 0)
        event = StoredEvent(
            id=f"{key[0]}-{key[1]}", stream=stream, at=now, actor=actor, kind=kind, data=payload
        )
        events.events.append(event)
        events.keys.append(key)
        if self._appended is not None:
            self._appended.set()
            self._appended = None
        return event

    async def read_events(
        self, stream: str, *, after: str | None = None, limit: int = 1000
    ) -> list[StoredEvent]:
        """Return up to limit events strictly after the given id, oldest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        start_key = event_id_key(after) if after is not None else None
        events = self._streams.get(stream)
        if events is None:
            return []
        start = 0 if start_key is None else bisect.bisect_right(events.keys, start_key)
        return events.events[start : start + limit]

    async def wait_events(
        self, positions: Mapping[str, str | None], *, block: float, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events after each position, stream by stream; waits up to `block` s for the first append."""
        found = await self._after(positions, limit)
        if found or block <= 0:
            return found
        if self._appended is None:
            self._appended = asyncio.Event()
        try:
            async with asyncio.timeout(block):  # no task of its own: the reader's is the only one
                await self._appended.wait()
        except TimeoutError:
            return []
        return await self._after(positions, limit)

    async def _after(self, positions: Mapping[str, str | None], limit: int) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        for stream, after in positions.items():
            found += await self.read_events(stream, after=after, limit=limit)
        return found

    async def revoke_token(self, record: RevocationRecord) -> int:
        """Keep the revocation under the next sequence number (a repeat moves it there)."""
        self._revocation_seq += 1
        self._revocations.pop(record.token_id, None)  # dicts keep insertion order: sequence order
        self._revocations[record.token_id] = msgspec.structs.replace(record, seq=self._revocation_seq)
        return self._revocation_seq

    async def revocations_after(self, seq: int) -> tuple[list[RevocationRecord], int]:
        """Unexpired revocations numbered above seq, in order, and the latest number."""
        now = self._clock()
        for token_id in [t for t, r in self._revocations.items() if r.expires_at <= now]:
            del self._revocations[token_id]
        return [r for r in self._revocations.values() if r.seq > seq], self._revocation_seq

    async def put_device_link(self, record: DeviceLinkRecord) -> None:
        """Keep the device link until it expires."""
        self._device_links[record.token_id] = record

    async def get_device_link(self, token_id: str) -> DeviceLinkRecord | None:
        """Return the unexpired device link or None."""
        record = self._device_links.get(token_id)
        return record if record is not None and record.expires_at > self._clock() else None

    async def list_device_links(self) -> list[DeviceLinkRecord]:
        """Return the unexpired device links, newest first, dropping expired ones."""
        now = self._clock()
        for token_id in [t for t, r in self._device_links.items() if r.expires_at <= now]:
            del self._device_links[token_id]
        return sorted(self._device_links.values(), key=lambda r: (-r.issued_at, r.token_id))

    async def claim_once(self, key: str, ttl: float) -> bool:
        """Claim the key unless a claim on it is still running."""
        now = self._clock()
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims = {k: until for k, until in self._claims.items() if until > now}
        self._claims[key] = now + ttl
        return True

    async def ping(self) -> bool:
        """Always answers."""
        return True

    @property
    def undecodable_entries(self) -> int:
        """None: every event here was written by this process."""
        return 0

    # --- nodes and placement across nodes (server/nodes.py) -------------------------------------

    @cached_property
    def _nodes(self) -> dict[str, tuple[NodeRecord, float]]:
        """Node records by id, each with the clock time at which it stops being live."""
        return {}

    def _live_nodes(self) -> dict[str, NodeRecord]:
        now = self._clock()
        for node_id in [n for n, (_, expires_at) in self._nodes.items() if expires_at <= now]:
            del self._nodes[node_id]
        return {node_id: record for node_id, (record, _) in self._nodes.items()}

    async def heartbeat_node(self, record: NodeRecord, ttl: float) -> None:
        """Insert or refresh a node's record until now + ttl."""
        self._nodes[record.node_id] = (record, self._clock() + ttl)

    async def list_nodes(self) -> list[NodeRecord]:
        """Return the live nodes sorted by id."""
        live = self._live_nodes()
        return [live[node_id] for node_id in sorted(live)]

    async def forget_node(self, node_id: str) -> None:
        """Remove a node's record."""
        self._nodes.pop(node_id, None)

    async def claim_room(self, room_id: str, node_id: str, ttl: float) -> str:
        """Place the room on node_id unless another live node holds an unexpired placement; return the owner."""
        now = self._clock()
        owner, expires_at = self._placements.get(room_id, (node_id, now))
        if owner != node_id and expires_at > now and owner in self._live_nodes():
            return owner
        self._placements[room_id] = (node_id, max(now + ttl, expires_at if owner == node_id else now))
        return node_id

    async def room_owner(self, room_id: str) -> str | None:
        """The live owner of an unexpired placement, or None."""
        owner, expires_at = self._placements.get(room_id, ("", 0.0))
        return owner if expires_at > self._clock() and owner in self._live_nodes() else None

    @cached_property
    def _parts(self) -> dict[str, dict[str, tuple[RoomPart, float]]]:
        """Each room's parts by node id, each with the clock time at which it expires."""
        return {}

    async def put_room_part(self, part: RoomPart, ttl: float, *, notify: bool = True) -> None:
        """Keep the part until now + ttl and note the change on the room's parts stream."""
        self._parts.setdefault(part.room_id, {})[part.node_id] = (part, self._clock() + ttl)
        if notify:
            self._append(room_parts_stream(part.room_id), part.node_id, "part", {})

    async def room_parts(self, room_id: str) -> list[RoomPart]:
        """The unexpired parts of the room, sorted by node id."""
        now = self._clock()
        parts = self._parts.get(room_id, {})
        for node_id in [n for n, (_, expires_at) in parts.items() if expires_at <= now]:
            del parts[node_id]
        return [parts[node_id][0] for node_id in sorted(parts)]

    async def drop_room_part(self, room_id: str, node_id: str) -> None:
        """Forget the node's part of the room and note the change."""
        self._parts.get(room_id, {}).pop(node_id, None)
        self._append(room_parts_stream(room_id), node_id, "part_dropped", {})
