"""`Publication`: one inbound track and the subscriptions it feeds (mediasoup's Producer).

It receives the publisher's packets from the receive tap, keeps what a late subscriber needs (the
latest keyframe, the packets since a fresh one) and fans each packet out to its subscriptions.
`close()` is idempotent and cascades to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from media.aiortc import receive
from media.counters import RelayCounters
from media.packets import Inbound
from media.rtp import is_keyframe_start
from media.simulcast import SimulcastOffer, vp8_keyframe_size
from media.tasks import TaskGroup

if TYPE_CHECKING:
    from media.subscription import Subscription

logger = logging.getLogger(__name__)

PublicationId = NewType("PublicationId", str)

KEYFRAME_REQUEST_INTERVAL = 0.5
# A subscriber that starts within this long after a keyframe gets the frames since, at once.
GOP_REPLAY_AGE = 0.5
GOP_REPLAY_PACKETS = 256
# A simulcast layer without a packet for this long is not being sent (the browser dropped it).
LAYER_IDLE = 0.5
LAYER_CHECK_INTERVAL = 0.1
# Each layer's bitrate is measured over windows this long (a subscriber's bandwidth is shared by it).
RATE_WINDOW = 1.0
# Until a layer is measured: what a browser sends for 1/4, 1/2 and full of a 960x540 capture.
NOMINAL_VIDEO_RATES = (150_000.0, 450_000.0, 1_300_000.0)
NOMINAL_AUDIO_RATE = 40_000.0


@dataclass(frozen=True)
class CodecInfo:
    """The codec a publication is encoded with, as negotiated with its publisher."""

    mime_type: str
    clock_rate: int
    parameters: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """Short codec name such as `VP8`, `H264`, `opus`."""
        return self.mime_type.split("/", 1)[-1]


@dataclass(frozen=True)
class CachedKeyframe:
    """The RTP payloads of one complete keyframe, as received, and when it completed."""

    codec: CodecInfo
    payloads: tuple[bytes, ...]
    at: float


class Publication:
    """One inbound track (camera, microphone, WHIP ...) and the subscriptions it feeds."""

    def __init__(
        self,
        *,
        owner: str,
        kind: str,
        source: str,
        codec: CodecInfo,
        receiver: RTCRtpReceiver | None,
        counters: RelayCounters,
        tasks: TaskGroup,
        clock: Callable[[], float] = time.monotonic,
        publication_id: PublicationId | None = None,
        simulcast: SimulcastOffer | None = None,
    ) -> None:
        # A publication relayed in from another node keeps its origin's id: one id room-wide.
        self.id = publication_id or PublicationId(uuid.uuid4().hex[:12])
        self.owner = owner
        self.kind = kind
        self.source = source
        self.codec = codec
        self.muted = False
        # Server-enforced: while True nothing of this publication reaches any subscriber,
        # whatever its client keeps sending (a chair's mute or camera stop).
        self.blocked = False
        self.closed = False
        self.audio_level: int | None = None  # -dBov of the last packet (RFC 6464), 127 = silence
        self.on_audio_level: Callable[[Publication, int, int], None] | None = None
        # Taps off the relay path (media/recording.py): each gets every packet of the top layer that is
        # not blocked, and must only queue it (cheap, never raising, never blocking).
        self.taps: tuple[Callable[[Inbound], None], ...] = ()
        self.media_ssrc: int | None = None
        # A simulcast publisher's layers, lowest first, and the layer of each media SSRC seen.
        self.simulcast = simulcast
        self.layers: tuple[str, ...] = simulcast.rids if simulcast is not None else ()
        self.layer_ssrcs: dict[int, int] = {}  # layer -> media ssrc
        self._layer_of: dict[int, int] = {}  # media ssrc -> layer
        self.layer_sizes: dict[int, tuple[int, int]] = {}  # layer -> width, height of its last keyframe
        self._layer_seen: dict[int, float] = {}  # layer -> its last packet
        self._sending: tuple[int, ...] = ()  # the layers the publisher sends now, lowest first
        self._sending_at = 0.0
        self._rate_bytes: dict[int, int] = {}  # layer -> bytes this window
        self._rate_start = clock()
        self.layer_rates: dict[int, float] = {}  # layer -> bits/s over the last window
        self.last_packet_at: float | None = None
        self.last_keyframe_at: float | None = None
        self.packets = 0
        self._receiver = receiver
        self._counters = counters
        self._tasks = tasks
        self._clock = clock
        self._subscriptions: dict[str, Subscription] = {}
        self._fanout: tuple[Subscription, ...] = ()  # the same, as the hot path iterates them
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._keyframe_pending = False
        self._on_close: list[Callable[[Publication], None]] = []
        # The latest complete keyframe's payloads, kept for snapshots (decoded off the relay path).
        self.keyframe: CachedKeyframe | None = None
        self._keyframe_parts: list[bytes] | None = None
        self._keyframe_ts = 0
        self._keyframe_next_seq = 0
        self._keyframe_waiters: list[asyncio.Future[CachedKeyframe]] = []
        # The packets since the latest keyframe, while it is fresh: a late joiner starts at once.
        # Per simulcast layer (0 alone otherwise): the packets since its keyframe and when it came.
        self._gops: dict[int, tuple[list[Inbound], float]] = {}
        # How much of it is kept: a publisher that cannot be asked for a keyframe (a camera) keeps more.
        self.gop_replay_age = GOP_REPLAY_AGE
        self.gop_replay_packets = GOP_REPLAY_PACKETS
        # The publisher's latest RTCP sender report for its media SSRC: NTP, RTP, our wall clock then.
        self.sender_report: tuple[int, int, float] | None = None
        self.sender_reports: dict[int, tuple[int, int, float]] = {}  # per simulcast layer
        self._repair = True
        if receiver is not None:  # None: fed by its owner through `feed` (a camera pulled over RTSP)
            self._tap(repair=True)
            receive.tap_sender_reports(receiver, self._on_sender_report)

    def set_upstream_repair(self, enabled: bool) -> None:
        """NACK the publisher for lost packets (the default), or not (to measure what repair is worth)."""
        self._repair = enabled
        self._tap(repair=enabled)

    def rebind(self, receiver: RTCRtpReceiver, tasks: TaskGroup) -> None:
        """Continue this publication from another receiver: its participant came back on a new
        connection. Subscriptions stay as they are (same sender, same mid, sequence numbers and
        timestamps continuous) and restart on the new source's first keyframe, so subscribers
        see the picture continue rather than a track end and another begin."""
        if self._receiver is not None:
            receive.stop_receiver(self._receiver)  # the old source, if it still sends, must not interleave
        self._receiver = receiver
        self._tasks = tasks
        self.media_ssrc = None
        self.sender_report = None
        self.keyframe = None
        self._keyframe_parts = None
        self._gops = {}
        self._keyframe_pending = False  # its timer went with the old connection's tasks
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._tap(repair=self._repair)
        receive.tap_sender_reports(receiver, self._on_sender_report)
        for subscription in self._subscriptions.values():
            subscription.waiting_keyframe = self.kind == "video"
            subscription.rebase()

    def _tap(self, *, repair: bool) -> None:
        if self._receiver is None:
            return
        counters = self._counters

        def nacked(count: int) -> None:
            counters.upstream_nacks += count

        def repaired() -> None:
            counters.upstream_retransmissions += 1

        offer = self.simulcast
        rids = None if offer is None else receive.RidExtensions(offer.rid_id, offer.repaired_rid_id, self._on_stream)
        receive.tap_publisher(self._receiver, self._on_packet, repair=repair, on_nack=nacked, on_rtx=repaired, rids=rids)

    def layer_for(self, wanted: int) -> int:
        """The layer to send someone who wants `wanted`: it, or the nearest below it that the
        publisher sends now (the lowest it sends when none is below)."""
        now = self._clock()
        if now - self._sending_at > LAYER_CHECK_INTERVAL:
            self._sending_at = now
            self._sending = tuple(sorted(l for l, at in self._layer_seen.items() if now - at < LAYER_IDLE))
        sending = self._sending
        if not sending or wanted in sending:
            return wanted
        below = [layer for layer in sending if layer <= wanted]
        return below[-1] if below else sending[0]

    def _roll_rates(self, now: float) -> None:
        elapsed = now - self._rate_start
        self.layer_rates = {layer: octets * 8 / elapsed for layer, octets in self._rate_bytes.items()}
        self._rate_bytes = {}
        self._rate_start = now

    def rates(self) -> tuple[float, ...]:
        """Bits/s a subscriber receives at each layer it may ask for, lowest first (one entry
        for a single-layer publication): measured, or nominal until measured."""
        if self.kind != "video":
            return (self.layer_rates.get(0, NOMINAL_AUDIO_RATE),)
        if not self.layers:
            return (self.layer_rates.get(0, NOMINAL_VIDEO_RATES[-1]),)
        nominal = NOMINAL_VIDEO_RATES[-len(self.layers):]
        rates = []
        for wanted in range(len(self.layers)):
            layer = self.layer_for(wanted)
            rates.append(self.layer_rates.get(layer, nominal[min(layer, len(nominal) - 1)]))
        return tuple(rates)

    def _on_stream(self, ssrc: int, rid: str) -> None:
        if rid in self.layers:
            layer = self.layers.index(rid)
            self.layer_ssrcs[layer] = ssrc
            self._layer_of[ssrc] = layer

    @property
    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions of this publication."""
        return list(self._subscriptions.values())

    def on_close(self, callback: Callable[[Publication], None]) -> None:
        """Call `callback` once when this publication closes."""
        self._on_close.append(callback)

    def add_subscription(self, subscription: Subscription) -> None:
        """Start delivering to `subscription`; ask the publisher for a keyframe for it."""
        self._subscriptions[subscription.id] = subscription
        self._fanout = tuple(self._subscriptions.values())
        if self.kind == "video":
            self.request_keyframe()

    def remove_subscription(self, subscription: Subscription) -> None:
        """Stop delivering to `subscription`."""
        self._subscriptions.pop(subscription.id, None)
        self._fanout = tuple(self._subscriptions.values())

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval; a throttled ask is deferred."""
        if self.kind != "video" or self.closed:
            return
        now = self._clock()
        wait = self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL - now
        if wait > 0:
            if not self._keyframe_pending:
                self._keyframe_pending = True
                self._tasks.call_later(wait, self._deferred_keyframe_request)
            return
        self._send_keyframe_request(now)

    def _deferred_keyframe_request(self) -> None:
        self._keyframe_pending = False
        if not self.closed and any(s.waiting_keyframe for s in self._subscriptions.values()):
            self._send_keyframe_request(self._clock())

    def _send_keyframe_request(self, now: float) -> None:
        # Every layer of a simulcast publisher: subscriptions wait on different ones.
        ssrcs = list(self.layer_ssrcs.values()) if self.layers else [self.media_ssrc] if self.media_ssrc else []
        if not ssrcs:
            return
        self._last_keyframe_request = now
        self._counters.keyframe_requests += 1
        if self._receiver is None:  # nobody to ask (a camera): its next keyframe comes on its own
            return
        for ssrc in ssrcs:
            self._tasks.spawn(receive.request_keyframe(self._receiver, ssrc), name="pli")

    def restart(self) -> None:
        """The source began a new stream (a camera reconnected): subscriptions continue from its
        next keyframe, and nothing of the old stream is replayed to anyone."""
        self._gops = {}
        self._keyframe_parts = None
        for subscription in self._subscriptions.values():
            subscription.waiting_keyframe = self.kind == "video"
            subscription.rebase()

    def feed(self, ssrc: int, inbound: Inbound) -> None:
        """One packet from a source that is no receiver of ours (a camera pulled over RTSP)."""
        self._on_packet(ssrc, inbound, 0)

    def _on_sender_report(self, ssrc: int, ntp: int, rtp: int) -> None:
        if ssrc == self.media_ssrc:
            self.sender_report = (ntp, rtp, time.time())
        if ssrc in self._layer_of:
            self.sender_reports[self._layer_of[ssrc]] = (ntp, rtp, time.time())

    def _on_packet(self, ssrc: int, inbound: Inbound, arrival_time_ms: int) -> None:
        layer = 0
        if self.layers:
            known = self._layer_of.get(ssrc)
            if known is None:
                return  # a layer whose rid was not read (yet): nobody could place it
            layer = known
        counters = self._counters
        counters.packets_received += 1
        counters.bytes_received += len(inbound.payload)
        self.packets += 1
        now = self.last_packet_at = self._clock()
        self._rate_bytes[layer] = self._rate_bytes.get(layer, 0) + len(inbound.payload)
        if now - self._rate_start >= RATE_WINDOW:
            self._roll_rates(now)
        if self.layers:
            self._layer_seen[layer] = now
        if self.layers and layer < self.layer_for(len(self.layers) - 1):
            # A lower layer: forwarded only; snapshots and statistics keep to the top one sent.
            if is_keyframe_start(self.codec.name, inbound.payload):
                inbound.keyframe = True
                self._note_size(layer, inbound.payload)
            if not self.blocked:
                self._keep_gop(inbound, now, layer)
            self._forward(inbound, layer)
            return
        first = self.media_ssrc is None
        self.media_ssrc = ssrc
        video = self.kind == "video"
        keyframe = inbound.keyframe = video and is_keyframe_start(self.codec.name, inbound.payload)
        audio_level = inbound.audio_level
        if video:
            if keyframe:
                self.last_keyframe_at = now
                if self.layers:
                    self._note_size(layer, inbound.payload)
            self._collect_keyframe(inbound, keyframe)
            if not self.blocked:  # what was sent while blocked must never be replayed
                self._keep_gop(inbound, now, layer)
            if first and self._subscriptions:
                self.request_keyframe()
        elif audio_level is not None:
            self.audio_level = audio_level[1]
            if self.on_audio_level is not None:
                self.on_audio_level(self, audio_level[1], arrival_time_ms)
        if not self.blocked:
            for tap in self.taps:
                tap(inbound)
        self._forward(inbound, layer)

    def _forward(self, inbound: Inbound, layer: int) -> None:
        if self.blocked or not self._subscriptions:
            return
        counters = self._counters
        sent = octets = 0
        for subscription in self._fanout:
            size = subscription.forward(inbound, layer)
            if size:
                sent += 1
                octets += size
        inbound.tails.clear()  # histories keep the packet, not a tail per subscriber
        if sent:
            counters.packets_forwarded += sent
            counters.bytes_forwarded += octets
            counters.forward_delay.observe(time.perf_counter() - inbound.arrival)  # one per packet: cheap

    def _note_size(self, layer: int, payload: bytes) -> None:
        size = vp8_keyframe_size(payload) if self.codec.name.upper() == "VP8" else None
        if size is not None:
            self.layer_sizes[layer] = size

    def _collect_keyframe(self, packet: Inbound, starts: bool) -> None:
        if starts and (self._keyframe_parts is None or packet.timestamp != self._keyframe_ts):
            self._keyframe_parts = []
            self._keyframe_ts = packet.timestamp
            self._keyframe_next_seq = packet.sequence_number
        parts = self._keyframe_parts
        if parts is None:
            return
        if packet.timestamp != self._keyframe_ts or packet.sequence_number != self._keyframe_next_seq:
            self._keyframe_parts = None  # a gap: this keyframe cannot be decoded, wait for the next
            return
        parts.append(packet.payload)
        self._keyframe_next_seq = (packet.sequence_number + 1) & 0xFFFF
        if packet.marker:
            self.keyframe = CachedKeyframe(self.codec, tuple(parts), self._clock())
            self._keyframe_parts = None
            waiters, self._keyframe_waiters = self._keyframe_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(self.keyframe)

    def _keep_gop(self, inbound: Inbound, now: float, layer: int) -> None:
        entry = self._gops.get(layer)  # per packet: no tuple built when there is nothing to keep
        if inbound.keyframe and (entry is None or entry[0][0].timestamp != inbound.timestamp):
            self._gops[layer] = ([inbound], now)
        elif entry is not None:
            gop, started = entry
            if now - started < self.gop_replay_age and len(gop) < self.gop_replay_packets:
                gop.append(inbound)
            else:
                del self._gops[layer]

    def replay_to(self, subscription: Subscription, layer: int = 0) -> bool:
        """Send a starting subscriber the packets of `layer` since a fresh keyframe; False if there is none."""
        gop, started = self._gops.get(layer) or ([], 0.0)
        if not gop or self._clock() - started >= self.gop_replay_age or self.blocked:
            return False
        for inbound in list(gop):
            size = subscription.send(inbound)
            inbound.tails.clear()
            if size:
                self._counters.packets_forwarded += 1
                self._counters.bytes_forwarded += size
        return True

    def block(self, blocked: bool) -> None:
        """Stop (or resume) forwarding to every subscriber; resuming waits for a keyframe."""
        if self.blocked == blocked:
            return
        self.blocked = blocked
        self._gops = {}
        if not blocked:
            for subscription in self._subscriptions.values():
                subscription.waiting_keyframe = self.kind == "video"
                subscription.rebase()
        if not blocked and self.kind == "video":
            self.request_keyframe()

    def next_keyframe(self) -> asyncio.Future[CachedKeyframe]:
        """A future for the next complete keyframe (asks the publisher for one)."""
        waiter: asyncio.Future[CachedKeyframe] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(waiter)
        self.request_keyframe()
        return waiter

    def close(self) -> None:
        """End this publication and every subscription to it (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for waiter in self._keyframe_waiters:
            if not waiter.done():
                waiter.cancel()
        for subscription in list(self._subscriptions.values()):
            subscription.close()
        for callback in self._on_close:
            callback(self)
        self._on_close.clear()
