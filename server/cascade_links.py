"""The cascade links of one room's part on this node: the ones it receives on, the ones it sends on.

Between two nodes of a room there is at most one link each way, carrying every publication made on
the sending node: to that node the other is one more subscriber (a `SubscriberPeer` named
`node:<id>`, offering tracks as publications come and go), and the receiving node answers those
offers (media/cascade.py). The receiving node opens a link when it has subscribers for the
room and the other node has publications; it asks over HTTP (server/cascade_http.py), and the
offers come back over HTTP to it, each answered in its response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from media.cascade import CascadeIn, Origin
from media.liveness import Failure, PeerState
from media.peers import SubscriberPeer
from media.publication import Publication
from media.tasks import TaskGroup
from server.errors import NotFound

if TYPE_CHECKING:
    from server.room import Room

logger = logging.getLogger(__name__)

RETRY_LINK = 2.0  # a link that could not be opened is asked for again after this long


class Links(Protocol):
    """What a room's links need of the other nodes (server/cascade_http.py)."""

    async def open(self, url: str, room_id: str, node_id: str, node_url: str) -> None:
        """Ask the node at `url` to send this node (`node_id`, reached at `node_url`) its publications."""

    async def offer(self, url: str, room_id: str, node_id: str, sdp: str, tracks: dict[str, str],
                    origins: dict[str, tuple[str, str, str]]) -> str:
        """Send the node at `url` an offer of the link from `node_id`; its answer."""

    async def close(self, url: str, room_id: str, node_id: str) -> None:
        """Tell the node at `url` that `node_id` no longer wants its link."""


class CascadeLinks:
    """The links of one room's part on this node, both ways."""

    def __init__(self, room: Room, links: Links, *, node_id: str, url: str, woken: Callable[[], None]) -> None:
        self.room = room
        self._links = links
        self._node_id = node_id
        self._url = url
        self._woken = woken  # a link failed: the part looks at what it wants again
        self._origins: dict[str, Origin] = {}  # what the others' parts say of their publications
        self._muted: dict[str, bool] = {}  # ... and whether their publishers muted them
        self._inbound: dict[str, tuple[CascadeIn, str]] = {}  # by sending node: the link and the node's url
        self._tried: dict[str, float] = {}  # sending node -> loop time of the last failed ask
        self._outbound: dict[str, SubscriberPeer] = {}  # by receiving node
        self._tasks = TaskGroup(f"links:{room.id}")

    # --- receiving ---------------------------------------------------------------------------------

    def want(self, wanted: Mapping[str, str], origins: Mapping[str, Origin], muted: Mapping[str, bool]) -> None:
        """Hold a link from each node in `wanted` (node id -> url), none from the others."""
        self._origins, self._muted = dict(origins), dict(muted)
        for node_id in [n for n in self._inbound if n not in wanted]:
            self._tasks.spawn(self.close_inbound(node_id, tell=True), name="cascade-close")
        now = asyncio.get_running_loop().time()
        for node_id, url in wanted.items():
            tried = self._tried.get(node_id)
            if node_id not in self._inbound and (tried is None or now - tried >= RETRY_LINK):
                self._open(node_id, url)
        for link, _ in self._inbound.values():
            for copy in link.publications.values():
                self._mirror_muted(copy)

    def _open(self, node_id: str, url: str) -> None:
        link = self.room.router.new_cascade(node_id, on_health=self._inbound_health(node_id))
        self._inbound[node_id] = (link, url)
        self._tried[node_id] = asyncio.get_running_loop().time()
        self._tasks.spawn(self._ask(node_id, url, link), name="cascade-open")

    async def _ask(self, node_id: str, url: str, link: CascadeIn) -> None:
        try:
            await self._links.open(url, self.room.id, self._node_id, self._url)
        except Exception as exc:  # noqa: BLE001 - any failure (node gone, refused) asks again later
            logger.warning("cascade link not opened room=%s from=%s error=%s", self.room.id, node_id, exc)
            if self._inbound.get(node_id, (None,))[0] is link:
                await self.close_inbound(node_id, tell=False)
            return
        self._tried.pop(node_id, None)
        logger.info("cascade link open room=%s from=%s", self.room.id, node_id)

    async def offered(self, node_id: str, sdp: str, tracks: dict[str, str], origins: dict[str, tuple[str, str, str]]) -> str:
        """The sending node's offer on its link to here; the answer."""
        held = self._inbound.get(node_id)
        if held is None:
            raise NotFound("unknown_link", f"no link from node {node_id!r} is wanted here")
        link = held[0]
        told = {pid: Origin(pid, owner, source, codec) for pid, (owner, source, codec) in origins.items()}
        answer, added = await link.answer(sdp, tracks, lambda pid: told.get(pid) or self._origins.get(pid))
        for publication in added:
            publication.muted = self._muted.get(publication.id, False)  # announced as its publisher has it
            self.room.add_cascaded(link, publication)
        return answer

    def _mirror_muted(self, copy: Publication) -> None:
        muted = self._muted.get(copy.id)
        if muted is not None and copy.muted != muted:
            copy.muted = muted
            self.room.publication_muted(copy)

    def _inbound_health(self, node_id: str) -> Callable[[PeerState, Failure | None], None]:
        def changed(state: PeerState, failure: Failure | None) -> None:
            if failure is not None and node_id in self._inbound:
                logger.warning("cascade link failed room=%s from=%s why=%s", self.room.id, node_id, failure.code)
                self._tasks.spawn(self.close_inbound(node_id, tell=True), name="cascade-close")
                self._woken()

        return changed

    async def close_inbound(self, node_id: str, *, tell: bool) -> None:
        """Close the link from a node (and tell it, if it may still be sending)."""
        held = self._inbound.pop(node_id, None)
        if held is None:
            return
        link, url = held
        await self.room.router.close_cascade(link)
        if tell:
            try:
                await self._links.close(url, self.room.id, self._node_id)
            except Exception as exc:  # noqa: BLE001 - the sending node drops it by itself once it stalls
                logger.info("cascade link close not delivered room=%s to=%s error=%s", self.room.id, node_id, exc)

    def brought_in(self, publication: Publication) -> bool:
        """Whether a publication of this room came from another node over a link."""
        return any(publication in link.publications.values() for link, _ in self._inbound.values())

    # --- sending -----------------------------------------------------------------------------------

    def serve(self, node_id: str, url: str) -> None:
        """Send another node every publication made here, on one link (a newer ask replaces it)."""
        if node_id in self._outbound:  # the node asks again (it restarted): the older link goes
            self._tasks.spawn(self.stop_serving(node_id), name="cascade-replace")

        async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
            self._tasks.spawn(self._send_offer(node_id, url, sdp, tracks), name="cascade-offer")

        peer = self.room.router.new_subscriber(f"node:{node_id}", send_offer, on_health=self._outbound_health(node_id))
        self._outbound[node_id] = peer
        for publication in list(self.room.router.publications.values()):
            if not self.brought_in(publication):
                peer.subscribe(publication)
        logger.info("cascade link served room=%s to=%s publications=%d", self.room.id, node_id, len(peer.subscriptions))

    async def _send_offer(self, node_id: str, url: str, sdp: str, tracks: dict[str, str]) -> None:
        peer = self._outbound.get(node_id)
        if peer is None:
            return
        publications = self.room.router.publications
        origins = {pid: (p.owner, p.source, p.codec.name) for pid in tracks.values()
                   if (p := publications.get(pid)) is not None}  # type: ignore[call-overload]
        try:
            answer = await self._links.offer(url, self.room.id, self._node_id, sdp, tracks, origins)
            peer.handle_answer(answer)
        except Exception as exc:  # noqa: BLE001 - the receiving node asks again for a link it wants
            logger.warning("cascade offer not answered room=%s to=%s error=%s", self.room.id, node_id, exc)
            if self._outbound.get(node_id) is peer:
                await self.stop_serving(node_id)

    def _outbound_health(self, node_id: str) -> Callable[[PeerState, Failure | None], None]:
        def changed(state: PeerState, failure: Failure | None) -> None:
            if failure is not None and node_id in self._outbound:
                self._tasks.spawn(self.stop_serving(node_id), name="cascade-stop")

        return changed

    def publication_added(self, publication: Publication) -> None:
        """A publication made here: every link sends it."""
        if not self.brought_in(publication):
            for peer in self._outbound.values():
                peer.subscribe(publication)

    def publication_closed(self, publication: Publication) -> None:
        """A publication ended: the links stop sending it."""
        for peer in self._outbound.values():
            peer.unsubscribe(publication.id)

    async def stop_serving(self, node_id: str) -> bool:
        """Stop sending to a node (it closed the link, or the link failed); False if unknown."""
        peer = self._outbound.pop(node_id, None)
        if peer is None:
            return False
        await self.room.router.close_subscriber(f"node:{node_id}", peer)
        return True

    @property
    def counts(self) -> tuple[int, int]:
        """How many links this node receives on and sends on, for the room."""
        return len(self._inbound), len(self._outbound)

    async def close(self) -> None:
        """Close every link, both ways."""
        for node_id in list(self._inbound):
            await self.close_inbound(node_id, tell=True)
        for node_id in list(self._outbound):
            await self.stop_serving(node_id)
        await self._tasks.close()
