"""ICE sockets and connections: buffer sizes, what would end a transport, a clean close."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aioice.ice import Connection as IceConnection
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from media.consent import no_consent_loop

logger = logging.getLogger(__name__)


# Socket buffers for ICE sockets: a publisher's keyframe burst or a busy event loop must not
# overflow the kernel's default ~208 KB (about 90 full-size datagrams) and lose packets; bigger
# would only queue seconds of stale media behind a stalled loop.
SOCKET_RECEIVE_BUFFER = 2 << 20  # the kernel doubles it: ~1,800 full-size datagrams
SOCKET_SEND_BUFFER = 1 << 20


def ice_connections(pc: RTCPeerConnection) -> list[IceConnection]:
    """The ICE connections of `pc`'s transports, each once."""
    connections: list[IceConnection] = []
    for transceiver in pc.getTransceivers():
        for transport in (transceiver.receiver.transport, transceiver.sender.transport):
            connection = getattr(getattr(transport, "transport", None), "_connection", None)
            if connection is not None and connection not in connections:
                connections.append(connection)
    return connections


def ice_protocols(pc: RTCPeerConnection) -> list[StunProtocol]:
    """The protocols of every gathered local socket of `pc`, not only the nominated pair's: a datagram may arrive on any."""
    return [p for c in ice_connections(pc) for p in getattr(c, "_protocols", ()) if p.transport is not None]


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
    for protocol in ice_protocols(pc):
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



async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close a peer connection so that no ICE consent task outlives it.

    aioice races here: when a connection is closed while its connectivity checks are running,
    `connect()` may resume after `close()` and start consent checks that nothing ever stops,
    keeping a task and a socket alive per connection. Before closing, replace the consent loop of
    each of its ICE connections with one that ends at once, and cancel any that already runs.
    """
    connections = ice_connections(pc)
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
