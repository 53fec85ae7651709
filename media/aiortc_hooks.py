"""Every hook into aiortc's internals, in one place.

aiortc decodes every received frame and encodes per sender. The relay needs neither: it takes a
publisher's SRTP datagrams off the ICE connection as they arrive (`tap_publisher`: unprotect with
the transport's SRTP session, a `struct` parse, then aiortc's own receiver statistics, NACK
generator and REMB estimator, RTX unwrapped; anything unusual takes aiortc's path) and sends
rewritten packets itself (`RtpOut`: the subscriber transport's SRTP session through libsrtp's
binding in a shared buffer, then one datagram on the ICE pair's socket), while aiortc's senders
keep sending the RTCP sender reports whose counters and NTP/RTP mapping the relay keeps true.
The names touched here are private to aiortc, aioice, pylibsrtp and asyncio, so aiortc and
pylibsrtp are pinned exactly and `check_hooks()` (run by a test) fails loudly when they move.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import importlib
import logging
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiortc
import pylibsrtp
from aioice.ice import Connection as IceConnection
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc import clock
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rate import RateCounter, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RTCP_SDES,
    RTCP_SR,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    pack_rtcp_packet,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.codecs import is_rtx

from media.liveness import hook_problems as liveness_hook_problems
from media.consent import no_consent_loop
from media.packets import HEADER, NTP_EPOCH_MS, ExtensionLayout, Inbound, RateWindow, parse_rtp
from media.rtp import NackSchedule

logger = logging.getLogger(__name__)

# pylibsrtp's cffi binding to libsrtp (no type stubs), and asyncio's socket transport.
_srtp_binding: Any = importlib.import_module("pylibsrtp._binding")
srtp_ffi, srtp_lib = _srtp_binding.ffi, _srtp_binding.lib
_SelectorTransport: Any = getattr(asyncio.selector_events, "_SelectorTransport")

AIORTC_VERSION = "1.16.0"
PYLIBSRTP_VERSION = "1.0.0"

PacketHandler = Callable[[RtpPacket, int], None]
InboundHandler = Callable[[int, Inbound, int], None]  # media ssrc, packet, arrival ms
FeedbackHandler = Callable[[str, list[int]], None]
ReportHandler = Callable[[int, int, int], None]  # ssrc, ntp timestamp, rtp timestamp

# Private names this module relies on; check_hooks() verifies each.
_RECEIVER_ATTRS = (
    "_RTCRtpReceiver__codecs",
    "_RTCRtpReceiver__remote_streams",
    "_RTCRtpReceiver__rtx_ssrc",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__rtcp_ssrc",
    "_RTCRtpReceiver__active_ssrc",
)
_SENDER_ATTRS = (
    "_RTCRtpSender__rtt",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
    "_RTCRtpSender__cname",
    "_RTCRtpSender__lsr",
    "_RTCRtpSender__lsr_time",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__rtx_payload_type",
    "_rtx_ssrc",
)
_EXTENSION_IDS = "_HeaderExtensionsMap__ids"


class HookMismatch(RuntimeError):
    """aiortc's internals are not what this module was written against."""


def check_hooks() -> None:
    """Raise HookMismatch unless the pinned aiortc exposes every internal used here."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise HookMismatch(f"aiortc {aiortc.__version__} installed, hooks written for {AIORTC_VERSION}")
    for cls, method in (
        (RTCRtpReceiver, "_handle_rtp_packet"),
        (RTCRtpReceiver, "_send_rtcp_pli"),
        (RTCRtpReceiver, "_send_rtcp_nack"),
        (RTCRtpReceiver, "_send_rtcp"),
        (RTCRtpSender, "_handle_rtcp_packet"),
        (RTCDtlsTransport, "_send_rtp"),
        (RTCRtpReceiver, "_handle_rtcp_packet"),
        (RTCRtpSender, "_send_keyframe"),
        (RTCRtpSender, "_run_rtcp"),
        (RTCRtpSender, "_send_rtcp"),
        (StunProtocol, "send_data"),
        (StunProtocol, "datagram_received"),
        (IceConnection, "data_received"),
        (StreamStatistics, "add"),
        (RateCounter, "add"),
        (RateCounter, "rate"),
        (RateCounter, "reset"),
    ):
        if not callable(getattr(cls, method, None)):
            raise HookMismatch(f"{cls.__name__}.{method} is gone")
    if not hasattr(RTCDtlsTransport, "_rtp_header_extensions_map") and "_rtp_header_extensions_map" not in (
        RTCDtlsTransport.__init__.__code__.co_names
    ):
        raise HookMismatch("RTCDtlsTransport._rtp_header_extensions_map is gone")
    for init, names in (
        (RTCDtlsTransport.__init__, ("_tx_srtp", "_rx_srtp", "_state", "_rtp_header_extensions_map")),
        (IceConnection.__init__, ("_nominated", "_protocols")),
        (RTCDtlsTransport.__init__, ("_rtp_router", "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets")),
        (RtpRouter.__init__, ("ssrc_table", "payload_type_table")),
        (RTCRtpReceiver.__init__, ("_enabled",)),
        (RemoteBitrateEstimator.__init__, ("incoming_bitrate", "RateCounter")),
        (NackGenerator.__init__, ("max_seq", "missing")),
        (RTCRtpSender.__init__, ("_rtx_ssrc", "_RTCRtpSender__rtx_payload_type", "_RTCRtpSender__ntp_timestamp")),
    ):
        missing = [n for n in names if n not in init.__code__.co_names]
        if missing:
            raise HookMismatch(f"{init.__qualname__} no longer sets {missing}")
    if not hasattr(DtlsState, "CONNECTED") or not hasattr(aiortc.rtp.HeaderExtensionsMap(), _EXTENSION_IDS):
        raise HookMismatch("DTLS State.CONNECTED or HeaderExtensionsMap ids are gone")
    problems = liveness_hook_problems()
    if problems:
        raise HookMismatch("; ".join(problems))
    if pylibsrtp.__version__ != PYLIBSRTP_VERSION:
        raise HookMismatch(f"pylibsrtp {pylibsrtp.__version__} installed, hooks written for {PYLIBSRTP_VERSION}")
    for function in (_srtp_protect, _srtp_unprotect):
        if srtp_ffi.typeof(function).cname != "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)":
            raise HookMismatch(f"libsrtp's {function.__name__} is now {srtp_ffi.typeof(function).cname}")
    for owner, attribute in ((pylibsrtp.Session, "_srtp"), (_SelectorTransport, "_sock")):
        if attribute not in owner.__init__.__code__.co_names:
            raise HookMismatch(f"{owner.__qualname__}.__init__ no longer sets {attribute}")


def check_instance_hooks(receiver: RTCRtpReceiver | None, sender: RTCRtpSender | None) -> None:
    """Raise HookMismatch unless live receiver/sender objects carry the private state we use."""
    for obj, names in ((receiver, _RECEIVER_ATTRS), (sender, _SENDER_ATTRS)):
        if obj is None:
            continue
        for name in names:
            if not hasattr(obj, name):
                raise HookMismatch(f"{type(obj).__name__} has no {name}")
    if receiver is not None and hasattr(receiver, "_relay_process"):
        dtls = receiver.transport
        connection = getattr(dtls.transport, "_connection", None)
        router = getattr(dtls, "_rtp_router", None)
        if not isinstance(getattr(router, "ssrc_table", None), dict) or not getattr(connection, "_relay_lean", False):
            raise HookMismatch("a publisher's transport has no RTP router tables or lean receive path")
    if sender is not None:
        dtls = sender.transport
        connection = getattr(dtls.transport, "_connection", None)
        if getattr(dtls, "_tx_srtp", None) is None or not isinstance(getattr(connection, "_nominated", None), dict):
            raise HookMismatch("a connected sender's transport has no SRTP session or nominated ICE pair")
        if not hasattr(sender_extensions_map(sender), _EXTENSION_IDS):
            raise HookMismatch("HeaderExtensionsMap has no ids")


class PermanentSource(MediaStreamTrack):
    """A sender's source that never yields a frame, so aiortc never encodes for that sender.

    It outlives the publications its transceiver carries: a sender whose track ends stops
    for good, silently.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    async def recv(self) -> object:  # type: ignore[override]
        """Wait forever (until stopped); the relay writes RTP around the sender instead."""
        await self._never
        raise aiortc.mediastreams.MediaStreamError

    def stop(self) -> None:
        """End the source and wake any waiter."""
        if not self._never.done():
            self._never.set_result(None)
        super().stop()


class _ReceiverState:
    """The private state of one RTCRtpReceiver that the relay's taps keep up, read in one place."""

    def __init__(self, receiver: RTCRtpReceiver, *, repair: bool, on_nack: Callable[[int], None] | None) -> None:
        self.receiver = receiver
        self.codecs: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__codecs")
        self.streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams")
        self.rtx_ssrc: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc")
        self.active: dict[int, object] = getattr(receiver, "_RTCRtpReceiver__active_ssrc")
        self.nack_generator = getattr(receiver, "_RTCRtpReceiver__nack_generator") if repair else None
        self.estimator = getattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator")
        self._schedule = NackSchedule()
        self._on_nack = on_nack

    def remb(self, abs_send_time: int, arrival_ms: int, size: int, ssrc: int) -> RtcpPsfbPacket | None:
        """Feed the bitrate estimator; the REMB packet to send when it has a new estimate."""
        remb = self.estimator.add(abs_send_time=abs_send_time, arrival_time_ms=arrival_ms, payload_size=size, ssrc=ssrc)
        rtcp_ssrc = getattr(self.receiver, "_RTCRtpReceiver__rtcp_ssrc")
        if rtcp_ssrc is None or remb is None:
            return None
        return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))

    def due_nacks(self) -> list[int]:
        """Sequence numbers to NACK now: missing ones, first asks and retries (`NackSchedule`)."""
        missing = self.nack_generator.missing if self.nack_generator is not None else None
        if not missing:
            return []
        due = self._schedule.due(missing, time.monotonic())
        if due and self._on_nack is not None:
            self._on_nack(len(due))
        return due


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_packet: PacketHandler,
    *,
    repair: bool = True,
    on_nack: Callable[[int], None] | None = None,
    on_rtx: Callable[[], None] | None = None,
) -> None:
    """Route a receiver's RTP to `on_packet` instead of its jitter buffer and decoder.

    Statistics (for receiver reports), RTX unwrapping and REMB stay as aiortc does them;
    depacketizing and decoding are skipped. Missing packets are NACKed at once and again while
    still missing (`NackSchedule`: aiortc alone NACKs each gap once, so a lost NACK or RTX was
    never repaired). `repair=False` sends no NACKs. `on_nack(n)` counts sequence numbers
    NACKed, `on_rtx()` retransmissions received.
    """
    state = _ReceiverState(receiver, repair=repair, on_nack=on_nack)
    codecs, streams, rtx_ssrc, active = state.codecs, state.streams, state.rtx_ssrc, state.active
    nack_generator, estimator = state.nack_generator, state.estimator

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        # Runs inside aiortc's DTLS receive loop: an exception here would close the transport.
        try:
            if not receiver._enabled:
                return
            if estimator is not None and packet.extensions.abs_send_time is not None:
                remb = state.remb(
                    packet.extensions.abs_send_time, arrival_time_ms, len(packet.payload) + packet.padding_size, packet.ssrc
                )
                if remb is not None:
                    await receiver._send_rtcp(remb)
            codec = codecs.get(packet.payload_type)
            if codec is None:
                return
            active[packet.ssrc] = clock.current_datetime()
            stats = streams.get(packet.ssrc)
            if stats is None:
                stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
            stats.add(packet)
            if is_rtx(codec):
                original_ssrc = rtx_ssrc.get(packet.ssrc)
                apt = codec.parameters.get("apt")
                if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                    return
                packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
                if on_rtx is not None:
                    on_rtx()
            if nack_generator is not None:
                nack_generator.add(packet)
                due = state.due_nacks()
                if due:
                    await receiver._send_rtcp_nack(packet.ssrc, due)
            on_packet(packet, arrival_time_ms)
        except Exception:  # noqa: BLE001 - must never escape into aiortc's receive loop
            logger.exception("relay tap failed")

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


def tap_publisher(
    receiver: RTCRtpReceiver,
    on_inbound: InboundHandler,
    *,
    repair: bool = True,
    on_nack: Callable[[int], None] | None = None,
    on_rtx: Callable[[], None] | None = None,
) -> None:
    """Like `tap_receiver`, for the relay's publishers, with a lean receive path.

    SRTP datagrams for a known SSRC of this receiver are taken off the ICE connection as they
    arrive (no queue, no `RtpPacket`): unprotected with the transport's SRTP session, parsed with
    `struct` for abs-send-time and audio level only, then the same as aiortc does for receiver
    reports (StreamStatistics), REMB, RTX unwrapping and NACKs. Anything else (STUN, DTLS, RTCP,
    an SSRC not yet routed) takes aiortc's path, which also feeds `on_inbound`.
    `on_inbound(ssrc, inbound, arrival_ms)` gets the media SSRC and the packet (keyframe unset).
    """
    state = _ReceiverState(receiver, repair=repair, on_nack=on_nack)
    codecs, streams, rtx_ssrc, active = state.codecs, state.streams, state.rtx_ssrc, state.active
    nack_generator, estimator = state.nack_generator, state.estimator
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
                _drive(receiver._send_rtcp(remb))
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
        if is_rtx(codec):
            original_ssrc = rtx_ssrc.get(ssrc)
            if original_ssrc is None or len(payload) < 2 or codec.parameters.get("apt") not in codecs:
                return
            ssrc = original_ssrc
            inbound.sequence_number = (payload[0] << 8) | payload[1]
            inbound.payload = payload[2:]
            if on_rtx is not None:
                on_rtx()
        if nack_generator is not None:
            seq = inbound.sequence_number
            if not nack_generator.missing and nack_generator.max_seq == (seq - 1) & 0xFFFF:
                nack_generator.max_seq = seq  # in order, nothing missing: all that add() would do
            else:
                nack_generator.add(inbound)
            due = state.due_nacks()
            if due:
                _drive(receiver._send_rtcp_nack(ssrc, due))
        on_inbound(ssrc, inbound, arrival_ms)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        # aiortc's path (packets of an SSRC not yet routed): runs inside its DTLS receive loop.
        try:
            ext = packet.extensions
            process(
                packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc,
                packet.payload, packet.padding_size, ext.abs_send_time, ext.audio_level, arrival_time_ms,
            )
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
    ids = getattr(dtls._rtp_header_extensions_map, _EXTENSION_IDS)
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
                    plaintext = _unprotect(srtp._srtp[0], data)
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


def tap_sender(sender: RTCRtpSender, on_feedback: FeedbackHandler) -> None:
    """Route a sender's NACK and PLI/FIR to `on_feedback`; reports still feed aiortc's stats."""
    original = sender._handle_rtcp_packet

    async def handle(packet: AnyRtcpPacket) -> None:
        try:
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                on_feedback("nack", list(packet.lost))
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
                on_feedback("pli", [])
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, _ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                on_feedback("remb", [bitrate])
            else:
                await original(packet)
        except Exception:  # noqa: BLE001 - runs inside aiortc's receive loop
            logger.exception("sender feedback tap failed")

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def sender_extensions_map(sender: RTCRtpSender) -> HeaderExtensionsMap:
    """The header extension ids negotiated on the sender's transport."""
    return sender.transport._rtp_header_extensions_map


def receiver_extensions_map(receiver: RTCRtpReceiver) -> HeaderExtensionsMap:
    """The header extension ids negotiated on the receiver's transport."""
    return receiver.transport._rtp_header_extensions_map


def _drive(coro: Coroutine[Any, Any, None]) -> bool:
    try:
        awaited = coro.send(None)
    except StopIteration:
        return True
    except ConnectionError:
        return False
    except Exception:  # noqa: BLE001 - a send failure must not reach the publisher's receive loop
        logger.exception("rtp send failed")
        return False
    if isinstance(awaited, asyncio.Future):
        awaited._asyncio_future_blocking = False
        awaited.add_done_callback(lambda _f: _drive(coro))
    else:
        coro.close()
    return True


def set_report_mapping(sender: RTCRtpSender, ntp_timestamp: int, rtp_timestamp: int) -> None:
    """Set the NTP/RTP pair the sender's next RTCP sender report carries."""
    sender._RTCRtpSender__ntp_timestamp = ntp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]


# Sender reports of one connection, compounded (RFC 8108 5.3): SRs first, then one SDES with a
# CNAME chunk per SSRC, as many senders per datagram as stay under a safe size.
_SR = struct.Struct("!BBHLQLLL")
_REPORTS_PER_DATAGRAM = 14  # 14 x (28-byte SR + ~44-byte CNAME chunk) stays near 1,000 bytes
_SDES_CHUNKS_MAX = 31  # the SDES source count is five bits


def take_over_sender_reports(sender: RTCRtpSender) -> None:
    """Replace aiortc's per-sender RTCP loop (one datagram per sender per second) before the
    sender starts: `send_sender_reports` reports for it instead; the BYE on stop stays."""

    async def run_rtcp() -> None:
        getattr(sender, "_RTCRtpSender__rtcp_started").set()
        try:
            await asyncio.get_running_loop().create_future()  # until stop() cancels
        except asyncio.CancelledError:
            pass
        try:
            await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        finally:
            getattr(sender, "_RTCRtpSender__rtcp_exited").set()

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


def send_sender_reports(senders: list[RTCRtpSender]) -> int:
    """Send the senders' RTCP sender reports and CNAMEs, compounded per transport; the datagrams sent.

    Each report carries the sender's NTP/RTP mapping and counts as aiortc's own would, and keeps
    its last-SR time for the round trip the subscriber's receiver reports give.
    """
    by_transport: dict[RTCDtlsTransport, list[RTCRtpSender]] = {}
    for sender in senders:
        if sender.transport._state is DtlsState.CONNECTED:
            by_transport.setdefault(sender.transport, []).append(sender)
    datagrams = 0
    now = time.time()
    for transport, group in by_transport.items():
        for start in range(0, len(group), _REPORTS_PER_DATAGRAM):
            batch = group[start : start + _REPORTS_PER_DATAGRAM]
            reports = b"".join(_sender_report(sender, now) for sender in batch)
            chunks = [
                sdes_cname_chunk(sender._ssrc, cname)
                for sender in batch
                if (cname := getattr(sender, "_RTCRtpSender__cname")) is not None
            ]
            for first in range(0, len(chunks), _SDES_CHUNKS_MAX):
                group_chunks = chunks[first : first + _SDES_CHUNKS_MAX]
                reports += pack_rtcp_packet(RTCP_SDES, len(group_chunks), b"".join(group_chunks))
            if _drive(transport._send_rtp(reports)):
                datagrams += 1
    return datagrams


def sdes_cname_chunk(ssrc: int, cname: str) -> bytes:
    """One SDES chunk: the SSRC, its CNAME item, then null octets to the next 32-bit boundary
    (RFC 3550 6.5; aiortc's encoder pads the packet, not each chunk)."""
    chunk = struct.pack("!LBB", ssrc, 1, len(cname.encode())) + cname.encode()
    return chunk + b"\x00" * (4 - len(chunk) % 4)


def _sender_report(sender: RTCRtpSender, now: float) -> bytes:
    ntp = getattr(sender, "_RTCRtpSender__ntp_timestamp")
    sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF  # type: ignore[attr-defined]
    sender._RTCRtpSender__lsr_time = now  # type: ignore[attr-defined]
    return _SR.pack(
        0x80, RTCP_SR, 6, sender._ssrc, ntp, getattr(sender, "_RTCRtpSender__rtp_timestamp"),
        getattr(sender, "_RTCRtpSender__packet_count") & 0xFFFFFFFF, getattr(sender, "_RTCRtpSender__octet_count") & 0xFFFFFFFF,
    )


def round_trip_time(sender: RTCRtpSender) -> float | None:
    """The round trip to the subscriber in seconds, from its receiver reports (None until one came)."""
    rtt: float | None = getattr(sender, "_RTCRtpSender__rtt")
    return rtt


def count_sent(sender: RTCRtpSender, packets: int, payload_bytes: int) -> None:
    """Add to the packet and octet counts the sender's RTCP sender reports carry."""
    sender._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count += payload_bytes  # type: ignore[attr-defined]


def extension_layout(sender: RTCRtpSender) -> ExtensionLayout:
    """The header extension ids (mid, abs-send-time, audio level) negotiated on the sender's transport."""
    ids = getattr(sender_extensions_map(sender), _EXTENSION_IDS)
    return ExtensionLayout(mid=ids.mid or 0, abs_send_time=ids.abs_send_time or 0, audio_level=ids.audio_level or 0)


def sender_rtx(sender: RTCRtpSender) -> tuple[int, int] | None:
    """(RTX payload type, RTX SSRC) when the subscriber negotiated RTX on this sender, else None."""
    payload_type = getattr(sender, "_RTCRtpSender__rtx_payload_type")
    return None if payload_type is None else (payload_type, sender._rtx_ssrc)


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


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Also call `callback` when the remote side asks this (client) sender for a keyframe."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


# One plaintext buffer for every subscriber's packets: the relay writes a packet's header and
# tail into it, SRTP protects it in place and the socket sends straight from it. The event loop
# is single-threaded and each send completes before the next starts, so one buffer serves all.
_SCRATCH_SIZE = 2048
_SRTP_TRAILER_ROOM = 144  # pylibsrtp's SRTP_MAX_TRAILER_LEN: the longest tag plus MKI
MAX_PLAINTEXT = _SCRATCH_SIZE - _SRTP_TRAILER_ROOM
_scratch = srtp_ffi.new("char[]", _SCRATCH_SIZE)
_scratch_view = memoryview(srtp_ffi.buffer(_scratch))
_length = srtp_ffi.new("int *")
_srtp_protect = srtp_lib.srtp_protect
_srtp_unprotect = srtp_lib.srtp_unprotect
_pack_header = HEADER.pack_into


def _unprotect(srtp: Any, data: bytes) -> memoryview | None:
    """SRTP-unprotect `data` in the shared buffer: a view of the plaintext (valid until the buffer's
    next use), or None when libsrtp refuses it (authentication, replay) or it does not fit."""
    size = len(data)
    if size > _SCRATCH_SIZE:
        return None
    _scratch_view[:size] = data
    _length[0] = size
    if _srtp_unprotect(srtp, _scratch, _length):
        return None
    return _scratch_view[: _length[0]]


class RtpOut:
    """Sends RTP on one sender's transport: SRTP protect, then one datagram, inline.

    The hot path of the relay. On a direct UDP ICE pair it writes the packet into a shared
    buffer, protects it there with the transport's own SRTP session (libsrtp through
    pylibsrtp's binding, without a copy in and out per packet) and sends it on the pair's
    socket; otherwise (TURN, not yet nominated) it goes through aiortc. A full socket buffer
    drops the datagram, as a network would, rather than queue stale media.
    The transport's own byte/packet totals do not see these packets; the sender's reports do.
    """

    __slots__ = ("_dtls", "_connection", "_pair", "_session", "_srtp", "_sendto", "_addr", "failures")

    def __init__(self, sender: RTCRtpSender) -> None:
        self._dtls = sender.transport
        self._connection: Any = getattr(self._dtls.transport, "_connection", None)
        self._pair: object | None = None
        self._session: pylibsrtp.Session | None = None
        self._srtp: Any = None
        self._sendto: Callable[[Any, Any], int] | None = None
        self._addr: Any = None
        self.failures = 0

    @property
    def connected(self) -> bool:
        """True while the DTLS transport is connected (SRTP keys exist)."""
        return self._dtls._state is DtlsState.CONNECTED

    def send_rtp(self, marker_pt: int, sequence_number: int, timestamp: int, ssrc: int, tail: bytes, extended: bool) -> int:
        """Send the RTP packet of this header (second byte `marker_pt`) and `tail`; the bytes sent, or 0."""
        size = 12 + len(tail)
        pair = self._pair
        if (
            pair is None
            or self._connection._nominated.get(1) is not pair
            or self._dtls._state is not DtlsState.CONNECTED
            or size > MAX_PLAINTEXT
        ):
            header = HEADER.pack(0x90 if extended else 0x80, marker_pt, sequence_number, timestamp, ssrc)
            return size if self.send(header + tail) else 0
        view = _scratch_view
        _pack_header(view, 0, 0x90 if extended else 0x80, marker_pt, sequence_number, timestamp, ssrc)
        view[12:size] = tail
        return size if self._protect_and_send(size) else 0

    def send(self, data: bytes) -> bool:
        """Protect and send one serialized plaintext RTP packet; False when not connected or not sent."""
        if self._dtls._state is not DtlsState.CONNECTED:
            self._pair = None
            return False
        pair = self._connection._nominated.get(1) if self._connection is not None else None
        if pair is None or pair is not self._pair:
            if not self._resolve(pair):
                return _drive(self._dtls._send_rtp(data))
        size = len(data)
        if size > MAX_PLAINTEXT:
            return self._failed("packet of %d bytes is too long" % size)
        _scratch_view[:size] = data
        return self._protect_and_send(size)

    def _protect_and_send(self, size: int) -> bool:
        length = _length
        length[0] = size
        status = _srtp_protect(self._srtp, _scratch, length)
        if status:
            return self._failed("SRTP protect failed with status %d" % status)
        try:
            self._sendto(_scratch_view[: length[0]], self._addr)  # type: ignore[misc]
        except BlockingIOError:
            self.failures += 1  # the socket's send buffer is full: dropped, as on a congested link
            return False
        except OSError as exc:
            return self._failed(str(exc))
        return True

    def _failed(self, error: str) -> bool:
        # Counted, logged once: a send failure must not reach the publisher's receive loop.
        self.failures += 1
        if self.failures == 1:
            logger.warning("rtp send failed error=%s", error)
        return False

    def _resolve(self, pair: Any) -> bool:
        self._pair = None
        if pair is None or type(pair.protocol).send_data is not StunProtocol.send_data:
            return False
        sock = getattr(pair.protocol.transport, "_sock", None)
        session = self._dtls._tx_srtp
        if not isinstance(sock, socket.socket) or session is None:
            return False
        self._session = session  # holds the libsrtp context alive while it is used
        self._srtp = session._srtp[0]
        self._sendto = sock.sendto
        self._addr = pair.remote_addr
        self._pair = pair
        return True


# Socket buffers for ICE sockets: a publisher's keyframe burst or a busy event loop must not
# overflow the kernel's default ~208 KB (about 90 full-size datagrams) and lose packets; bigger
# would only queue seconds of stale media behind a stalled loop.
SOCKET_RECEIVE_BUFFER = 2 << 20  # the kernel doubles it: ~1,800 full-size datagrams
SOCKET_SEND_BUFFER = 1 << 20


def _ice_connections(pc: RTCPeerConnection) -> list[IceConnection]:
    connections: list[IceConnection] = []
    for transceiver in pc.getTransceivers():
        for transport in (transceiver.receiver.transport, transceiver.sender.transport):
            connection = getattr(getattr(transport, "transport", None), "_connection", None)
            if connection is not None and connection not in connections:
                connections.append(connection)
    return connections


def _ice_protocols(pc: RTCPeerConnection) -> list[StunProtocol]:
    # Every gathered local socket, not only the nominated pair's: a datagram may arrive on any.
    return [p for c in _ice_connections(pc) for p in getattr(c, "_protocols", ()) if p.transport is not None]


def set_socket_buffers(sock: socket.socket, receive: int, send: int) -> tuple[int, int]:
    """Set a socket's receive/send buffers, beyond rmem_max/wmem_max when privileged; the sizes granted."""
    linux = sys.platform.startswith("linux")  # Python's socket module lacks the *FORCE names
    for forced, plain, size in (
        (getattr(socket, "SO_RCVBUFFORCE", 33 if linux else None), socket.SO_RCVBUF, receive),
        (getattr(socket, "SO_SNDBUFFORCE", 32 if linux else None), socket.SO_SNDBUF, send),
    ):
        if not size:
            continue
        try:
            if forced is None:
                raise PermissionError
            sock.setsockopt(socket.SOL_SOCKET, forced, size)
        except OSError:  # not root (no CAP_NET_ADMIN): capped by the kernel's *mem_max
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def enlarge_socket_buffers(
    pc: RTCPeerConnection, receive: int = SOCKET_RECEIVE_BUFFER, send: int = SOCKET_SEND_BUFFER
) -> int:
    """Enlarge the buffers of every ICE socket `pc` has gathered; how many sockets were set."""
    count = 0
    for protocol in _ice_protocols(pc):
        if getattr(protocol, "_buffers_set", False):
            continue
        sock = protocol.transport.get_extra_info("socket")
        if sock is None:
            continue
        try:
            set_socket_buffers(sock, receive, send)
        except OSError as exc:
            logger.warning("socket buffers not set error=%s", exc)
            continue
        protocol._buffers_set = True  # type: ignore[attr-defined]
        count += 1
    return count


def enlarge_buffers_when_gathered(
    pc: RTCPeerConnection, receive: int = SOCKET_RECEIVE_BUFFER, send: int = SOCKET_SEND_BUFFER
) -> None:
    """Enlarge `pc`'s ICE socket buffers as soon as its candidates are gathered (call at creation)."""

    def gathered() -> None:
        if pc.iceGatheringState == "complete":
            enlarge_socket_buffers(pc, receive, send)

    pc.on("icegatheringstatechange", gathered)


def guard_receive_when_gathered(pc: RTCPeerConnection) -> None:
    """Make `pc`'s transports drop what would end them, once they exist (call at creation).

    aiortc's DTLS receive loop reads `data[0]` of every datagram and catches only ValueError from
    its RTP and RTCP parsers; anything else ends the loop and, with it, the connection. Anyone
    who can reach the port can send an empty UDP datagram (aioice queues it: only STUN is checked),
    and a peer can send an authenticated RTP packet whose header extensions make aiortc's parser
    raise struct.error. Both are dropped here: empty datagrams before the queue, and any error
    but a lost connection in handling one SRTP or SRTCP packet.
    """

    def gathered() -> None:
        if pc.iceGatheringState == "complete":
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.transport is not None:
                    guard_receive(transceiver.receiver.transport)

    pc.on("icegatheringstatechange", gathered)


def guard_receive(dtls: RTCDtlsTransport) -> None:
    """See `guard_receive_when_gathered`; does nothing the second time for the same transport."""
    if getattr(dtls, "_relay_guarded", False):
        return
    dtls._relay_guarded = True  # type: ignore[attr-defined]
    connection = getattr(dtls.transport, "_connection", None)
    if connection is not None:
        queue = connection.data_received  # the lean receive path may wrap this later: it checks length first

        def data_received(data: bytes, component: int) -> None:
            if data:
                queue(data, component)

        connection.data_received = data_received
    for name in ("_handle_rtp_data", "_handle_rtcp_data"):
        handler = getattr(dtls, name)

        async def guarded(*args: Any, _handler: Callable[..., Awaitable[None]] = handler, **kwargs: Any) -> None:
            try:
                await _handler(*args, **kwargs)
            except ConnectionError:
                raise  # the connection is gone: aiortc's loop ends as it should
            except Exception as exc:  # noqa: BLE001 - one bad packet costs only itself
                logger.debug("malformed packet dropped error=%r", exc)

        setattr(dtls, name, guarded)


def tap_datagrams(pc: RTCPeerConnection, on_rtp: Callable[[bytes], None], *, receive_buffer: int = 0) -> int:
    """Hand every SRTP (not SRTCP) datagram a connection receives to `on_rtp`, undecrypted.

    For lean load clients: RTP headers are plaintext under SRTP, so packets and frames can be
    counted from them without decrypting, reassembling or decoding. STUN, DTLS and RTCP still go
    to aiortc. Call after the connection is established. Every gathered socket of the connection
    is tapped, not only the nominated pair's (the remote side may send on another pair).
    `receive_buffer` enlarges the sockets' receive buffers (bytes) so a busy load tool drops less.
    Returns how many sockets are tapped (0: none yet; call again later).
    """
    tapped = 0
    for protocol in _ice_protocols(pc):
        tapped += 1
        if getattr(protocol, "_lean_tapped", False):
            continue
        original = protocol.datagram_received

        def received(data: bytes, addr: Any, _original: Callable[[bytes, Any], None] = original) -> None:
            if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                on_rtp(data)
            else:
                _original(data, addr)

        protocol.datagram_received = received  # type: ignore[assignment]  # aioice types addr narrower
        protocol._lean_tapped = True  # type: ignore[attr-defined]
        sock = protocol.transport.get_extra_info("socket")
        if receive_buffer and sock is not None:
            set_socket_buffers(sock, receive_buffer, SOCKET_SEND_BUFFER)
    return tapped


def rtx_payload_types(pc: RTCPeerConnection) -> set[int]:
    """Payload types of RTX negotiated on any transceiver of `pc`."""
    return {
        codec.payloadType
        for t in pc.getTransceivers()
        for codec in t._codecs
        if is_rtx(codec) and codec.payloadType is not None
    }


def inject_send_loss(pc: RTCPeerConnection, fraction: float, rng: Callable[[], float]) -> None:
    """Drop `fraction` of the RTP (never RTCP) packets `pc` sends, retransmissions included.

    For tests and load tools: loss at the sending client, where no netem is available.
    """
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if getattr(dtls, "_loss_injected", False):
            continue
        original = dtls._send_rtp

        async def send(data: bytes, _original: Callable[[bytes], Coroutine[Any, Any, None]] = original) -> None:
            if 191 < data[1] < 224 or rng() >= fraction:
                await _original(data)

        dtls._send_rtp = send  # type: ignore[method-assign]  # test-only loss injection
        setattr(dtls, "_loss_injected", True)


def inject_send_delay(
    pc: RTCPeerConnection, delay: float, *, drop: Callable[[bytes], bool] | None = None
) -> None:
    """Delay every datagram `pc`'s ICE sockets send by `delay` seconds, or drop it when `drop(datagram)`.

    For tests: a long-delay link (satellite) or a peer that stops answering, at the sending
    client. Everything sent is shaped (STUN requests and responses, DTLS, SRTP, SRTCP), from the
    moment the candidates are gathered, so ICE's own checks see the delay too.
    """
    loop = asyncio.get_running_loop()

    def shape() -> None:
        for protocol in _ice_protocols(pc):
            transport: Any = protocol.transport
            if getattr(transport, "_send_shaped", False):
                continue
            send = transport.sendto

            def sendto(data: bytes, addr: Any = None, _send: Callable[[bytes, Any], None] = send) -> None:
                if drop is not None and drop(data):
                    return
                if delay > 0:
                    loop.call_later(delay, _send, data, addr)
                else:
                    _send(data, addr)

            transport.sendto = sendto
            transport._send_shaped = True

    if pc.iceGatheringState == "complete":
        shape()
    pc.on("icegatheringstatechange", lambda: shape() if pc.iceGatheringState == "complete" else None)


def rtx_ssrc_map(pc: RTCPeerConnection) -> dict[int, int]:
    """RTX SSRC -> media SSRC for every receiver of `pc`, as the remote description announced."""
    mapping: dict[int, int] = {}
    for transceiver in pc.getTransceivers():
        mapping.update(getattr(transceiver.receiver, "_RTCRtpReceiver__rtx_ssrc"))
    return mapping


def unprotect_rtp(pc: RTCPeerConnection, data: bytes) -> bytes | None:
    """Decrypt one SRTP packet received on `pc`'s (bundled) transport, or None if it fails."""
    dtls = pc.getTransceivers()[0].receiver.transport
    try:
        return dtls._rx_srtp.unprotect(data)
    except Exception:  # noqa: BLE001 - pylibsrtp raises its own error types
        return None


def send_rtcp(pc: RTCPeerConnection, data: bytes) -> bool:
    """Protect and send one serialized RTCP packet on `pc`'s (bundled) transport."""
    return _drive(pc.getTransceivers()[0].receiver.transport._send_rtp(data))


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated on a transceiver, in the order the remote side prefers them."""
    return list(transceiver._codecs)


def media_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The negotiated codecs without retransmission (RTX) entries."""
    return [codec for codec in transceiver._codecs if not is_rtx(codec)]


def remote_sends(transceiver: RTCRtpTransceiver) -> bool:
    """True when the remote offer sends media on this transceiver (we may receive)."""
    return transceiver._offerDirection in ("recvonly", "sendrecv")


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close a peer connection so that no ICE consent task outlives it.

    aioice races here: when a connection is closed while its connectivity checks are running,
    `connect()` may resume after `close()` and start consent checks that nothing ever stops,
    keeping a task and a socket alive per connection. Before closing, replace the consent loop of
    each of its ICE connections with one that ends at once, and cancel any that already runs.
    """
    connections = _ice_connections(pc)
    for connection in connections:
        connection.query_consent = no_consent_loop  # type: ignore[method-assign]
    try:
        await pc.close()
    except Exception:  # noqa: BLE001 - aiortc fails on a transceiver left without a transport
        logger.warning("peer connection close failed: closing its ICE connections", exc_info=True)
        for connection in connections:
            await connection.close()
    for connection in connections:
        task = getattr(connection, "_query_consent_task", None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
