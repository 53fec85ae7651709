"""SRTP in one shared buffer, and `RtpOut`: the relay's packets protected and sent inline.

libsrtp is reached through pylibsrtp's cffi binding (no type stubs) so that a packet is protected
or unprotected in place, without a copy in and out per packet.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpsender import RTCRtpSender

from media.packets import HEADER

logger = logging.getLogger(__name__)

_srtp_binding: Any = importlib.import_module("pylibsrtp._binding")
srtp_ffi, srtp_lib = _srtp_binding.ffi, _srtp_binding.lib

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


def unprotect(srtp: Any, data: bytes) -> memoryview | None:
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
                return drive(self._dtls._send_rtp(data))
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


def drive(coro: Coroutine[Any, Any, None]) -> bool:
    """Run an aiortc send coroutine inline up to its first wait (then on as it completes); False when it failed."""
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
        awaited.add_done_callback(lambda _f: drive(coro))
    else:
        coro.close()
    return True
