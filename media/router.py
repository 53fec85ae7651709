"""The media side of a room: publications, subscriptions and the packet relay between them.

Object model after mediasoup: a `RoomRouter` owns its `Publication`s; each publication owns the
`Subscription`s that deliver it to one subscriber each. `close()` is idempotent and cascades.
Nothing here decodes or encodes: packets are forwarded with only their header rewritten.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NewType

from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket

from media import aiortc_hooks as hooks
from media.rtp import SequenceRewriter, is_keyframe_start
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)

PublicationId = NewType("PublicationId", str)

KEYFRAME_REQUEST_INTERVAL = 0.5
HISTORY_SIZE = 512


@dataclass
class RelayCounters:
    """Totals the metrics endpoint reads; one instance per server, shared by its routers."""

    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    keyframe_requests: int = 0
    retransmissions: int = 0


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
        receiver: RTCRtpReceiver,
        counters: RelayCounters,
        tasks: TaskGroup,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = PublicationId(uuid.uuid4().hex[:12])
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
        self.media_ssrc: int | None = None
        self.last_packet_at: float | None = None
        self.last_keyframe_at: float | None = None
        self.packets = 0
        self._receiver = receiver
        self._counters = counters
        self._tasks = tasks
        self._clock = clock
        self._subscriptions: dict[str, Subscription] = {}
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._keyframe_pending = False
        self._on_close: list[Callable[[Publication], None]] = []
        # The latest complete keyframe's payloads, kept for snapshots (decoded off the relay path).
        self.keyframe: CachedKeyframe | None = None
        self._keyframe_parts: list[bytes] | None = None
        self._keyframe_ts = 0
        self._keyframe_next_seq = 0
        self._keyframe_waiters: list[asyncio.Future[CachedKeyframe]] = []
        hooks.tap_receiver(receiver, self._on_packet)

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
        if self.kind == "video":
            self.request_keyframe()

    def remove_subscription(self, subscription: Subscription) -> None:
        """Stop delivering to `subscription`."""
        self._subscriptions.pop(subscription.id, None)

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
        if self.media_ssrc is None:
            return
        self._last_keyframe_request = now
        self._counters.keyframe_requests += 1
        self._tasks.spawn(hooks.request_keyframe(self._receiver, self.media_ssrc), name="pli")

    def _on_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        first = self.media_ssrc is None
        self.media_ssrc = packet.ssrc
        self.packets += 1
        self.last_packet_at = self._clock()
        self._counters.packets_received += 1
        self._counters.bytes_received += len(packet.payload)
        keyframe = self.kind == "video" and is_keyframe_start(self.codec.name, packet.payload)
        if keyframe:
            self.last_keyframe_at = self.last_packet_at
        if self.kind == "video":
            self._collect_keyframe(packet, keyframe)
        if first and self.kind == "video" and self._subscriptions:
            self.request_keyframe()
        for subscription in list(self._subscriptions.values()):
            subscription.forward(packet, keyframe)

    def _collect_keyframe(self, packet: RtpPacket, starts: bool) -> None:
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

    def block(self, blocked: bool) -> None:
        """Stop (or resume) forwarding to every subscriber; resuming waits for a keyframe."""
        if self.blocked == blocked:
            return
        self.blocked = blocked
        if not blocked and self.kind == "video":
            for subscription in self._subscriptions.values():
                subscription.waiting_keyframe = True
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


class Subscription:
    """One publication delivered to one subscriber through one of its senders."""

    def __init__(
        self,
        publication: Publication,
        *,
        subscriber: str,
        sender: RTCRtpSender,
        payload_type: int,
        mid: str | None,
        counters: RelayCounters,
        rewriter: SequenceRewriter | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.publication = publication
        self.subscriber = subscriber
        self.paused = False
        self.closed = False
        self.waiting_keyframe = publication.kind == "video"
        self.packets_sent = 0
        self._sender = sender
        self._payload_type = payload_type
        self._mid = mid
        self._counters = counters
        if rewriter is None:
            rewriter = SequenceRewriter()
        else:
            rewriter.rebase()
        self._rewriter = rewriter
        self._history: list[tuple[int, bytes] | None] = [None] * HISTORY_SIZE
        publication.add_subscription(self)

    def forward(self, packet: RtpPacket, keyframe: bool) -> None:
        """Rewrite one publisher packet for this subscriber and send it."""
        if self.paused or self.closed:
            return
        transport = self._sender.transport
        if transport.state != "connected":
            self.waiting_keyframe = self.publication.kind == "video"
            return
        if self.waiting_keyframe:
            if not keyframe:
                # Keep asking (throttled per publication): the keyframe asked for at subscribe
                # time may have passed before this subscriber's transport was up.
                self.publication.request_keyframe()
                return
            self.waiting_keyframe = False
        seq, ts = self._rewriter.rewrite(packet.sequence_number, packet.timestamp)
        original = (packet.ssrc, packet.payload_type, packet.sequence_number, packet.timestamp, packet.extensions.mid)
        packet.ssrc = self._sender._ssrc
        packet.payload_type = self._payload_type
        packet.sequence_number = seq
        packet.timestamp = ts
        packet.extensions.mid = self._mid
        try:
            data = packet.serialize(hooks.sender_extensions_map(self._sender))
        finally:
            (packet.ssrc, packet.payload_type, packet.sequence_number, packet.timestamp, packet.extensions.mid) = original
        self._history[seq % HISTORY_SIZE] = (seq, data)
        self._send(data, ts, len(packet.payload))

    def _send(self, data: bytes, ts: int, payload_bytes: int) -> None:
        if not hooks.send_rtp_now(self._sender, data):
            return
        self.packets_sent += 1
        self._counters.packets_forwarded += 1
        self._counters.bytes_forwarded += len(data)
        hooks.note_sent(self._sender, ts, payload_bytes)

    def handle_feedback(self, kind: str, seqs: list[int]) -> None:
        """A subscriber's RTCP feedback: PLI/FIR goes upstream (throttled), NACKs are answered."""
        if kind == "pli":
            self.publication.request_keyframe()
            return
        for seq in seqs:
            entry = self._history[seq % HISTORY_SIZE]
            if entry is not None and entry[0] == seq:
                self._counters.retransmissions += 1
                hooks.send_rtp_now(self._sender, entry[1])

    def close(self) -> None:
        """Stop delivering (idempotent); the sender stays for reuse by its transceiver."""
        if self.closed:
            return
        self.closed = True
        self.publication.remove_subscription(self)
