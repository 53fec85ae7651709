"""This node among the others: its heartbeat in the store, the rooms it holds, and where a room lives.

As LiveKit routes rooms: every node beats into the store (its URLs and load); a room is placed on
one live node by an atomic claim (the first claim wins, everyone obeys it), the least loaded when
nobody holds it; the owner renews its leases with every beat, and a node that finds a room of its
own claimed by another ends its copy, whose clients connect again and are relayed to the owner. A
node that stops beating (killed) is dead after `node_ttl` seconds, and its rooms are free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from server.config import ServerSettings
from server.errors import NotFound, RoomMoved
from server.registry import RoomRegistry
from server.relay_auth import RelayedFrom, relay_key, sign, verify
from server.store import Store, StoreError
from server.store.nodes import NodeRecord

logger = logging.getLogger(__name__)

PLACEMENT_TTL = 30.0  # the owner's lease on a room, renewed with every beat
CLAIM_TTL = 10.0  # a room placed on another node's behalf: it renews the lease once its client arrives

NodesListener = Callable[[dict[str, NodeRecord]], None]


class Nodes:
    """This node's record in the store, the live nodes as of the last beat, and where each room lives."""

    def __init__(
        self, store: Store, rooms: RoomRegistry, settings: ServerSettings, *, secret: bytes, previous_secrets: tuple[bytes, ...] = ()
    ) -> None:
        self.store = store
        self.rooms = rooms
        self.node_id = store.node_id
        self.url = settings.own_node_url()
        self.public_url = settings.own_public_url()
        self.started_at = time.time()
        self.live: dict[str, NodeRecord] = {}
        self._interval = settings.node_heartbeat
        self.span_limit = settings.room_node_limit  # > 0: rooms span nodes (server/span.py)
        self._ttl = settings.node_ttl
        self._key = relay_key(secret)
        self._keys = tuple(relay_key(s) for s in (secret, *previous_secrets))
        self._listeners: list[NodesListener] = []
        # Rooms this node placed (on any node) since the last beat: the records read then do not
        # count them yet, and a burst of new rooms must not all go to the node that looked idlest.
        self._placed: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        rooms.alternates = self.alternates

    # --- the heartbeat ---------------------------------------------------------------------------

    def record(self) -> NodeRecord:
        """This node as the others see it: where it is reached and its load now."""
        rooms = list(self.rooms.rooms.values())
        return NodeRecord(
            node_id=self.node_id,
            url=self.url,
            public_url=self.public_url,
            started_at=self.started_at,
            participants=sum(len(r.participants) for r in rooms),
            publications=sum(len(r.router.publications) for r in rooms),
            forwarded=sum(r.router.subscription_count for r in rooms),
            rooms=len(rooms),
        )

    def on_change(self, listener: NodesListener) -> None:
        """Call `listener(live)` after every beat (the origin policy, the relays to dead nodes)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Beat once (a store away is logged, not fatal: the beats go on), then every interval."""
        await self._beat_logged()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="node-heartbeat")

    async def close(self) -> None:
        """Stop beating and leave the registry: this node's rooms are free for the others at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.store.forget_node(self.node_id)
        except StoreError as exc:
            logger.warning("node not forgotten node=%s error=%s: it expires by itself", self.node_id, exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._beat_logged()

    async def _beat_logged(self) -> None:
        try:
            await self.beat()
        except StoreError as exc:  # media keeps flowing while the store is away
            logger.warning("node heartbeat failed node=%s error=%s", self.node_id, exc)

    async def beat(self) -> None:
        """Refresh this node's record, read the live ones, renew the leases of the rooms held here."""
        await self.store.heartbeat_node(self.record(), ttl=self._ttl)
        self.live = {node.node_id: node for node in await self.store.list_nodes()}
        self._placed.clear()
        for listener in self._listeners:
            listener(self.live)
        if self.span_limit:
            return  # rooms spread over nodes: no node owns one (each keeps its part, server/span.py)
        for room_id in list(self.rooms.rooms):
            owner = await self.store.claim_room(room_id, self.node_id, ttl=PLACEMENT_TTL)
            if owner != self.node_id:
                await self.rooms.drop(room_id, owner)

    # --- where a room lives ----------------------------------------------------------------------

    async def locate(self, room_id: str, *, relayed: bool, identity: str | None = None) -> NodeRecord | None:
        """None when the room is (now) placed on this node; else the live node that holds it.

        Unplaced, it goes to the least loaded live node. A relayed request is never relayed again:
        if the room is not here (it moved meanwhile) that is RoomMoved, and the client reconnects.
        When rooms span nodes, `identity` (who comes in) is served where the room has room for it.
        """
        if await self.store.get_room(room_id) is None:
            raise NotFound("unknown_room", f"no room {room_id!r}")
        if self.span_limit:
            return None if relayed else await self._place_in_span(room_id, identity)
        nodes = {node.node_id: node for node in await self.store.list_nodes()}
        here = relayed or room_id in self.rooms.rooms
        target = self.node_id if here else self._least_loaded(nodes)
        owner = await self.store.claim_room(room_id, target, ttl=PLACEMENT_TTL if target == self.node_id else CLAIM_TTL)
        if owner == target and not here:
            self._placed[target] += 1
        if owner == self.node_id:
            return None
        if room_id in self.rooms.rooms:
            await self.rooms.drop(room_id, owner)
        if relayed:
            raise RoomMoved(f"room {room_id!r} is on node {owner!r} now: connect again")
        node = nodes.get(owner)
        if node is None:
            raise RoomMoved(f"room {room_id!r} is on node {owner!r}, which is not reachable yet: connect again")
        return node

    async def owner_elsewhere(self, room_id: str) -> NodeRecord | None:
        """The live node holding the room when that is not this one (for a resource's later requests)."""
        if room_id in self.rooms.rooms:
            return None
        owner = await self.store.room_owner(room_id)
        if owner is None or owner == self.node_id:
            return None
        return self.live.get(owner) or next((n for n in await self.store.list_nodes() if n.node_id == owner), None)

    async def _place_in_span(self, room_id: str, identity: str | None) -> NodeRecord | None:
        """Where a client of a room across nodes is served: where its identity already is; else
        here while this node holds fewer than `room_node_limit` of the room (no relay hop); else
        the room's emptiest part with room for one more; else the least loaded node without a part
        (the room spans one more node). None: here. Concurrent joins may overshoot the limit by a few."""
        here = self.rooms.rooms.get(room_id)
        if here is not None and identity in here.participants:
            return None
        nodes = {node.node_id: node for node in await self.store.list_nodes()}
        parts = [p for p in await self.store.room_parts(room_id) if p.node_id in nodes and p.node_id != self.node_id]
        holder = next((p.node_id for p in parts if any(m.identity == identity for m in p.members)), None)
        if holder is not None:
            return nodes[holder]  # one identity, one node: a newer connection replaces the older there
        if (len(here.participants) if here is not None else 0) < self.span_limit:
            return None
        counts = {part.node_id: len(part.members) for part in parts}
        with_room = sorted((n for n, count in counts.items() if count < self.span_limit), key=lambda n: (counts[n], n))
        if with_room:
            return nodes[with_room[0]]
        fresh = {n: node for n, node in nodes.items() if n not in counts and n != self.node_id}
        if not fresh:
            return None  # every node holds its share: here, over the limit
        return min(fresh.values(), key=lambda n: (n.load, n.node_id))

    async def holder(self, room_id: str, identity: str) -> NodeRecord | None:
        """In a room across nodes, the live node other than this one where `identity` is, if any."""
        for part in await self.store.room_parts(room_id):
            if part.node_id != self.node_id and any(m.identity == identity for m in part.members):
                return self.live.get(part.node_id) or next(
                    (n for n in await self.store.list_nodes() if n.node_id == part.node_id), None)
        return None

    def _least_loaded(self, nodes: dict[str, NodeRecord]) -> str:
        candidates = {**nodes, self.node_id: self.record()}  # our own figures are the freshest

        def load(node: NodeRecord) -> tuple[int, int, int]:
            streams, participants, rooms = node.load
            placed = self._placed[node.node_id]
            return streams, participants + placed, rooms + placed

        # On equal load this node wins: the client is served without a relay.
        best = min(candidates.values(), key=lambda n: (load(n), n.node_id != self.node_id, n.node_id))
        return best.node_id

    def alternates(self) -> list[str]:
        """The public URLs of every live node, this one included (a client may have come through
        any of them; one whose node died tries the others)."""
        return sorted({n.public_url for n in self.live.values()} | {self.public_url})

    # --- relay headers ---------------------------------------------------------------------------

    def relay_header(self, address: str, scheme: str, host: str) -> str:
        """The signed header a relayed request carries: who the client is, as this node saw it."""
        return sign(self._key, RelayedFrom(node=self.node_id, address=address, scheme=scheme, host=host, at=time.time()))

    def verify_relay(self, value: str) -> RelayedFrom:
        """The relayed client if another node signed `value` with the shared secret; RelayForged otherwise."""
        return verify(self._keys, value, now=time.time())
