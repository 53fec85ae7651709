"""A room across nodes (cascading): the part of a room this node holds, and what it brings in.

A room larger than one node can carry (the province-wide roll-call, 122 counties on one wall)
spans nodes when `room_node_limit` is set: each node serves up to that many of the room's
participants (server/nodes.py places them) and writes its part of the room in the store (who is
here, what they publish), noting every change on the room's parts stream, which every node
holding a part follows. From the others' parts a node knows the room's remote participants (in
its welcome and its joined/left/updated messages) and their publications. A node with subscribers
for the room receives each publication once from the node where it was made, never once per
subscriber: one link per pair of nodes, on which the sending node treats the other as one more
subscriber (server/cascade_links.py, media/cascade.py), so repair and keyframe requests travel
back over it. A node that dies stops refreshing its part, which expires: its participants leave
the others' rooms and its link closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from media.cascade import Origin
from media.publication import Publication
from server.cascade_links import CascadeLinks, Links
from server.participant import publication_info, role_for
from server.store import Store, StoreError, StoredEvent
from server.store.nodes import MemberRecord, PartPublication, RoomPart, room_parts_stream
from signaling.messages import ParticipantInfo, ParticipantJoined, ParticipantLeft, ParticipantUpdated

if TYPE_CHECKING:
    from server.follow import LogTail
    from server.room import Room

logger = logging.getLogger(__name__)


class RemoteMember:
    """A participant of the room on another node, as this node shows it."""

    def __init__(self, node_id: str, record: MemberRecord) -> None:
        self.node_id = node_id
        self.record = record

    def info(self) -> ParticipantInfo:
        """How local participants see it."""
        r = self.record
        return ParticipantInfo(identity=r.identity, site=r.site, name=r.name, role=r.role, state=r.state)  # type: ignore[arg-type]


class Span:
    """This node's part of one room that spans nodes."""

    def __init__(
        self, room: Room, *, store: Store, tail: LogTail, links: Links, node_id: str, url: str, ttl: float, refresh: float
    ) -> None:
        self.room = room
        self.members: dict[str, RemoteMember] = {}  # the room's participants on other nodes
        self._store = store
        self._tail = tail
        self._node_id = node_id
        self._url = url
        self._ttl = ttl
        self._refresh = refresh
        self._stream = room_parts_stream(room.id)
        self.links = CascadeLinks(room, links, node_id=node_id, url=url, woken=self.changed)
        self._written: tuple[tuple[MemberRecord, ...], tuple[PartPublication, ...]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- running ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read who is on the other nodes (before anyone here is welcomed), then follow the room's
        parts and keep this node's part written."""
        try:
            self._reconcile(await self._store.room_parts(self.room.id))
        except StoreError as exc:
            logger.warning("room parts not read room=%s error=%s: the next round reads them", self.room.id, exc)
        self._tail.follow(self._stream, None, self._noticed)
        self.room.control.follow(self._tail)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"span:{self.room.id}")

    def changed(self) -> None:
        """Something in this node's part may have changed: write it (and read the others) soon."""
        self._wake.set()

    def _noticed(self, events: list[StoredEvent]) -> None:
        if any(event.actor != self._node_id for event in events):
            self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._refresh)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._write()
                self._reconcile(await self._store.room_parts(self.room.id))
            except StoreError as exc:  # media keeps flowing; the next round tries again
                logger.warning("room part not synchronised room=%s error=%s", self.room.id, exc)

    async def close(self) -> None:
        """Leave the span: stop following, close every link, drop this node's part."""
        self._tail.unfollow(self._stream)
        self.room.control.unfollow(self._tail)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.links.close()
        if self._written is not None:
            try:
                await self._store.drop_room_part(self.room.id, self._node_id)
            except StoreError as exc:
                logger.warning("room part not dropped room=%s error=%s: it expires by itself", self.room.id, exc)

    # --- this node's part ------------------------------------------------------------------------

    def own_part(self) -> tuple[tuple[MemberRecord, ...], tuple[PartPublication, ...]]:
        """The participants here and the publications made here (not the ones brought in)."""
        members = tuple(
            MemberRecord(identity=p.id, site=p.identity.site, name=p.identity.name, role=p.role, state=p.state,
                         base_role=role_for(p.identity))
            for p in self.room.participants.values()
        )
        publications = tuple(
            PartPublication(publication_id=info.publication_id, owner=info.identity, kind=info.kind, source=info.source,
                            codec=info.codec, muted=info.muted)
            for info in (publication_info(p) for p in self.room.router.publications.values() if not self.links.brought_in(p))
        )
        return members, publications

    async def _write(self) -> None:
        members, publications = self.own_part()
        if not members and not publications:
            if self._written is not None:
                await self._store.drop_room_part(self.room.id, self._node_id)
                self._written = None
            return
        part = RoomPart(room_id=self.room.id, node_id=self._node_id, url=self._url, members=members,
                        publications=publications)
        changed = self._written != (members, publications)
        await self._store.put_room_part(part, ttl=self._ttl, notify=changed)
        self._written = (members, publications)

    # --- the others' parts -----------------------------------------------------------------------

    def _reconcile(self, parts: Iterable[RoomPart]) -> None:
        others = [p for p in parts if p.node_id != self._node_id]
        self._members_from(others)
        here = self.room.participants
        publishing = {part.node_id: part for part in others if any(p.owner not in here for p in part.publications)}
        origins = {p.publication_id: Origin(p.publication_id, p.owner, p.source, p.codec) for part in others for p in part.publications}
        muted = {p.publication_id: p.muted for part in others for p in part.publications}
        wanted = {node_id: part.url for node_id, part in publishing.items()} if self.wants_media() else {}
        self.links.want(wanted, origins, muted)

    def _members_from(self, others: list[RoomPart]) -> None:
        seen: dict[str, RemoteMember] = {}
        for part in others:
            for record in part.members:
                if record.identity not in self.room.participants:  # here wins: it moved to this node
                    seen[record.identity] = RemoteMember(part.node_id, record)
        for identity in [i for i in self.members if i not in seen]:
            del self.members[identity]
            if identity not in self.room.participants:  # not one that moved here (its join told everyone)
                self.room.broadcast(ParticipantLeft(identity=identity))
        for identity, member in seen.items():
            before = self.members.get(identity)
            self.members[identity] = member
            if before is None:
                self.room.broadcast(ParticipantJoined(participant=member.info()))
            elif before.record != member.record:
                self.room.broadcast(ParticipantUpdated(participant=member.info()))

    def wants_media(self) -> bool:
        """Whether anyone here receives media (links are opened only for a node with subscribers)."""
        return any(p.subscriber is not None for p in self.room.participants.values()) or self.room.players.count > 0

    def brought_in(self, publication: Publication) -> bool:
        """Whether a publication of this room came from another node over a link."""
        return self.links.brought_in(publication)
