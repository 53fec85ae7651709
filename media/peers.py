"""A participant's two connections: the publisher connection (the client offers its tracks) and
the subscriber connection (the server offers what the client receives, renegotiating as tracks
come and go), after LiveKit's two-connection client model."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from media.aiortc.ice import close_peer_connection, enlarge_buffers_when_gathered, guard_receive_when_gathered
from media.aiortc.reports import send_sender_reports, take_over_sender_reports
from media.aiortc.send import PermanentSource, tap_sender
from media.aiortc.transceivers import media_codecs, remote_sends
from media.counters import RelayCounters
from media.liveness import Failure, LivenessSettings, PeerHealth, PeerState, StateCallback
from media.publication import CodecInfo, Publication, PublicationId
from media.rtp import SequenceRewriter
from media.sdp import answer_opus
from media.simulcast import answer_simulcast, simulcast_offers
from media.subscriber_link import PausedCallback, SubscriberLink, ignore_paused
from media.subscription import Subscription
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT = 15.0
# Until a subscriber has answered once, its offers carry at most this many tracks: a client that
# says hello and then nothing costs a small offer, not one m-line per publication in the room.
FIRST_OFFER_TRACKS = 2

# The orphaned publication (same owner, kind and source) a new publisher connection continues, if any.
Adopt = Callable[[str, str, CodecInfo], Publication | None]


def ignore_health(state: PeerState, failure: Failure | None) -> None:
    """A health callback for owners that do not watch their connection."""


async def report_loop(subscriptions: Callable[[], Iterable[Subscription]]) -> None:
    """Send the RTCP sender reports of a connection's subscriptions, compounded: one datagram per
    connection and interval rather than one per sender (a wall of 32 tiles was woken 32 times a
    second for them). RFC 3550's interval, randomized over [0.5, 1.5] s."""
    while True:
        await asyncio.sleep(0.5 + random.random())
        send_sender_reports([s.sender for s in subscriptions() if s.prepare_report()])


class NegotiationError(Exception):
    """An SDP could not be applied; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def make_peer_connection(ice_servers: Sequence[str]) -> RTCPeerConnection:
    """A peer connection with the configured STUN/TURN servers (none: host candidates only).

    Max-bundle: every transceiver shares the first one's transport from the start. With aiortc's
    default ("balanced") a transceiver added to a fresh connection could get a transport of its
    own that the answer's BUNDLE group never merges, so that track's transport never started and
    a subscriber joining a room with two video publishers received only one of them.
    """
    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer(urls=url) for url in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
    )
    enlarge_buffers_when_gathered(pc)  # a busy relay must not drop a keyframe burst
    guard_receive_when_gathered(pc)  # an empty datagram or a malformed packet ends nothing
    return pc


def codec_info(transceiver: RTCRtpTransceiver) -> CodecInfo:
    """The codec negotiated on a transceiver (the first the answer lists)."""
    codecs = media_codecs(transceiver)
    if not codecs:
        raise NegotiationError("bad_sdp", f"no usable codec on m-line {transceiver.mid}")
    codec = codecs[0]
    return CodecInfo(mime_type=codec.mimeType, clock_rate=codec.clockRate, parameters=dict(codec.parameters))


class PublisherPeer:
    """The connection on which a client publishes; each inbound m-line becomes a Publication."""

    def __init__(
        self,
        owner: str,
        *,
        counters: RelayCounters,
        ice_servers: Sequence[str] = (),
        on_publication: Callable[[Publication], None],
        adopt: Adopt | None = None,
        liveness: LivenessSettings = LivenessSettings(),
        on_health: StateCallback = ignore_health,
    ) -> None:
        self.owner = owner
        self.pc = make_peer_connection(ice_servers)
        self.health = PeerHealth(self.pc, settings=liveness, on_change=on_health, label=f"pub:{owner}")
        self.health.start()
        self.publications: dict[str, Publication] = {}  # by mid
        self._counters = counters
        self._on_publication = on_publication
        self._adopt = adopt
        self._tasks = TaskGroup(f"pub:{owner}")
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    async def answer(self, offer_sdp: str, sources: Mapping[str, str]) -> str:
        """Apply the client's offer and return the answer; new m-lines become publications, or
        continue an orphaned publication of the same owner, kind and source (see `Adopt`)."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            for transceiver in self.pc.getTransceivers():
                transceiver.direction = "recvonly"
            # An offer aiortc took can still fail here (an m-section without a direction, say).
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError, KeyError, its own OperationError...
            raise NegotiationError("bad_sdp", f"offer rejected: {exc}") from None
        simulcast = {offer.mid: offer for offer in simulcast_offers(offer_sdp)}
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid in self.publications or not remote_sends(transceiver):
                continue
            kind = transceiver.kind
            source = sources.get(mid) or ("camera" if kind == "video" else "microphone")
            codec = codec_info(transceiver)
            continued = self._adopt(kind, source, codec) if self._adopt is not None else None
            if continued is not None:
                continued.rebind(transceiver.receiver, self._tasks)
                self.publications[mid] = continued
                continue
            publication = Publication(
                owner=self.owner,
                kind=kind,
                source=source,
                codec=codec,
                receiver=transceiver.receiver,
                counters=self._counters,
                tasks=self._tasks,
                simulcast=simulcast.get(mid) if kind == "video" else None,
            )
            self.publications[mid] = publication
            self._on_publication(publication)
        # aiortc's answer drops a=rid / a=simulcast: without them a browser sends its lowest layer alone;
        # and it answers Opus without in-band FEC or DTX.
        return answer_opus(answer_simulcast(offer_sdp, self.pc.localDescription.sdp))

    def release(self, publication: Publication) -> None:
        """Hand a publication over to another connection: closing this one will not close it."""
        for mid, owned in list(self.publications.items()):
            if owned is publication:
                del self.publications[mid]

    async def close(self) -> None:
        """Close every publication and the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for publication in self.publications.values():
            publication.close()
        await self.health.close()
        await self._tasks.close()
        await close_peer_connection(self.pc)


@dataclass
class _Slot:
    """One transceiver of the subscriber connection with its permanent source and current load."""

    transceiver: RTCRtpTransceiver
    source: PermanentSource
    rewriter: SequenceRewriter
    publication: Publication | None = None
    subscription: Subscription | None = None
    link: SubscriberLink | None = None

    def on_feedback(self, kind: str, seqs: list[int]) -> None:
        if kind == "remb" and seqs and self.link is not None:
            self.link.on_remb(seqs[0])
        if self.subscription is not None:
            self.subscription.handle_feedback(kind, seqs)


SendOffer = Callable[[str, dict[str, str]], Awaitable[None]]


class SubscriberPeer:
    """The connection on which the server sends a client what it subscribes to.

    Transceivers are recycled: removing a track sets its transceiver inactive, adding one reuses
    a free transceiver of that kind before creating another, so the offer does not grow without
    bound. Offers go out one at a time; changes made meanwhile are folded into the next offer.
    """

    def __init__(
        self,
        identity: str,
        *,
        counters: RelayCounters,
        send_offer: SendOffer,
        ice_servers: Sequence[str] = (),
        liveness: LivenessSettings = LivenessSettings(),
        on_health: StateCallback = ignore_health,
        on_paused: PausedCallback = ignore_paused,
    ) -> None:
        self.identity = identity
        self.pc = make_peer_connection(ice_servers)
        # Watched from the first offer on: a subscriber with nothing to receive has no connection to lose.
        self.health = PeerHealth(self.pc, settings=liveness, on_change=on_health, label=f"sub:{identity}")
        self.answered = False
        self.negotiations = 0
        self._counters = counters
        self._send_offer = send_offer
        self._slots: list[_Slot] = []
        self._tile_sizes: dict[str, tuple[int, int]] = {}  # publication id -> as the client shows it
        self._wanted: dict[PublicationId, Publication] = {}
        self._tasks = TaskGroup(f"sub:{identity}")
        self._dirty = asyncio.Event()
        self._answer: asyncio.Future[str] | None = None
        self._closed = False
        self._settled = asyncio.Event()
        self._settled.set()
        self._tasks.spawn(self._negotiate_loop(), name="negotiate")
        self._tasks.spawn(report_loop(lambda: self.subscriptions), name="sender-reports")
        # What the subscriber's link carries, from its feedback: layers stepped down and up to fit.
        self.link = SubscriberLink(lambda: self.subscriptions, lambda: self._tile_sizes, on_paused)
        self._tasks.spawn(self.link.run(), name="bandwidth")

    @property
    def subscriptions(self) -> list[Subscription]:
        """Live subscriptions on this connection."""
        return [slot.subscription for slot in self._slots if slot.subscription is not None]

    @property
    def transceiver_count(self) -> int:
        """How many transceivers the connection holds (grows only when all are busy)."""
        return len(self._slots)

    def show_at(self, sizes: Mapping[str, tuple[int, int]]) -> None:
        """The sizes the client shows publications at (device pixels, by publication id): each
        simulcast subscription wants the layer that fills its tile."""
        self._tile_sizes = dict(sizes)  # also for subscriptions not made yet (the offer is on its way)
        for subscription in self.subscriptions:
            size = sizes.get(subscription.publication.id)
            if size is not None:
                subscription.show_at(*size)

    def subscribe(self, publication: Publication) -> None:
        """Deliver `publication` to this client (renegotiates)."""
        if self._closed or publication.closed:
            return
        self._wanted[publication.id] = publication
        self._changed()

    def unsubscribe(self, publication_id: str) -> None:
        """Stop delivering a publication (renegotiates)."""
        if self._wanted.pop(PublicationId(publication_id), None) is not None:
            self._changed()

    def handle_answer(self, sdp: str) -> None:
        """The client's answer to the outstanding offer."""
        if self._answer is None or self._answer.done():
            raise NegotiationError("unexpected_answer", "no subscriber offer is waiting for an answer")
        self._answer.set_result(sdp)

    async def wait_settled(self, timeout: float) -> None:
        """Wait until every requested change has been negotiated (for tests and tools)."""
        await asyncio.wait_for(self._settled.wait(), timeout)

    def _changed(self) -> None:
        self._settled.clear()
        self._dirty.set()

    def _apply_wanted(self) -> None:
        for slot in self._slots:
            publication = slot.publication
            if publication is not None and (publication.closed or publication.id not in self._wanted):
                if slot.subscription is not None:
                    slot.subscription.close()
                slot.subscription = None
                slot.publication = None
                slot.transceiver.direction = "inactive"
        placed = {slot.publication.id for slot in self._slots if slot.publication is not None}
        for publication in list(self._wanted.values()):
            if publication.closed:
                del self._wanted[publication.id]
                continue
            if publication.id in placed:
                continue
            if not self.answered and len(placed) >= FIRST_OFFER_TRACKS:
                continue  # the rest go in the offer after the first answer
            placed.add(publication.id)
            free = next((s for s in self._slots if s.publication is None and s.transceiver.kind == publication.kind), None)
            if free is not None:
                slot = free
            else:
                source = PermanentSource(publication.kind)
                transceiver = self.pc.addTransceiver(source, direction="sendonly")
                take_over_sender_reports(transceiver.sender)
                slot = _Slot(transceiver, source, SequenceRewriter(ts_step=3000 if publication.kind == "video" else 960), link=self.link)
                tap_sender(transceiver.sender, slot.on_feedback)
                self._slots.append(slot)
            slot.publication = publication
            slot.transceiver.direction = "sendonly"

    def _bind(self) -> None:
        for slot in self._slots:
            publication = slot.publication
            if publication is None or slot.subscription is not None or publication.closed:
                continue
            payload_type = self.payload_type(slot.transceiver, publication.codec)
            if payload_type is None:
                logger.warning(
                    "no common codec subscriber=%s publication=%s codec=%s",
                    self.identity, publication.id, publication.codec.mime_type,
                )
                continue
            slot.subscription = Subscription(
                publication,
                subscriber=self.identity,
                sender=slot.transceiver.sender,
                payload_type=payload_type,
                mid=slot.transceiver.mid,
                counters=self._counters,
                rewriter=slot.rewriter,
            )
            size = self._tile_sizes.get(publication.id)
            if size is not None:
                slot.subscription.show_at(*size)

    @staticmethod
    def payload_type(transceiver: RTCRtpTransceiver, codec: CodecInfo) -> int | None:
        """The payload type the transceiver negotiated for `codec`, or None."""
        candidates = [c for c in media_codecs(transceiver) if c.mimeType.lower() == codec.mime_type.lower()]
        if codec.name.upper() == "H264":
            mode = codec.parameters.get("packetization-mode")
            same_mode = [c for c in candidates if c.parameters.get("packetization-mode") == mode]
            candidates = same_mode or candidates
        return candidates[0].payloadType if candidates else None

    async def _negotiate_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._apply_wanted()
            if not self._slots:
                self._settled.set()
                continue
            try:
                await self._negotiate_once()
            except (asyncio.TimeoutError, NegotiationError) as exc:
                # aiortc has no rollback: after a failed round, the next change offers again.
                logger.warning("subscriber negotiation failed identity=%s error=%s", self.identity, exc)
            if not self._dirty.is_set():
                self._settled.set()

    async def _negotiate_once(self) -> None:
        if self.negotiations == 0:
            self.health.start()
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        tracks: dict[str, str] = {
            slot.transceiver.mid: slot.publication.id
            for slot in self._slots
            if slot.publication is not None and slot.transceiver.mid is not None
        }
        self._answer = asyncio.get_running_loop().create_future()
        self.negotiations += 1
        await self._send_offer(self.pc.localDescription.sdp, tracks)
        sdp = await asyncio.wait_for(self._answer, ANSWER_TIMEOUT)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises several types for a bad answer
            raise NegotiationError("bad_sdp", f"answer rejected: {exc}") from None
        self._bind()
        if not self.answered:
            self.answered = True
            placed = {slot.publication.id for slot in self._slots if slot.publication is not None}
            if not placed.issuperset(self._wanted):
                self._dirty.set()  # what the first offer left out

    async def close(self) -> None:
        """Close every subscription, the permanent sources and the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            if slot.subscription is not None:
                slot.subscription.close()
        await self.health.close()
        await self._tasks.close()
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        await close_peer_connection(self.pc)
        for slot in self._slots:
            slot.source.stop()
        self._settled.set()
