"""The guard on aiortc's private API: fail loudly when a pinned internal moves.

Every private name of aiortc, aioice, pylibsrtp and asyncio that the package's modules use is
checked here, on the classes at start (`check_hooks`) and on live objects (`check_instance_hooks`).
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
from typing import Any

import aiortc
import pylibsrtp
from aioice.ice import Connection as IceConnection
from aioice.ice import StunProtocol
from aiortc.rate import RateCounter, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender

from media.aiortc.srtp import srtp_ffi, srtp_lib
from media.liveness import hook_problems as liveness_hook_problems

_SelectorTransport: Any = getattr(asyncio.selector_events, "_SelectorTransport")  # asyncio's socket transport

AIORTC_VERSION = "1.16.0"
PYLIBSRTP_VERSION = "1.0.0"

# Private names the package relies on; check_hooks() verifies each.
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
EXTENSION_IDS = "_HeaderExtensionsMap__ids"


class HookMismatch(RuntimeError):
    """aiortc's internals are not what this package was written against."""


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
    if not hasattr(DtlsState, "CONNECTED") or not hasattr(aiortc.rtp.HeaderExtensionsMap(), EXTENSION_IDS):
        raise HookMismatch("DTLS State.CONNECTED or HeaderExtensionsMap ids are gone")
    problems = liveness_hook_problems()
    if problems:
        raise HookMismatch("; ".join(problems))
    if pylibsrtp.__version__ != PYLIBSRTP_VERSION:
        raise HookMismatch(f"pylibsrtp {pylibsrtp.__version__} installed, hooks written for {PYLIBSRTP_VERSION}")
    for function in (srtp_lib.srtp_protect, srtp_lib.srtp_unprotect):
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
        if not hasattr(sender.transport._rtp_header_extensions_map, EXTENSION_IDS):
            raise HookMismatch("HeaderExtensionsMap has no ids")

