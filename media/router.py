"""`RoomRouter`: the media side of one room (mediasoup's Router).

It owns the room's publications (`media/publication.py`), each of which owns the subscriptions
that deliver it (`media/subscription.py`), and the peer connections that carry them; `close()` is
idempotent and cascades. Nothing here decodes or encodes: packets are forwarded with only their
header rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from media.cascade import CascadeIn
from media.counters import RelayCounters
from media.egress import EgressPeer
from media.liveness import LivenessSettings, StateCallback
from media.peers import Adopt, PublisherPeer, SendOffer, SubscriberPeer, ignore_health
from media.publication import Publication, PublicationId
from media.subscriber_link import PausedCallback, ignore_paused

logger = logging.getLogger(__name__)


class RoomRouter:
    """Publications and peer connections of one room. Knows nothing of the room's business."""

    def __init__(
        self,
        room_id: str,
        *,
        counters: RelayCounters,
        ice_servers: Sequence[str] = (),
        liveness: LivenessSettings = LivenessSettings(),
    ) -> None:
        self.room_id = room_id
        self.counters = counters
        self.liveness = liveness
        self.publications: dict[PublicationId, Publication] = {}
        self._ice_servers = tuple(ice_servers)
        self._publishers: dict[str, list[PublisherPeer]] = {}
        self._subscribers: dict[str, SubscriberPeer] = {}
        self._egress: set[EgressPeer] = set()
        self._cascades: set[CascadeIn] = set()
        self.closed = False

    @property
    def peer_count(self) -> int:
        """How many peer connections the room holds."""
        publishers = sum(len(p) for p in self._publishers.values())
        return publishers + len(self._subscribers) + len(self._egress) + len(self._cascades)

    @property
    def subscription_count(self) -> int:
        """How many publication-to-subscriber deliveries are live."""
        return sum(len(p.subscriptions) for p in self.publications.values())

    def new_publisher(
        self,
        identity: str,
        *,
        on_publication: Callable[[Publication], None],
        adopt: Adopt | None = None,
        on_health: StateCallback = ignore_health,
    ) -> PublisherPeer:
        """A new publisher connection for `identity` (a participant may have several: page, WHIP)."""

        def added(publication: Publication) -> None:
            self.publications[publication.id] = publication
            publication.on_close(self._forget)
            on_publication(publication)

        peer = PublisherPeer(
            identity, counters=self.counters, ice_servers=self._ice_servers, on_publication=added, adopt=adopt,
            liveness=self.liveness, on_health=on_health,
        )
        self._publishers.setdefault(identity, []).append(peer)
        return peer

    def _forget(self, publication: Publication) -> None:
        if self.publications.get(publication.id) is publication:
            del self.publications[publication.id]

    def new_subscriber(
        self, identity: str, send_offer: SendOffer, *, on_health: StateCallback = ignore_health,
        on_paused: PausedCallback = ignore_paused,
    ) -> SubscriberPeer:
        """The subscriber connection for `identity`, replacing any earlier one; `on_paused` hears
        which of its videos are paused for bandwidth."""
        peer = SubscriberPeer(
            identity, counters=self.counters, send_offer=send_offer, ice_servers=self._ice_servers,
            liveness=self.liveness, on_health=on_health, on_paused=on_paused,
        )
        self._subscribers[identity] = peer
        return peer

    def new_egress(self, identity: str, *, on_health: StateCallback = ignore_health) -> EgressPeer:
        """A player's connection (WHEP) receiving a fixed set of this room's publications."""
        peer = EgressPeer(
            identity, counters=self.counters, ice_servers=self._ice_servers, liveness=self.liveness, on_health=on_health
        )
        self._egress.add(peer)
        return peer

    async def close_egress(self, peer: EgressPeer) -> None:
        """Close one player's connection."""
        self._egress.discard(peer)
        await peer.close()

    def new_cascade(self, node: str, *, on_health: StateCallback = ignore_health) -> CascadeIn:
        """A link bringing publications of another node into this room (it offers, we answer)."""
        link = CascadeIn(node, counters=self.counters, ice_servers=self._ice_servers, liveness=self.liveness, on_health=on_health)
        self._cascades.add(link)
        return link

    def add_cascaded(self, link: CascadeIn, publication: Publication) -> None:
        """Make a publication a link brought in one of this room's, under its origin's id."""
        if link.closed or link not in self._cascades:
            publication.close()
            return
        self.publications[publication.id] = publication
        publication.on_close(self._forget)

    async def close_cascade(self, link: CascadeIn) -> None:
        """Close a link and the publications it brought in."""
        self._cascades.discard(link)
        await link.close()

    def subscriber(self, identity: str) -> SubscriberPeer | None:
        """The live subscriber connection of `identity`, if any."""
        return self._subscribers.get(identity)

    def subscribers(self) -> list[SubscriberPeer]:
        """Every live subscriber connection."""
        return list(self._subscribers.values())

    async def close_publisher(self, identity: str, peer: PublisherPeer) -> None:
        """Close one publisher connection and its publications."""
        peers = self._publishers.get(identity, [])
        if peer in peers:
            peers.remove(peer)
            if not peers:
                del self._publishers[identity]
        await peer.close()

    async def close_subscriber(self, identity: str, peer: SubscriberPeer) -> None:
        """Close one subscriber connection (only if it is still the current one for identity)."""
        if self._subscribers.get(identity) is peer:
            del self._subscribers[identity]
        await peer.close()

    async def remove_participant(self, identity: str) -> None:
        """Close every connection of `identity`."""
        for peer in self._publishers.pop(identity, []):
            await peer.close()
        subscriber = self._subscribers.pop(identity, None)
        if subscriber is not None:
            await subscriber.close()

    async def close(self) -> None:
        """Close every publication and connection of the room (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for identity in list(self._publishers) + list(self._subscribers):
            await self.remove_participant(identity)
        for peer in list(self._egress):
            await self.close_egress(peer)
        for link in list(self._cascades):
            await self.close_cascade(link)
