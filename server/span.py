"""A room across nodes (cascading): the part of a room this node holds, and what it brings in.

A room larger than one node can carry (the province-wide roll-call, 122 counties on one wall)
spans nodes when `room_node_limit` is set: each node serves up to that many of the room's
participants (server/nodes.py places them) and writes its part of the room in the store (who is
here, what they publish), noting every change on the room's parts stream, which every node
holding a part follows. From the others' parts a node knows the room's remote participants (in
its welcome and its joined/left/updated messages) and their publications; each publication it has
subscribers for is relayed to it once, from the node where it was published, over a link of its
own (media/cascade.py: a receive-only WebRTC connection answered like a WHEP player, so repair
and keyframe requests travel back over it), never once per subscriber. A node that dies stops
refreshing its part, which expires: its participants leave the others' rooms and its links close.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from media.cascade import CascadeIn, Origin
from media.egress import EgressPeer
from media.liveness import Failure, PeerState
from media.router import Publication
from media.tasks import TaskGroup
from server.errors import NotFound
from server.participant import publication_info, role_for
from server.store import Store, StoredEvent, StoreError
from server.store.nodes import MemberRecord, PartPublication, RoomPart, room_parts_stream
from signaling.messages import ParticipantInfo, ParticipantJoined, ParticipantLeft, ParticipantUpdated, PublicationMuted

if TYPE_CHECKING:
    from server.follow import LogTail
    from server.room import Room

logger = logging.getLogger(__name__)

# A link that could not be opened is tried again after this long (the origin node may be starting).
RETRY_LINK = 2.0

class RemoteMember:
    """A participant of the room on another node, as this node shows it."""

    def __init__(self, node_id: str, record: MemberRecord) -> None:
        self.node_id = node_id
        self.record = record

    def info(self) -> ParticipantInfo:
        """How local participants see it."""
        r = self.record
        return ParticipantInfo(identity=r.identity, site=r.site, name=r.name, role=r.role, state=r.state)  # type: ignore[arg-type]


class Links(Protocol):
    """What a span needs of the other nodes: open a link at one, close it (server/cascade_http.py)."""

    async def open(self, url: str, room_id: str, offer: str, publications: list[str]) -> tuple[str, str]:
        """Ask the node at `url` to send `publications`; its answer and the link's id there."""

    async def close(self, url: str, room_id: str, link_id: str) -> None:
        """Tell the node at `url` the link is no longer wanted."""


class Span:
    """This node's part of one room that spans nodes."""

    def __init__(
        self, room: Room, *, store: Store, tail: LogTail, links: Links, node_id: str, url: str, ttl: float, refresh: float
    ) -> None:
        self.room = room
        self.members: dict[str, RemoteMember] = {}  # the room's participants on other nodes
        self._store = store
        self._tail = tail
        self._links = links
        self._node_id = node_id
        self._url = url
        self._ttl = ttl
        self._refresh = refresh
        self._stream = room_parts_stream(room.id)
        self._remote: dict[str, tuple[RoomPart, PartPublication]] = {}  # remote publications by id
        self._inbound: dict[str, tuple[CascadeIn, str, str]] = {}  # by publication id: link, its url and id there
        self._outbound: dict[str, EgressPeer] = {}  # links this node sends on, by link id
        self._opening: dict[str, float] = {}  # publication id -> loop time of the last try
        self._written: tuple[tuple[MemberRecord, ...], tuple[PartPublication, ...]] | None = None
        self._wake = asyncio.Event()
        self._tasks = TaskGroup(f"span:{room.id}")
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
            for link_id in [i for i, peer in self._outbound.items() if not peer.live]:
                await self.stop_serving(link_id)  # what it sent ended (its publisher left)
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
        for publication_id in list(self._inbound):
            await self._close_link(publication_id)
        for link_id in list(self._outbound):
            await self.stop_serving(link_id)
        await self._tasks.close()
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
            for info in (publication_info(p) for p in self.room.router.publications.values() if p.id not in self._inbound)
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
        self._remote = {pub.publication_id: (part, pub) for part in others for pub in part.publications
                        if pub.owner not in self.room.participants}
        for publication_id in [i for i in self._inbound if i not in self._remote]:
            self._tasks.spawn(self._close_link(publication_id), name="cascade-close")
        wanted = self.wants_media()
        for publication_id, (part, pub) in self._remote.items():
            held = self._inbound.get(publication_id)
            if held is not None:
                self._mirror_muted(held[0], pub)
            elif wanted:
                self._open_link(part, pub)
        if not wanted:
            for publication_id in list(self._inbound):
                self._tasks.spawn(self._close_link(publication_id), name="cascade-close")

    def _members_from(self, others: list[RoomPart]) -> None:
        seen: dict[str, RemoteMember] = {}
        for part in others:
            for record in part.members:
                if record.identity not in self.room.participants:  # here wins: it moved to this node
                    seen[record.identity] = RemoteMember(part.node_id, record)
        for identity in [i for i in self.members if i not in seen]:
            del self.members[identity]
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

    def _mirror_muted(self, link: CascadeIn, pub: PartPublication) -> None:
        for copy in link.publications:
            if copy.id == pub.publication_id and copy.muted != pub.muted:
                copy.muted = pub.muted
                self.room.broadcast(PublicationMuted(publication_id=copy.id, muted=pub.muted))

    # --- links -----------------------------------------------------------------------------------

    def _open_link(self, part: RoomPart, pub: PartPublication) -> None:
        now = asyncio.get_running_loop().time()
        tried = self._opening.get(pub.publication_id)
        if tried is not None and (tried < 0 or now - tried < RETRY_LINK):
            return  # being opened, or failed a moment ago
        self._opening[pub.publication_id] = -1.0
        self._tasks.spawn(self._link(part, pub), name="cascade-open")

    async def _link(self, part: RoomPart, pub: PartPublication) -> None:
        origin = Origin(pub.publication_id, pub.owner, pub.kind, pub.source)
        link = self.room.router.new_cascade(part.node_id, [origin], on_health=self._health(pub.publication_id))
        try:
            answer, link_id = await self._links.open(part.url, self.room.id, await link.offer(), [pub.publication_id])
            publications = await link.accept(answer)
        except Exception as exc:  # noqa: BLE001 - any failure (node gone, refused, bad answer) retries later
            self._opening[pub.publication_id] = asyncio.get_running_loop().time()
            logger.warning("cascade link not opened room=%s publication=%s node=%s error=%s",
                           self.room.id, pub.publication_id, part.node_id, exc)
            await self.room.router.close_cascade(link)
            return
        self._opening.pop(pub.publication_id, None)
        if pub.publication_id not in self._remote or self.room.router.closed:  # gone while the link opened
            await self.room.router.close_cascade(link)
            self._tasks.spawn(self._links.close(part.url, self.room.id, link_id), name="cascade-close")
            return
        self._inbound[pub.publication_id] = (link, part.url, link_id)
        for publication in publications:
            publication.muted = pub.muted
            self.room.add_cascaded(link, publication)
        logger.info("cascade link open room=%s publication=%s from=%s", self.room.id, pub.publication_id, part.node_id)

    def _health(self, publication_id: str) -> Callable[[PeerState, Failure | None], None]:
        def changed(state: PeerState, failure: Failure | None) -> None:
            if failure is not None and publication_id in self._inbound:
                logger.warning("cascade link failed room=%s publication=%s why=%s", self.room.id, publication_id, failure.code)
                self._tasks.spawn(self._close_link(publication_id), name="cascade-close")
                self._wake.set()  # opened again at the next round if still wanted

        return changed

    async def _close_link(self, publication_id: str) -> None:
        held = self._inbound.pop(publication_id, None)
        if held is None:
            return
        link, url, link_id = held
        await self.room.router.close_cascade(link)
        try:
            await self._links.close(url, self.room.id, link_id)
        except Exception as exc:  # noqa: BLE001 - the origin closes it by itself once it stalls
            logger.info("cascade link close not delivered room=%s link=%s error=%s", self.room.id, link_id, exc)

    def brought_in(self, publication: Publication) -> bool:
        """Whether a publication of this room came from another node over a link."""
        return publication.id in self._inbound

    # --- links this node sends on ----------------------------------------------------------------

    async def serve(self, node_id: str, offer: str, publication_ids: list[str]) -> tuple[str, str]:
        """Answer another node's link offer with publications made here; the answer and link id."""
        publications = []
        for publication_id in publication_ids:
            publication = self.room.router.publications.get(publication_id)  # type: ignore[call-overload]
            if publication is None or publication.id in self._inbound:
                raise NotFound("unknown_publication", f"no publication {publication_id!r} made on this node")
            publications.append(publication)
        holder: list[str] = []
        peer = self.room.router.new_egress(f"node:{node_id}", on_health=lambda state, failure: self._served_health(holder, failure))
        try:
            answer = await peer.answer(offer, publications)
        except BaseException:
            await self.room.router.close_egress(peer)
            raise
        link_id = uuid.uuid4().hex[:12]
        holder.append(link_id)
        self._outbound[link_id] = peer
        logger.info("cascade link served room=%s link=%s to=%s publications=%s", self.room.id, link_id, node_id,
                    ",".join(publication_ids))
        return answer, link_id

    def _served_health(self, holder: list[str], failure: Failure | None) -> None:
        if failure is not None and holder:
            self._tasks.spawn(self.stop_serving(holder[0]), name="cascade-stop")

    async def stop_serving(self, link_id: str) -> bool:
        """Stop sending on a link (the other node closed it, or it failed); False if unknown."""
        peer = self._outbound.pop(link_id, None)
        if peer is None:
            return False
        await self.room.router.close_egress(peer)
        return True

    @property
    def links_served(self) -> int:
        """How many links this node sends on for the room."""
        return len(self._outbound)

    @property
    def links_held(self) -> int:
        """How many links bring publications of other nodes in."""
        return len(self._inbound)
