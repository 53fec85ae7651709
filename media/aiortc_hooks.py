"""Every hook into aiortc's internals, in one place.

aiortc decodes every received frame and encodes per sender. The relay needs neither: it takes
RTP packets as the publisher's receiver parses them and writes rewritten packets straight into
the subscriber's DTLS transport. The names touched here are private to aiortc, so aiortc is
pinned exactly and `check_hooks()` (run by a test) fails loudly when they move.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiortc
from aiortc import RTCPeerConnection
from aiortc import clock
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)
from aiortc.codecs import is_rtx

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"

PacketHandler = Callable[[RtpPacket, int], None]
FeedbackHandler = Callable[[str, list[int]], None]

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
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
)


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
    ):
        if not callable(getattr(cls, method, None)):
            raise HookMismatch(f"{cls.__name__}.{method} is gone")
    if not hasattr(RTCDtlsTransport, "_rtp_header_extensions_map") and "_rtp_header_extensions_map" not in (
        RTCDtlsTransport.__init__.__code__.co_names
    ):
        raise HookMismatch("RTCDtlsTransport._rtp_header_extensions_map is gone")


def check_instance_hooks(receiver: RTCRtpReceiver | None, sender: RTCRtpSender | None) -> None:
    """Raise HookMismatch unless live receiver/sender objects carry the private state we use."""
    for obj, names in ((receiver, _RECEIVER_ATTRS), (sender, _SENDER_ATTRS)):
        if obj is None:
            continue
        for name in names:
            if not hasattr(obj, name):
                raise HookMismatch(f"{type(obj).__name__} has no {name}")


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


def tap_receiver(receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
    """Route a receiver's RTP to `on_packet` instead of its jitter buffer and decoder.

    Statistics (for receiver reports), RTX unwrapping, NACK generation and REMB stay as
    aiortc does them; depacketizing and decoding are skipped.
    """
    codecs: dict[int, object] = getattr(receiver, "_RTCRtpReceiver__codecs")
    streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams")
    rtx_ssrc: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc")
    active: dict[int, object] = getattr(receiver, "_RTCRtpReceiver__active_ssrc")
    nack_generator = getattr(receiver, "_RTCRtpReceiver__nack_generator")
    estimator = getattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator")

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        # Runs inside aiortc's DTLS receive loop: an exception here would close the transport.
        try:
            if not receiver._enabled:
                return
            if estimator is not None and packet.extensions.abs_send_time is not None:
                remb = estimator.add(
                    abs_send_time=packet.extensions.abs_send_time,
                    arrival_time_ms=arrival_time_ms,
                    payload_size=len(packet.payload) + packet.padding_size,
                    ssrc=packet.ssrc,
                )
                rtcp_ssrc = getattr(receiver, "_RTCRtpReceiver__rtcp_ssrc")
                if rtcp_ssrc is not None and remb is not None:
                    await receiver._send_rtcp(
                        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                    )
            codec = codecs.get(packet.payload_type)
            if codec is None:
                return
            active[packet.ssrc] = clock.current_datetime()
            stats = streams.get(packet.ssrc)
            if stats is None:
                stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)  # type: ignore[attr-defined]
            stats.add(packet)
            if is_rtx(codec):  # type: ignore[arg-type]
                original_ssrc = rtx_ssrc.get(packet.ssrc)
                apt = codec.parameters.get("apt")  # type: ignore[attr-defined]
                if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                    return
                packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            if nack_generator is not None and nack_generator.add(packet):
                await receiver._send_rtcp_nack(packet.ssrc, sorted(nack_generator.missing))
            on_packet(packet, arrival_time_ms)
        except Exception:  # noqa: BLE001 - must never escape into aiortc's receive loop
            logger.exception("relay tap failed")

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


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
                return
            else:
                await original(packet)
        except Exception:  # noqa: BLE001 - runs inside aiortc's receive loop
            logger.exception("sender feedback tap failed")

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def sender_extensions_map(sender: RTCRtpSender) -> HeaderExtensionsMap:
    """The header extension ids negotiated on the sender's transport."""
    return sender.transport._rtp_header_extensions_map  # type: ignore[no-any-return]


def receiver_extensions_map(receiver: RTCRtpReceiver) -> HeaderExtensionsMap:
    """The header extension ids negotiated on the receiver's transport."""
    return receiver.transport._rtp_header_extensions_map  # type: ignore[no-any-return]


def send_rtp_now(sender: RTCRtpSender, data: bytes) -> bool:
    """Protect and send one serialized RTP packet on the sender's transport, without a task.

    aiortc's `_send_rtp` is a coroutine that, on a direct ICE pair, never suspends (SRTP protect
    then a datagram write), so it is driven inline: the relay path needs no task per packet.
    Where it does suspend (a TURN relay), it is resumed when the awaited future completes.
    Returns False when the transport is not connected.
    """
    return _drive(sender.transport._send_rtp(data))


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
        awaited._asyncio_future_blocking = False  # type: ignore[attr-defined]
        awaited.add_done_callback(lambda _f: _drive(coro))
    else:
        coro.close()
    return True


def note_sent(sender: RTCRtpSender, rtp_timestamp: int, payload_bytes: int) -> None:
    """Keep the sender's report counters true, so its RTCP SR maps NTP to RTP time correctly."""
    sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count += payload_bytes  # type: ignore[attr-defined]


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
    connections = []
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
        if connection is not None and connection not in connections:
            connections.append(connection)

    async def no_consent() -> None:
        return None

    for connection in connections:
        connection.query_consent = no_consent
    await pc.close()
    for connection in connections:
        task = getattr(connection, "_query_consent_task", None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
