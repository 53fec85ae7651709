"""What one subscriber connection's link carries, applied to its subscriptions.

The subscriber's receiver estimates its link and says so in REMB (the relay writes abs-send-time
on every packet, which that estimate is made from); each tick the subscriptions get the layer the
allocator grants (media/bandwidth.py), and the client hears which videos are paused for bandwidth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from media.bandwidth import BandwidthAllocator, Want
from media.subscription import Subscription

logger = logging.getLogger(__name__)

TICK = 0.5

PausedCallback = Callable[[str, bool], None]  # publication id, paused for bandwidth


def ignore_paused(publication_id: str, paused: bool) -> None:
    """A paused callback for owners that tell nobody."""


class SubscriberLink:
    """One subscriber's estimate (bits/s) with the bytes actually sent beside it, and the layers granted."""

    def __init__(
        self,
        subscriptions: Callable[[], list[Subscription]],
        tile_sizes: Callable[[], Mapping[str, tuple[int, int]]],
        on_paused: PausedCallback = ignore_paused,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allocator = BandwidthAllocator(clock)
        self.paused: set[str] = set()  # publication ids paused for bandwidth
        self._subscriptions = subscriptions
        self._tile_sizes = tile_sizes
        self._on_paused = on_paused
        self._clock = clock
        self._sent = 0
        self._sent_at = clock()

    @property
    def estimate(self) -> float | None:
        """Bits/s the subscriber's link carries, from its latest feedback (None until one came)."""
        return self.allocator.estimate

    @property
    def sent_rate(self) -> float:
        """Bits/s of media sent to this subscriber over the last tick."""
        return self.allocator.sent_rate

    def on_remb(self, bits_per_second: int) -> None:
        """The subscriber's receiver estimate (REMB, the same on every sender it lists)."""
        self.allocator.on_estimate(bits_per_second)

    def tick(self) -> None:
        """Measure what was sent and grant each subscription its layer."""
        subscriptions = self._subscriptions()
        now = self._clock()
        sent = sum(s.octets_sent for s in subscriptions)
        if now > self._sent_at:
            self.allocator.sent_rate = max(0, sent - self._sent) * 8 / (now - self._sent_at)
        self._sent, self._sent_at = sent, now
        sizes = self._tile_sizes()
        wants = [self._want(s, sizes.get(s.publication.id)) for s in subscriptions]
        grants = self.allocator.allocate(wants)
        for subscription in subscriptions:
            layer = grants.get(subscription.id, 0)
            subscription.allow(layer)
            publication_id = subscription.publication.id
            if (layer is None) != (publication_id in self.paused):
                if layer is None:
                    self.paused.add(publication_id)
                else:
                    self.paused.discard(publication_id)
                logger.info("bandwidth pause publication=%s paused=%s estimate=%s", publication_id, layer is None, self.estimate)
                self._on_paused(publication_id, layer is None)

    @staticmethod
    def _want(subscription: Subscription, size: tuple[int, int] | None) -> Want:
        publication = subscription.publication
        width, height = size if size is not None else (0, 0)
        wanted = subscription.wanted_layer if publication.layers else 0
        return Want(subscription.id, publication.kind, width * height, max(0, wanted), publication.rates())

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bad tick must not end bandwidth control for good
                logger.exception("bandwidth tick failed")
