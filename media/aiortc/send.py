"""The send side: aiortc's senders carry only feedback; the relay writes the RTP around them.

A subscriber's sender gets a `PermanentSource` (aiortc never encodes for it), its NACK, PLI/FIR
and REMB go to the relay (`tap_sender`), and what the subscriber negotiated (header extension ids,
RTX) is read from it when sending starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiortc
from aiortc.mediastreams import MediaStreamTrack
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
    unpack_remb_fci,
)

from media.aiortc.guard import EXTENSION_IDS
from media.packets import ExtensionLayout

logger = logging.getLogger(__name__)

FeedbackHandler = Callable[[str, list[int]], None]


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


def extension_layout(sender: RTCRtpSender) -> ExtensionLayout:
    """The header extension ids (mid, abs-send-time, audio level) negotiated on the sender's transport."""
    ids = getattr(sender_extensions_map(sender), EXTENSION_IDS)
    return ExtensionLayout(mid=ids.mid or 0, abs_send_time=ids.abs_send_time or 0, audio_level=ids.audio_level or 0)


def sender_rtx(sender: RTCRtpSender) -> tuple[int, int] | None:
    """(RTX payload type, RTX SSRC) when the subscriber negotiated RTX on this sender, else None."""
    payload_type = getattr(sender, "_RTCRtpSender__rtx_payload_type")
    return None if payload_type is None else (payload_type, sender._rtx_ssrc)

