"""`Subscription`: one publication delivered to one subscriber (mediasoup's Consumer).

Each packet is forwarded with only its header rewritten (sequence numbers and timestamps
continuous for the subscriber) and kept in a short history to answer the subscriber's NACKs.
`close()` is idempotent.
"""

from __future__ import annotations

import time
import uuid

from aiortc.rtcrtpsender import RTCRtpSender

from media.aiortc import reports, send
from media.aiortc.srtp import RtpOut
from media.counters import RelayCounters
from media.packets import Inbound, SentHistory, has_extensions, ntp_now, rtx_packet
from media.publication import Publication
from media.rtp import SequenceRewriter
from media.simulcast import Layer, LayerSelector, Vp8PictureRewriter, layer_for_tile, simulcast_layers

HISTORY_SIZE = 512


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
        # The subscriber's bandwidth allows at most this layer; None: paused for bandwidth.
        self.allowed_layer: int | None = len(publication.layers) - 1 if publication.layers else 0
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
        self._out = RtpOut(sender)
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
        # A simulcast publication: one layer at a time, switched on the wanted layer's keyframe,
        # VP8 picture ids continuous across switches (H.264 has none to rewrite).
        self.wanted_layer = len(publication.layers) - 1  # the full layer until the page tells its tile size
        self._selector = LayerSelector(self.wanted_layer) if publication.layers else None
        vp8 = publication.codec.name.upper() == "VP8"
        self._pictures = Vp8PictureRewriter() if publication.layers and vp8 else None
        self._last_marker = 1
        publication.add_subscription(self)

    def forward(self, inbound: Inbound, layer: int = 0) -> int:
        """Rewrite one publisher packet (of simulcast `layer`) for this subscriber and send it; the bytes sent, or 0."""
        if self.paused or self.closed or self.allowed_layer is None:
            return 0
        if self._selector is not None and not self._select(inbound, layer):
            return 0
        if self.waiting_keyframe and not self._start(inbound, layer):
            return 0
        return self.send(inbound)

    def _select(self, inbound: Inbound, layer: int) -> bool:
        selector = self._selector
        assert selector is not None
        # Never wait on a layer the publisher does not send now: Chromium starts its top layer
        # only once the bandwidth estimate allows, and drops layers when its CPU is short.
        selector.target = self.publication.layer_for(min(self.wanted_layer, self.allowed_layer or 0))
        if selector.current is None and layer == selector.target and not inbound.keyframe and self.waiting_keyframe:
            # Not started: the packets since this layer's latest keyframe may be replayed at once.
            if not self._start(inbound, layer):
                return False
            selector.current = layer
            return True
        forward, switched = selector.accept(layer, inbound.keyframe)
        if not forward:
            if layer == selector.target:
                self.publication.request_keyframe()  # throttled per publication
            return False
        if switched:
            # A frame of the old layer cut short: one sequence number skipped tells the decoder
            # (as mediasoup), rather than the new keyframe seeming to continue it.
            self._rewriter.rebase(skip=0 if self._last_marker else 1)
            if self._pictures is not None:
                self._pictures.rebase()
        return True

    def show_at(self, width: int, height: int) -> None:
        """The subscriber shows this publication in a tile of `width` x `height` device pixels:
        want the smallest layer that fills it (a simulcast publication; otherwise nothing to do)."""
        layers = self.publication.layers
        if not layers:
            return
        top = self.publication.layer_sizes.get(len(layers) - 1)
        assumed = simulcast_layers(*(top or (960, 540)), layers)
        sizes = self.publication.layer_sizes
        known = [Layer(layer.rid, *sizes.get(index, (layer.width, layer.height))) for index, layer in enumerate(assumed)]
        self.wanted_layer = layer_for_tile(known, width, height)

    def allow(self, layer: int | None) -> None:
        """The subscriber's bandwidth allows at most `layer` (None: pause this one until it allows
        again; resuming starts on a keyframe)."""
        if layer == self.allowed_layer:
            return
        resumed = self.allowed_layer is None
        self.allowed_layer = layer
        if resumed and not self.closed:
            self.waiting_keyframe = True
            self.rebase()
            if self._video:
                self.publication.request_keyframe()

    @property
    def sent_layer(self) -> int | None:
        """The simulcast layer being sent now (None before the first, or for a single layer)."""
        return None if self._selector is None else self._selector.current

    def _start(self, inbound: Inbound, layer: int = 0) -> bool:
        if not self._out.connected:
            return False
        # Negotiated state is read when sending starts: the sender is configured by then.
        self._read_layout()
        self._rtx = send.sender_rtx(self._sender)
        self._rewriter.rebase()  # whatever was skipped while waiting is no gap to the subscriber
        if not inbound.keyframe and self._video:
            if self.publication.replay_to(self, layer):
                self.waiting_keyframe = False
                return True
            # Keep asking (throttled per publication): the keyframe asked for at subscribe
            # time may have passed before this subscriber's transport was up.
            self.publication.request_keyframe()
            return False
        self.waiting_keyframe = False
        return True

    def _read_layout(self) -> None:
        self._layout = send.extension_layout(self._sender)
        self._tail_key = (self._layout, self._mid)
        self._extended = has_extensions(self._layout, self._mid)

    def send(self, inbound: Inbound) -> int:
        """Send one packet now (no keyframe gating); the bytes sent, or 0."""
        seq, ts = self._rewriter.rewrite(inbound.sequence_number, inbound.timestamp)
        if self._pictures is None:
            tail = inbound.tail(self._tail_key)
        else:
            tail = inbound.build_tail(self._layout, self._mid, self._pictures.rewrite(inbound.payload))
        size = self._out.send_rtp(self._payload_type | inbound.marker << 7, seq, ts, self._ssrc, tail, self._extended)
        if not size:
            if not self._out.connected:
                self.waiting_keyframe = self._video
            return 0
        self._history.add(seq, ts, inbound)
        self._last_marker = inbound.marker
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
        reports.count_sent(self._sender, self.packets_sent - reported_packets, self.octets_sent - reported_octets)
        due = self.packets_sent != self._reported_before
        self._reported_before = reported_packets
        self._reported = (self.packets_sent, self.octets_sent)
        if due:
            self._update_mapping()
        return due

    def _update_mapping(self) -> None:
        report = self.publication.sender_report
        if self._selector is not None and self._selector.current is not None:
            report = self.publication.sender_reports.get(self._selector.current)
        if report is None:  # until the publisher reports, map our clock to what we forwarded last
            reports.set_report_mapping(self._sender, ntp_now(), self._rewriter.last_timestamp)
            return
        # The publisher's own NTP/RTP mapping, carried forward to now in its clock domain,
        # so that its audio and video stay in sync for the subscriber (lip sync).
        ntp, rtp, at = report
        elapsed = time.time() - at
        rtp_now = self._rewriter.output_timestamp(rtp) + int(elapsed * self.publication.codec.clock_rate)
        reports.set_report_mapping(self._sender, ntp + int(elapsed * 4294967296), rtp_now & 0xFFFFFFFF)

    def rebase(self) -> None:
        """Continue the output sequence after a gap in what is forwarded (resume, source change)."""
        self._rewriter.rebase()
        if self._selector is not None:
            self._selector.current = None  # start again on the wanted layer's keyframe
        if self._pictures is not None:
            self._pictures.rebase()

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
        rtt = reports.round_trip_time(self._sender)
        if rtt is not None and time.perf_counter() - inbound.arrival < rtt:
            # Forwarded less than a round trip ago (a packet repaired upstream, forwarded late):
            # the NACK crossed it on the way, and a resend would only duplicate it (as libwebrtc).
            self._counters.retransmissions_skipped += 1
            return
        payload = inbound.payload if self._pictures is None else self._pictures.rewrite(inbound.payload)
        tail = inbound.build_tail(self._layout, self._mid, payload)
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
