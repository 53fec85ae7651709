"""`EgressPeer`: a player's offer answered with existing publications (WHEP), no renegotiation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiortc import RTCRtpTransceiver, RTCSessionDescription

from media.aiortc.ice import close_peer_connection
from media.aiortc.reports import take_over_sender_reports
from media.aiortc.send import PermanentSource, tap_sender
from media.counters import RelayCounters
from media.liveness import LivenessSettings, PeerHealth, StateCallback
from media.peers import NegotiationError, SubscriberPeer, ignore_health, make_peer_connection, report_loop
from media.publication import Publication
from media.subscription import Subscription
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)


class EgressPeer:
    """One player's connection receiving a fixed set of publications (one per m-line kind)."""

    def __init__(
        self,
        identity: str,
        *,
        counters: RelayCounters,
        ice_servers: Sequence[str] = (),
        liveness: LivenessSettings = LivenessSettings(),
        on_health: StateCallback = ignore_health,
    ) -> None:
        self.identity = identity
        self.pc = make_peer_connection(ice_servers)
        self.health = PeerHealth(self.pc, settings=liveness, on_change=on_health, label=f"whep:{identity}")
        self.health.start()
        self.subscriptions: list[Subscription] = []
        self._sources: list[PermanentSource] = []
        self._counters = counters
        self._closed = False
        self._tasks = TaskGroup(f"whep:{identity}")

    @property
    def live(self) -> bool:
        """Whether anything is still delivered (False once every publication it plays has closed)."""
        return any(not s.closed for s in self.subscriptions)

    async def answer(self, offer_sdp: str, publications: Sequence[Publication]) -> str:
        """Answer the player's offer, sending each publication on an m-line of its kind."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises several types for a bad offer
            raise NegotiationError("bad_sdp", f"offer rejected: {exc}") from None
        remaining = list(publications)
        bound: list[tuple[Publication, RTCRtpTransceiver]] = []
        for transceiver in self.pc.getTransceivers():
            publication = next((p for p in remaining if p.kind == transceiver.kind), None)
            if publication is None:
                transceiver.direction = "inactive"
                continue
            remaining.remove(publication)
            source = PermanentSource(transceiver.kind)
            self._sources.append(source)
            transceiver.sender.replaceTrack(source)
            take_over_sender_reports(transceiver.sender)
            transceiver.direction = "sendonly"
            bound.append((publication, transceiver))
        if not bound:
            raise NegotiationError("nothing_to_play", "the offer has no m-line for the participant's tracks")
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - an offer aiortc took can still fail here
            raise NegotiationError("bad_sdp", f"offer rejected: {exc}") from None
        for publication, transceiver in bound:
            payload_type = SubscriberPeer.payload_type(transceiver, publication.codec)
            if payload_type is None:
                continue
            subscription = Subscription(
                publication,
                subscriber=self.identity,
                sender=transceiver.sender,
                payload_type=payload_type,
                mid=transceiver.mid,
                counters=self._counters,
            )
            tap_sender(transceiver.sender, subscription.handle_feedback)
            self.subscriptions.append(subscription)
        if not self.subscriptions:
            raise NegotiationError("no_common_codec", "the player supports none of the tracks' codecs")
        self._tasks.spawn(report_loop(lambda: self.subscriptions), name="sender-reports")
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        """Close the subscriptions and the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for subscription in self.subscriptions:
            subscription.close()
        await self.health.close()
        await self._tasks.close()
        await close_peer_connection(self.pc)
        for source in self._sources:
            source.stop()
