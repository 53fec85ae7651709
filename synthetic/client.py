"""A Python room participant speaking `/ws` with a publisher and a subscriber connection, like a browser."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from ssl import SSLContext
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

from media.aiortc.client import inject_send_delay
from media.aiortc.ice import close_peer_connection
from media.liveness import Failure, LivenessSettings, PeerHealth, PeerState
from signaling.codec import ProtocolError, encode, parse_server
from signaling.messages import (
    ClientMessage,
    Error,
    Hello,
    Leave,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PublicationAdded,
    PublicationInfo,
    PublicationMuted,
    PublicationRemoved,
    PublishAnswer,
    PublishOffer,
    ServerMessage,
    SessionReplaced,
    SubscribeAnswer,
    SubscribeOffer,
    Welcome,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 2.0


class ClientError(Exception):
    """The server refused a request (an `error` reply), or the session ended under it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Tasks:
    """Background tasks of one owner, cancelled and awaited together on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _WebSocket(aiohttp.ClientWebSocketResponse):
    """aiohttp's client WebSocket, without re-arming its heartbeat timer while it closes (aiohttp
    3.14 does, and the timer then holds the closed socket's memory for one more interval)."""

    def _reset_heartbeat(self) -> None:
        if self._closed or self._closing:
            return
        super()._reset_heartbeat()


def ws_url(base_url: str) -> str:
    """The `/ws` address for a server's base URL (http becomes ws, https becomes wss)."""
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif not url.startswith(("ws://", "wss://")):
        raise ValueError(f"not an http(s) or ws(s) URL: {base_url!r}")
    return url + "/ws"


class RoomClient:
    """One participant in one room: signaling over `/ws`, media over two aiortc peer connections."""

    def __init__(
        self,
        base_url: str,
        room: str,
        token: str,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        name: str = "",
        ssl: SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url
        self.room = room
        self.name = name or "room-client"
        self.welcome: Welcome | None = None
        self.participants: dict[str, ParticipantInfo] = {}
        self.publications: dict[str, PublicationInfo] = {}
        self.received: dict[str, MediaStreamTrack] = {}
        self.on_message: Callable[[ServerMessage], None] | None = None
        self._token = token
        self._ssl = ssl
        # An explicit empty list: with None aiortc would ask Google's STUN server, which a
        # command network without internet access cannot reach (and gathering then stalls).
        self._rtc_config = RTCConfiguration(iceServers=list(ice_servers))
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._publisher: RTCPeerConnection | None = None
        self._subscriber: RTCPeerConnection | None = None
        # Each connection's liveness, by role: RFC 7675 consent in place of aioice's, so that a
        # client on a long-delay link (satellite) does not drop the server it hears from.
        self.health: dict[str, PeerHealth] = {}
        self._sources: dict[RTCRtpTransceiver, str] = {}
        self._publish_lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[ServerMessage]] = {}
        self._offers: asyncio.Queue[SubscribeOffer] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._disconnected = asyncio.Event()
        self._closing = False
        self.replaced = False  # the server closed this session: the same identity joined again
        self._drop_sent: Callable[[bytes], bool] | None = None
        self._impaired: set[RTCPeerConnection] = set()
        self._tasks = _Tasks()

    @property
    def connected(self) -> bool:
        """True between a successful `connect()` and the end of the session."""
        return self._ws is not None and not self._disconnected.is_set()

    @property
    def publisher_state(self) -> str:
        """The publisher connection's state ("new" before the first publish)."""
        return "new" if self._publisher is None else self._publisher.connectionState

    @property
    def subscriber_state(self) -> str:
        """The subscriber connection's state ("new" before the first offer)."""
        return "new" if self._subscriber is None else self._subscriber.connectionState

    async def connect(self, timeout: float = DEFAULT_TIMEOUT) -> Welcome:
        """Open `/ws`, say hello and return the welcome; an `error` reply raises ClientError."""
        self._session = aiohttp.ClientSession(ws_response_class=_WebSocket)
        try:
            async with asyncio.timeout(timeout):
                self._ws = await self._session.ws_connect(
                    ws_url(self.base_url),
                    ssl=self._ssl,
                    heartbeat=20.0,  # notices a server that vanished without closing the socket
                    # A server that never answers our close frame must not hold up close() for long.
                    timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
                )
                await self._send(Hello(id=self._new_id(), room=self.room, token=self._token))
                # Read the reply here rather than in the reader: nothing else may come first.
                first = await self._ws.receive()
            if first.type != aiohttp.WSMsgType.TEXT:
                raise ClientError("disconnected", f"server closed the session before welcome ({first.type.name})")
            reply = parse_server(first.data)
            if isinstance(reply, Error):
                raise ClientError(reply.code, reply.message)
            if not isinstance(reply, Welcome):
                raise ClientError("unexpected_reply", f"expected welcome, got {type(reply).__name__}")
        except BaseException:
            await self.close()
            raise
        self.welcome = reply
        self.participants = {p.identity: p for p in reply.participants}
        self.publications = {p.publication_id: p for p in reply.publications}
        self._tasks.spawn(self._read(), name=f"room-client-reader:{self.name}")
        self._tasks.spawn(self._answer_offers(), name=f"room-client-offers:{self.name}")
        log.info("connected name=%s room=%s identity=%s", self.name, self.room, reply.you.identity)
        return reply

    async def publish(self, tracks: Mapping[str, MediaStreamTrack], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Offer `tracks` (keyed by source: "camera", "microphone", ...) on the publisher connection."""
        async with self._publish_lock:
            if self._publisher is None:
                self._publisher = self._new_peer_connection("publisher")
            pc = self._publisher
            for source, track in tracks.items():
                self._sources[pc.addTransceiver(track, direction="sendonly")] = source
            # aiortc gathers every candidate inside setLocalDescription: the SDP is complete.
            await pc.setLocalDescription(await pc.createOffer())
            sources = {t.mid: source for t, source in self._sources.items() if t.mid is not None}
            reply = await self.request(PublishOffer(sdp=pc.localDescription.sdp, sources=sources), timeout)
            if not isinstance(reply, PublishAnswer):
                raise ClientError("unexpected_reply", f"expected publish_answer, got {type(reply).__name__}")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=reply.sdp, type="answer"))

    async def request(self, message: ClientMessage, timeout: float = DEFAULT_TIMEOUT) -> ServerMessage:
        """Send `message` with a fresh id and return the reply carrying that id; `error` raises ClientError."""
        if not self.connected:
            raise ClientError("disconnected", "not connected")
        request_id = self._new_id()
        future: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._send(msgspec.structs.replace(message, id=request_id))
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise ClientError(reply.code, reply.message)
        return reply

    async def wait_for(self, predicate: Callable[[RoomClient], bool], timeout: float | None) -> None:
        """Return once `predicate(self)` holds, checking after every state change; TimeoutError if not."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

    async def wait_disconnected(self) -> None:
        """Return when the session has ended (server gone, kicked, or `close()`)."""
        await self._disconnected.wait()

    async def close(self) -> None:
        """Leave the room, close both peer connections and the socket, and stop the background tasks."""
        if self._closing:
            return
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            try:
                await self._send(Leave())
            except (ConnectionError, aiohttp.ClientError):
                pass  # the server is already gone: nothing to tell it
            await self._ws.close()
        await self._tasks.close()
        for health in self.health.values():
            await health.close()
        for pc in (self._publisher, self._subscriber):
            if pc is not None:
                await close_peer_connection(pc)
        if self._session is not None:
            await self._session.close()
        await self._end_session("closed")

    def impair(self, *, drop: Callable[[bytes], bool] | None = None, delay: float = 0.0) -> None:
        """Shape what both peer connections send from now on: drop datagrams for which `drop`
        says so, delay the rest by `delay` seconds (tests: a black-holed or a long-delay path).
        A later call replaces `drop`; the delay is the first call's."""
        self._drop_sent = drop
        for pc in (self._publisher, self._subscriber):
            if pc is not None and pc not in self._impaired:
                self._impaired.add(pc)
                inject_send_delay(pc, delay, drop=lambda data: self._drop_sent is not None and self._drop_sent(data))

    async def drop(self) -> None:
        """Vanish as a killed process or a dead network would: no leave, nothing more sent on the
        peer connections, the socket cut without a close frame (tests of the server's liveness)."""
        if self._closing:
            return
        self._closing = True
        self.impair(drop=lambda _datagram: True)
        if self._ws is not None:
            self._ws._response.close()  # the connection goes, no close handshake
        await self._tasks.close()
        for health in self.health.values():
            await health.close()
        for pc in (self._publisher, self._subscriber):
            if pc is not None:
                await close_peer_connection(pc)  # its goodbyes go nowhere
        if self._session is not None:
            await self._session.close()
        await self._end_session("dropped")

    # --- inside the session ----------------------------------------------------------------------

    def _new_peer_connection(self, role: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(self._rtc_config)

        @pc.on("connectionstatechange")
        async def _state_changed() -> None:
            log.info("peer connection name=%s state=%s", self.name, pc.connectionState)
            await self._notify()

        def health_changed(state: PeerState, failure: Failure | None) -> None:
            log.info("peer health name=%s role=%s state=%s failure=%s", self.name, role, state, failure)

        self.health[role] = PeerHealth(pc, settings=LivenessSettings(), on_change=health_changed, label=f"{self.name}:{role}")
        self.health[role].start()
        return pc

    def _new_id(self) -> str:
        return f"c{next(self._ids)}"

    async def _send(self, message: ClientMessage) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionError("websocket is closed")
        await self._ws.send_str(encode(message))

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "server closed the session"
        try:
            async for raw in self._ws:
                if raw.type != aiohttp.WSMsgType.TEXT:
                    if raw.type == aiohttp.WSMsgType.ERROR:
                        reason = f"websocket error: {self._ws.exception()}"
                        break
                    continue
                try:
                    message = parse_server(raw.data)
                except ProtocolError as exc:
                    log.warning("bad server message name=%s code=%s detail=%s", self.name, exc.code, exc.message)
                    continue
                await self._dispatch(message)
        finally:
            await self._end_session("closed" if self._closing else reason)

    async def _dispatch(self, message: ServerMessage) -> None:
        future = None if isinstance(message, SubscribeOffer) else self._pending.get(message.id or "")
        if future is not None:
            if not future.done():
                future.set_result(message)
        else:
            self._apply(message)
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:  # a faulty observer must not end the session
                log.exception("on_message callback failed name=%s", self.name)
        await self._notify()

    def _apply(self, message: ServerMessage) -> None:
        match message:
            case ParticipantJoined(participant=participant):
                self.participants[participant.identity] = participant
            case ParticipantLeft(identity=identity):
                self.participants.pop(identity, None)
            case ParticipantUpdated(participant=participant):
                self.participants[participant.identity] = participant
            case SessionReplaced(message=text):
                self.replaced = True
                log.info("session replaced name=%s message=%s", self.name, text)
            case PublicationAdded(publication=publication):
                self.publications[publication.publication_id] = publication
            case PublicationRemoved(publication_id=publication_id):
                self.publications.pop(publication_id, None)
            case PublicationMuted(publication_id=publication_id, muted=muted):
                if publication_id in self.publications:
                    self.publications[publication_id] = msgspec.structs.replace(
                        self.publications[publication_id], muted=muted
                    )
            case SubscribeOffer():
                self._offers.put_nowait(message)
            case Error(code=code, message=text):
                log.warning("server error name=%s code=%s message=%s", self.name, code, text)
            case _:
                pass

    async def _answer_offers(self) -> None:
        # One task answers every offer in arrival order: a renegotiation must never overlap another.
        while True:
            offer = await self._offers.get()
            try:
                await self._answer(offer)
            except (ConnectionError, aiohttp.ClientError):
                return
            except Exception:
                # aiortc has no rollback; the server offers again after a failed negotiation.
                log.exception("subscribe offer failed name=%s", self.name)

    async def _answer(self, offer: SubscribeOffer) -> None:
        if self._subscriber is None:
            self._subscriber = self._new_peer_connection("subscriber")
        pc = self._subscriber
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.received = {
            offer.tracks[t.mid]: t.receiver.track
            for t in pc.getTransceivers()
            if t.mid in offer.tracks and t.receiver.track is not None
        }
        await self._send(SubscribeAnswer(id=offer.id, sdp=pc.localDescription.sdp))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _end_session(self, reason: str) -> None:
        if self._disconnected.is_set():
            return
        self._disconnected.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ClientError("disconnected", reason))
        if self.welcome is not None:  # a refused connect is reported by its exception instead
            log.info("disconnected name=%s reason=%s", self.name, reason)
        await self._notify()


async def join_somewhere(urls: list[str], room: str, token: str, name: str, deadline: float) -> RoomClient:
    """What a page does after losing its node: try the nodes in turn until one welcomes it."""
    while True:
        for url in urls:
            client = RoomClient(url, room, token, name=name)
            try:
                await client.connect(timeout=3)
                return client
            except (ClientError, aiohttp.ClientError, OSError, TimeoutError):
                await client.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} found no node for {room} in time")
        await asyncio.sleep(0.25)  # a client's retry interval, not a wait for a condition


class FrameCounter:
    """Consumes a remote track in a task, counting frames and keeping the last one."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.count = 0
        self.last: Frame | None = None
        self.ended = False
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._consume(), name=f"frame-counter:{track.kind}")

    async def _consume(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.count += 1
                if isinstance(frame, Frame):  # remote tracks decode: always a frame, never a packet
                    self.last = frame
                async with self._changed:
                    self._changed.notify_all()
        except MediaStreamError:
            self.ended = True
            async with self._changed:
                self._changed.notify_all()

    async def wait_frames(self, n: int, timeout: float) -> None:
        """Return once `n` frames have arrived in all; TimeoutError if not in time, ClientError if the track ended."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: self.count >= n or self.ended)
        if self.count < n:
            raise ClientError("track_ended", f"track ended after {self.count} of {n} frames")

    async def stop(self) -> None:
        """Stop consuming and wait until the task has exited."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> FrameCounter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
