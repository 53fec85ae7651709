"""The receive tap for publishers: their RTP goes to the relay, not to aiortc's decoder.

SRTP datagrams for a known SSRC of a tapped receiver are taken off the ICE connection as they
arrive (no queue, no `RtpPacket`): unprotected with the transport's SRTP session, parsed with
`struct` for abs-send-time and audio level only, then what aiortc does for receiver reports
(StreamStatistics), REMB, RTX unwrapping and NACKs, in `receive_processor`. Anything else (STUN,
DTLS, RTCP, an SSRC not yet routed) takes aiortc's path, which feeds the same processor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import clock
from aiortc.codecs import is_rtx
from aiortc.rate import RateCounter
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, AnyRtcpPacket, RtcpPsfbPacket, RtcpSrPacket, RtpPacket, pack_remb_fci

from media.aiortc.guard import EXTENSION_IDS
from media.aiortc.srtp import drive, unprotect
from media.packets import NTP_EPOCH_MS, Inbound, RateWindow, parse_rtp
from media.rtp import NackSchedule

logger = logging.getLogger(__name__)

InboundHandler = Callable[[int, Inbound, int], None]  # media ssrc, packet, arrival ms
ReportHandler = Callable[[int, int, int], None]  # ssrc, ntp timestamp, rtp timestamp


@dataclass(frozen=True)
class RidExtensions:
    """A simulcast publisher's rid header extension ids, and who learns each SSRC's rid."""

    rid_id: int | None
    repaired_rid_id: int | None
    on_stream: Callable[[int, str], None]  # media ssrc, rid


class Process(Protocol):
    """One received RTP packet, as parsed: payload type, marker, seq, timestamp, SSRC, payload,
    padding size, abs-send-time, audio level, then the arrival time in ms."""

    def __call__(
        self, payload_type: int, marker: int, seq: int, ts: int, ssrc: int, payload: bytes, padding: int,
        abs_send_time: int | None, audio_level: tuple[bool, int] | None, arrival_ms: int,
    ) -> None: ...


class _ReceiverState:
    """The private state of one RTCRtpReceiver that the relay's taps keep up, read in one place.

    Each media SSRC (each layer of a simulcast publisher) has its own NACK generator and schedule:
    one generator fed several sequence spaces would see gaps everywhere and NACK without end.
    """

    def __init__(self, receiver: RTCRtpReceiver, *, repair: bool, on_nack: Callable[[int], None] | None) -> None:
        self.receiver = receiver
        self.codecs: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__codecs")
        self.streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams")
        self.rtx_ssrc: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc")
        self.active: dict[int, object] = getattr(receiver, "_RTCRtpReceiver__active_ssrc")
        self._first_generator: NackGenerator | None = getattr(receiver, "_RTCRtpReceiver__nack_generator")
        self.repair = repair
        self.estimator = getattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator")
        self.nackers: dict[int, tuple[NackGenerator, NackSchedule]] = {}
        self._on_nack = on_nack

    def nacker(self, ssrc: int) -> tuple[NackGenerator, NackSchedule]:
        """The NACK generator and schedule of one media SSRC (the receiver's own for the first)."""
        generator = self._first_generator if not self.nackers and self._first_generator is not None else NackGenerator()
        nacker = self.nackers[ssrc] = (generator, NackSchedule())
        return nacker

    def remb(self, abs_send_time: int, arrival_ms: int, size: int, ssrc: int) -> RtcpPsfbPacket | None:
        """Feed the bitrate estimator (every layer: the browser's top layer waits for it); the REMB
        packet to send when it has a new estimate."""
        remb = self.estimator.add(abs_send_time=abs_send_time, arrival_time_ms=arrival_ms, payload_size=size, ssrc=ssrc)
        rtcp_ssrc = getattr(self.receiver, "_RTCRtpReceiver__rtcp_ssrc")
        if rtcp_ssrc is None or remb is None:
            return None
        return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))

    def due_nacks(self, generator: NackGenerator, schedule: NackSchedule) -> list[int]:
        """Sequence numbers to NACK now: missing ones, first asks and retries (`NackSchedule`)."""
        missing = generator.missing
        if not missing:
            return []
        due = schedule.due(missing, time.monotonic())
        if due and self._on_nack is not None:
            self._on_nack(len(due))
        return due


def receive_processor(
    receiver: RTCRtpReceiver,
    on_inbound: InboundHandler,
    *,
    repair: bool = True,
    on_nack: Callable[[int], None] | None = None,
    on_rtx: Callable[[], None] | None = None,
) -> Process:
    """What aiortc's receiver does for one packet, without its jitter buffer and decoder.

    Statistics (for receiver reports), REMB and RTX unwrapping stay as aiortc does them. Missing
    packets are NACKed at once and again while still missing (`NackSchedule`: aiortc alone NACKs
    each gap once, so a lost NACK or RTX was never repaired); `repair=False` sends no NACKs.
    `on_inbound(ssrc, inbound, arrival_ms)` gets the media SSRC and the packet (keyframe unset);
    `on_nack(n)` counts sequence numbers NACKed, `on_rtx()` retransmissions received.
    """
    state = _ReceiverState(receiver, repair=repair, on_nack=on_nack)
    codecs, streams, rtx_ssrc, active = state.codecs, state.streams, state.rtx_ssrc, state.active
    nackers, estimator = state.nackers, state.estimator
    if estimator is not None and type(estimator.incoming_bitrate) is RateCounter:
        estimator.incoming_bitrate = RateWindow(1000, 8000)  # same figures, O(1) per packet
    now_datetime = clock.current_datetime

    def process(
        payload_type: int, marker: int, seq: int, ts: int, ssrc: int, payload: bytes, padding: int,
        abs_send_time: int | None, audio_level: tuple[bool, int] | None, arrival_ms: int,
    ) -> None:
        if not receiver._enabled:
            return
        if estimator is not None and abs_send_time is not None:
            remb = state.remb(abs_send_time, arrival_ms, len(payload) + padding, ssrc)
            if remb is not None:
                drive(receiver._send_rtcp(remb))
        codec = codecs.get(payload_type)
        if codec is None:
            return
        if not seq & 0x1F or ssrc not in active:  # for getSynchronizationSources (10 s window): sampled
            active[ssrc] = now_datetime()
        inbound = Inbound(
            sequence_number=seq, timestamp=ts, marker=marker, payload=payload, keyframe=False, audio_level=audio_level
        )
        stats = streams.get(ssrc)
        if stats is None:
            stats = streams[ssrc] = StreamStatistics(codec.clockRate)
        stats.add(inbound)  # type: ignore[arg-type]  # reads sequence_number and timestamp only
        retransmitted = is_rtx(codec)
        if retransmitted:
            original_ssrc = rtx_ssrc.get(ssrc)
            if original_ssrc is None or len(payload) < 2 or codec.parameters.get("apt") not in codecs:
                return
            ssrc = original_ssrc
            inbound.sequence_number = (payload[0] << 8) | payload[1]
            inbound.payload = payload[2:]
            if on_rtx is not None:
                on_rtx()
        if repair:
            generator, schedule = nackers.get(ssrc) or state.nacker(ssrc)
            seq = inbound.sequence_number
            if retransmitted:
                schedule.repaired(seq, time.monotonic())
            if not generator.missing and generator.max_seq == (seq - 1) & 0xFFFF:
                generator.max_seq = seq  # in order, nothing missing: all that add() would do
            else:
                generator.add(inbound)  # type: ignore[arg-type]  # reads sequence_number only
            due = state.due_nacks(generator, schedule)
            if due:
                drive(receiver._send_rtcp_nack(ssrc, due))
        on_inbound(ssrc, inbound, arrival_ms)

    return process


def process_packet(process: Process, packet: RtpPacket, arrival_ms: int) -> None:
    """Hand one packet parsed by aiortc to `process`."""
    ext = packet.extensions
    process(
        packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
        packet.payload, packet.padding_size, ext.abs_send_time, ext.audio_level, arrival_ms,
    )


def tap_publisher(
    receiver: RTCRtpReceiver,
    on_inbound: InboundHandler,
    *,
    repair: bool = True,
    on_nack: Callable[[int], None] | None = None,
    on_rtx: Callable[[], None] | None = None,
    rids: RidExtensions | None = None,
) -> None:
    """Route a publisher's RTP to `on_inbound` (see `receive_processor`), off the socket as it arrives.

    With `rids` (a simulcast publisher), each media SSRC's rid is read from its first packets,
    which take aiortc's path (the browser stops sending the extension once receiver reports
    acknowledge the SSRC): `rids.on_stream(ssrc, rid)` is called, and an RTX SSRC is paired with
    its layer's media SSRC through its repaired rid.
    """
    process = receive_processor(receiver, on_inbound, repair=repair, on_nack=on_nack, on_rtx=on_rtx)
    rtx_ssrc: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc")
    media_of_rid: dict[str, int] = {}
    if rids is not None:
        ids = getattr(receiver.transport._rtp_header_extensions_map, EXTENSION_IDS)
        ids.rtp_stream_id, ids.repaired_rtp_stream_id = rids.rid_id, rids.repaired_rid_id

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        # aiortc's path (packets of an SSRC not yet routed): runs inside its DTLS receive loop.
        try:
            if rids is not None:
                ext = packet.extensions
                if ext.rtp_stream_id is not None and media_of_rid.get(ext.rtp_stream_id) != packet.ssrc:
                    media_of_rid[ext.rtp_stream_id] = packet.ssrc
                    rids.on_stream(packet.ssrc, ext.rtp_stream_id)
                elif ext.repaired_rtp_stream_id is not None and ext.repaired_rtp_stream_id in media_of_rid:
                    rtx_ssrc[packet.ssrc] = media_of_rid[ext.repaired_rtp_stream_id]
            process_packet(process, packet, arrival_time_ms)
        except Exception:  # noqa: BLE001 - must never escape into aiortc's receive loop
            logger.exception("relay tap failed")

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    receiver._relay_process = process  # type: ignore[attr-defined]
    _lean_receive(receiver.transport)


def _lean_receive(dtls: RTCDtlsTransport) -> None:
    """Take SRTP (not SRTCP) datagrams for receivers tapped by `tap_publisher` off `dtls`'s ICE connection."""
    connection = getattr(dtls.transport, "_connection", None)
    if connection is None or getattr(connection, "_relay_lean", False):
        return
    original = connection.data_received
    router = dtls._rtp_router
    ssrc_table = router.ssrc_table
    pt_table = router.payload_type_table
    ids = getattr(dtls._rtp_header_extensions_map, EXTENSION_IDS)
    time_ = time.time

    def data_received(data: bytes, component: int) -> None:
        if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
            srtp = dtls._rx_srtp
            receiver = ssrc_table.get(int.from_bytes(data[8:12], "big"))
            process = getattr(receiver, "_relay_process", None)
            if (
                process is not None
                and srtp is not None
                and receiver in pt_table.get(data[1] & 0x7F, ())
                and dtls._state is DtlsState.CONNECTED
            ):
                arrival_ms = int(time_() * 1000) + NTP_EPOCH_MS  # as aiortc's clock.current_ms(), cheaper
                dtls._RTCDtlsTransport__rx_bytes += len(data)  # type: ignore[attr-defined]
                dtls._RTCDtlsTransport__rx_packets += 1  # type: ignore[attr-defined]
                try:
                    # As aiortc does, a packet that fails authentication or the replay check is dropped.
                    plaintext = unprotect(srtp._srtp[0], data)
                    if plaintext is not None:
                        connection._relay_heard = arrival_ms  # authenticated: consent (media/consent.py)
                        parsed = parse_rtp(plaintext, ids.abs_send_time, ids.audio_level)
                        if parsed is not None:
                            process(*parsed, arrival_ms)
                except Exception:  # noqa: BLE001 - must never escape into the event loop's datagram callback
                    logger.exception("lean receive failed")
                return
        original(data, component)

    connection.data_received = data_received
    connection._relay_lean = True


def stop_receiver(receiver: RTCRtpReceiver) -> None:
    """Make a tapped receiver drop whatever still arrives (its publication moved to another connection)."""
    receiver._enabled = False


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI to the publisher for `media_ssrc`."""
    await receiver._send_rtcp_pli(media_ssrc)


def tap_sender_reports(receiver: RTCRtpReceiver, on_report: ReportHandler) -> None:
    """Call `on_report(ssrc, ntp, rtp)` for every RTCP sender report the publisher sends."""
    original = receiver._handle_rtcp_packet

    async def handle(packet: AnyRtcpPacket) -> None:
        try:
            if isinstance(packet, RtcpSrPacket):
                on_report(packet.ssrc, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        except Exception:  # noqa: BLE001 - runs inside aiortc's receive loop
            logger.exception("sender report tap failed")
        await original(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]
