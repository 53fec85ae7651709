"""What was negotiated on a transceiver, read from aiortc's private fields."""

from __future__ import annotations

from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver


def media_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The negotiated codecs without retransmission (RTX) entries."""
    return [codec for codec in transceiver._codecs if not is_rtx(codec)]


def remote_sends(transceiver: RTCRtpTransceiver) -> bool:
    """True when the remote offer sends media on this transceiver (we may receive)."""
    return transceiver._offerDirection in ("recvonly", "sendrecv")

