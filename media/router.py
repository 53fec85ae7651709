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

from media import aiortc_hooks as hooks
from media.packets import DelayHistogram, Inbound, SentHistory, has_extensions, ntp_now, rtx_packet
from media.rtp import SequenceRewriter, is_keyframe_start
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)

PublicationId = NewType("PublicationId", str)

KEYFRAME_REQUEST_INTERVAL = 0.5
HISTORY_SIZE = 512
# A subscriber that starts within this long after a keyframe gets the frames since, at once.
GOP_REPLAY_AGE = 0.5
GOP_REPLAY_PACKETS = 256


@dataclass
class RelayCounters:
    """Totals the metrics endpoint reads; one instance per server, shared by its routers."""

    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    keyframe_requests: int = 0
    retransmissions: int = 0
    retransmissions_skipped: int = 0  # NACKs for packets forwarded less than a round trip before
    upstream_nacks: int = 0  # sequence numbers NACKed to publishers (first asks and retries)
    upstream_retransmissions: int = 0  # RTX packets received from publishers
    # Per publisher packet: arrival at the relay to its send to the last subscriber of the fan-out.
    forward_delay: DelayHistogram = field(default_factory=DelayHistogram)


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
        # Taps off the relay path (media/recording.py): each gets every packet that is not blocked, and
        # must only queue it (cheap, never raising, never blocking).
        self.taps: tuple[Callable[[Inbound], None], ...] = ()
        self.media_ssrc: int | None = None
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
        self._gop: list[Inbound] = []
        self._gop_started = 0.0
        # How much of it is kept: a publisher that cannot be asked for a keyframe (a camera) keeps more.
        self.gop_replay_age = GOP_REPLAY_AGE
        self.gop_replay_packets = GOP_REPLAY_PACKETS
        # The publisher's latest RTCP sender report for its media SSRC: NTP, RTP, our wall clock then.
        self.sender_report: tuple[int, int, float] | None = None
        self._repair = True
        if receiver is not None:  # None: fed by its owner through `feed` (a camera pulled over RTSP)
            self._tap(repair=True)
            hooks.tap_sender_reports(receiver, self._on_sender_report)

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
            hooks.stop_receiver(self._receiver)  # the old source, if it still sends, must not interleave
        self._receiver = receiver
        self._tasks = tasks
        self.media_ssrc = None
        self.sender_report = None
        self.keyframe = None
        self._keyframe_parts = None
        self._gop = []
        self._keyframe_pending = False  # its timer went with the old connection's tasks
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        self._tap(repair=self._repair)
        hooks.tap_sender_reports(receiver, self._on_sender_report)
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

        hooks.tap_publisher(self._receiver, self._on_packet, repair=repair, on_nack=nacked, on_rtx=repaired)

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
        if self.media_ssrc is None:
            return
        self._last_keyframe_request = now
        self._counters.keyframe_requests += 1
        if self._receiver is None:  # nobody to ask (a camera): its next keyframe comes on its own
            return
        self._tasks.spawn(hooks.request_keyframe(self._receiver, self.media_ssrc), name="pli")

    def restart(self) -> None:
        """The source began a new stream (a camera reconnected): subscriptions continue from its
        next keyframe, and nothing of the old stream is replayed to anyone."""
        self._gop = []
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

    def _on_packet(self, ssrc: int, inbound: Inbound, arrival_time_ms: int) -> None:
        first = self.media_ssrc is None
        self.media_ssrc = ssrc
        self.packets += 1
        now = self.last_packet_at = self._clock()
        counters = self._counters
        counters.packets_received += 1
        counters.bytes_received += len(inbound.payload)
        video = self.kind == "video"
        keyframe = inbound.keyframe = video and is_keyframe_start(self.codec.name, inbound.payload)
        audio_level = inbound.audio_level
        if video:
            if keyframe:
                self.last_keyframe_at = now
            self._collect_keyframe(inbound, keyframe)
            if not self.blocked:  # what was sent while blocked must never be replayed
                self._keep_gop(inbound, now)
            if first and self._subscriptions:
                self.request_keyframe()
        elif audio_level is not None:
            self.audio_level = audio_level[1]
            if self.on_audio_level is not None:
                self.on_audio_level(self, audio_level[1], arrival_time_ms)
        if self.blocked:
            return
        for tap in self.taps:
            tap(inbound)
        if not self._subscriptions:
            return
        sent = octets = 0
        for subscription in self._fanout:
            size = subscription.forward(inbound)
            if size:
                sent += 1
                octets += size
        inbound.tails.clear()  # histories keep the packet, not a tail per subscriber
        if sent:
            counters.packets_forwarded += sent
            counters.bytes_forwarded += octets
            counters.forward_delay.observe(time.perf_counter() - inbound.arrival)  # one per packet: cheap

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

    def _keep_gop(self, inbound: Inbound, now: float) -> None:
        if inbound.keyframe and (not self._gop or self._gop[0].timestamp != inbound.timestamp):
            self._gop = [inbound]
            self._gop_started = now
        elif self._gop:
            if now - self._gop_started < self.gop_replay_age and len(self._gop) < self.gop_replay_packets:
                self._gop.append(inbound)
            else:
                self._gop = []

    def replay_to(self, subscription: Subscription) -> bool:
        """Send a starting subscriber the packets since a fresh keyframe; False if there is none."""
        gop = self._gop
        if not gop or self._clock() - self._gop_started >= self.gop_replay_age or self.blocked:
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
        self._gop = []
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
        self.repair = True  # answer NACKs (tests turn it off to show what repair is worth)
        # Audio too, for its first packet: sending starts by reading what the sender negotiated
        # (header extensions, RTX), which is only known once its transport is up.
        self.waiting_keyframe = True
        self.packets_sent = 0
        self.remb_bitrate: int | None = None
        self._video = publication.kind == "video"
        self._sender = sender
        self._ssrc: int = sender._ssrc
        self._out = hooks.RtpOut(sender)
        self._payload_type = payload_type
        self._mid = mid
        self._read_layout()
        self.octets_sent = 0
        self._reported = (0, 0)  # packets and octets the sender's reports count so far
        self._reported_before = 0  # packets counted at the report before last
        self._rtx: tuple[int, int] | None = None
        self._rtx_seq = 0
        self._counters = counters
        if rewriter is None:
            rewriter = SequenceRewriter(ts_step=3000 if self._video else 960)
        else:
            rewriter.rebase()
        self._rewriter = rewriter
        self._history = SentHistory(HISTORY_SIZE)
        publication.add_subscription(self)

    def forward(self, inbound: Inbound) -> int:
        """Rewrite one publisher packet for this subscriber and send it; the bytes sent, or 0."""
        if self.paused or self.closed:
            return 0
        if self.waiting_keyframe and not self._start(inbound):
            return 0
        return self.send(inbound)

    def _start(self, inbound: Inbound) -> bool:
        if not self._out.connected:
            return False
        # Negotiated state is read when sending starts: the sender is configured by then.
        self._read_layout()
        self._rtx = hooks.sender_rtx(self._sender)
        self._rewriter.rebase()  # whatever was skipped while waiting is no gap to the subscriber
        if not inbound.keyframe and self._video:
            if self.publication.replay_to(self):
                self.waiting_keyframe = False
                return True
            # Keep asking (throttled per publication): the keyframe asked for at subscribe
            # time may have passed before this subscriber's transport was up.
            self.publication.request_keyframe()
            return False
        self.waiting_keyframe = False
        return True

    def _read_layout(self) -> None:
        self._layout = hooks.extension_layout(self._sender)
        self._tail_key = (self._layout, self._mid)
        self._extended = has_extensions(self._layout, self._mid)

    def send(self, inbound: Inbound) -> int:
        """Send one packet now (no keyframe gating); the bytes sent, or 0."""
        seq, ts = self._rewriter.rewrite(inbound.sequence_number, inbound.timestamp)
        tail = inbound.tail(self._tail_key)
        size = self._out.send_rtp(self._payload_type | inbound.marker << 7, seq, ts, self._ssrc, tail, self._extended)
        if not size:
            if not self._out.connected:
                self.waiting_keyframe = self._video
            return 0
        self._history.add(seq, ts, inbound)
        self.packets_sent += 1
        self.octets_sent += len(inbound.payload)
        return size

    @property
    def sender(self) -> RTCRtpSender:
        """The aiortc sender this subscription writes around (its RTCP reports are ours)."""
        return self._sender

    def prepare_report(self) -> bool:
        """Bring the sender's next RTCP sender report up to date (counts, NTP/RTP mapping); True
        when it is due, that is when media went out since the report before last (RFC 3550 6.4)."""
        reported_packets, reported_octets = self._reported
        hooks.count_sent(self._sender, self.packets_sent - reported_packets, self.octets_sent - reported_octets)
        due = self.packets_sent != self._reported_before
        self._reported_before = reported_packets
        self._reported = (self.packets_sent, self.octets_sent)
        if due:
            self._update_mapping()
        return due

    def _update_mapping(self) -> None:
        report = self.publication.sender_report
        if report is None:  # until the publisher reports, map our clock to what we forwarded last
            hooks.set_report_mapping(self._sender, ntp_now(), self._rewriter.last_timestamp)
            return
        # The publisher's own NTP/RTP mapping, carried forward to now in its clock domain,
        # so that its audio and video stay in sync for the subscriber (lip sync).
        ntp, rtp, at = report
        elapsed = time.time() - at
        rtp_now = self._rewriter.output_timestamp(rtp) + int(elapsed * self.publication.codec.clock_rate)
        hooks.set_report_mapping(self._sender, ntp + int(elapsed * 4294967296), rtp_now & 0xFFFFFFFF)

    def rebase(self) -> None:
        """Continue the output sequence after a gap in what is forwarded (resume, source change)."""
        self._rewriter.rebase()

    def handle_feedback(self, kind: str, seqs: list[int]) -> None:
        """A subscriber's RTCP feedback: PLI/FIR goes upstream (throttled), NACKs are answered."""
        if kind == "pli":
            self.publication.request_keyframe()
        elif kind == "remb":
            self.remb_bitrate = seqs[0] if seqs else None
        elif kind == "nack" and self.repair and not self.closed:
            for seq in seqs:
                self._resend(seq)

    def _resend(self, seq: int) -> None:
        entry = self._history.get(seq)
        if entry is None:
            return
        _seq, ts, inbound = entry
        rtt = hooks.round_trip_time(self._sender)
        if rtt is not None and time.perf_counter() - inbound.arrival < rtt:
            # Forwarded less than a round trip ago (a packet repaired upstream, forwarded late):
            # the NACK crossed it on the way, and a resend would only duplicate it (as libwebrtc).
            self._counters.retransmissions_skipped += 1
            return
        tail = inbound.build_tail(self._layout, self._mid)
        if self._rtx is not None:
            rtx_pt, rtx_ssrc = self._rtx
            data = rtx_packet(rtx_pt, self._rtx_seq, rtx_ssrc, seq, inbound.marker, ts, tail, self._extended)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            sent = self._out.send(data)
        else:
            sent = self._out.send_rtp(self._payload_type | inbound.marker << 7, seq, ts, self._ssrc, tail, self._extended) > 0
        if sent:
            self._counters.retransmissions += 1

    def close(self) -> None:
        """Stop delivering (idempotent); the sender stays for reuse by its transceiver."""
        if self.closed:
            return
        self.closed = True
        self._history.clear()
        self.publication.remove_subscription(self)
