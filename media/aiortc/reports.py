"""RTCP sender reports for the relay's senders, compounded per connection.

The relay writes RTP around aiortc's senders, so it keeps their packet and octet counts and
their NTP/RTP mapping true, and sends their reports itself: one datagram per connection rather
than one per sender per second.
"""

from __future__ import annotations

import asyncio
import struct
import time

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTCP_SDES, RTCP_SR, RtcpByePacket, pack_rtcp_packet

from media.aiortc.srtp import drive


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
            if drive(transport._send_rtp(reports)):
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
