"""The receiving end, for load tools and tests: taps, injected loss and delay, raw RTCP.

Clients that count packets rather than decode them, and tests that shape a link at the sender.
The server never imports this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket, unwrap_rtx

from media.aiortc.ice import SOCKET_SEND_BUFFER, ice_protocols, set_socket_buffers
from media.aiortc.receive import process_packet, receive_processor
from media.aiortc.srtp import drive
from media.packets import Inbound

logger = logging.getLogger(__name__)

PacketHandler = Callable[[RtpPacket, int], None]


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_packet: PacketHandler,
    *,
    repair: bool = True,
    on_nack: Callable[[int], None] | None = None,
    on_rtx: Callable[[], None] | None = None,
) -> None:
    """Route a client receiver's RTP to `on_packet` instead of its jitter buffer and decoder.

    The same processing as the relay's publishers get (`receive_processor`: statistics, REMB,
    RTX unwrapped, NACKs and their retries), on aiortc's receive path; `on_packet` gets aiortc's
    `RtpPacket`, an RTX packet unwrapped to its media stream.
    """
    codecs: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__codecs")
    arrived: RtpPacket | None = None

    def on_inbound(ssrc: int, inbound: Inbound, arrival_ms: int) -> None:
        packet = arrived
        assert packet is not None
        if ssrc != packet.ssrc:  # a retransmission, unwrapped by the processor
            packet = unwrap_rtx(packet, payload_type=codecs[packet.payload_type].parameters["apt"], ssrc=ssrc)
        on_packet(packet, arrival_ms)

    process = receive_processor(receiver, on_inbound, repair=repair, on_nack=on_nack, on_rtx=on_rtx)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        nonlocal arrived
        # Runs inside aiortc's DTLS receive loop: an exception here would close the transport.
        try:
            arrived = packet
            process_packet(process, packet, arrival_time_ms)
        except Exception:  # noqa: BLE001 - must never escape into aiortc's receive loop
            logger.exception("client tap failed")
        finally:
            arrived = None

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


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
    for protocol in ice_protocols(pc):
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
        for protocol in ice_protocols(pc):
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
    return drive(pc.getTransceivers()[0].receiver.transport._send_rtp(data))



def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Also call `callback` when the remote side asks this (client) sender for a keyframe."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]
