"""One `/ws` session: authenticate, join, then dispatch each message to the room, in order."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import WSMsgType, web

from server.access import ended_notice
from server.auth import AuthError, Identity, TokenMissing
from server.connection import CloseReason, ConnectionKind
from server.errors import RequestError, RoomMoved, wire_error
from server.outbox import Outbox
from server.participant import Participant
from server.room import Room
from server.services import SERVICES, Services
from server.store import StoreUnavailable
from server.store.nodes import NodeRecord
from server.websocket import WebSocket
from server.web_auth import cookie_auth
from server.web_security import relayed_from
from signaling.codec import ProtocolError, parse_client, request_id
from signaling.messages import (
    PROTOCOL_VERSION,
    ClientMessage,
    Error,
    Hello,
    Leave,
    Ping,
    Pong,
    PublishAnswer,
    PublishOffer,
    ServerMessage,
    SessionReplaced,
    SetMuted,
    TileSizes,
    SubscribeAnswer,
)

logger = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
MAX_BAD_MESSAGES = 10
RATE_PER_SECOND = 50.0
RATE_BURST = 200.0
OUTBOX_LIMIT = 2000


class RateLimiter:
    """A token bucket: `allow()` is False once a client sends faster than the rate for long."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Session:
    """A client's `/ws` session: an outbox drained by one writer task, and the inbound dispatch loop.

    A `Connection` of kind SESSION once hello is accepted: the room registers it under its
    identity, and a newer session of the same identity replaces it.
    """

    kind = ConnectionKind.SESSION
    slot = "session"

    def __init__(
        self, ws: web.WebSocketResponse, services: Services, cookie: Identity | AuthError | None, remote: str,
        *, request: web.Request | None = None,
    ) -> None:
        self.ws = ws
        self.services = services
        # What the session cookie proved at the upgrade: an identity, or why not (a revoked device link).
        self.cookie_identity = cookie if isinstance(cookie, Identity) else None
        self._cookie_refusal = cookie if isinstance(cookie, AuthError) else None
        self.remote = remote
        self.room: Room | None = None
        self.participant: Participant | None = None
        self.bad_messages = 0
        self.id = uuid.uuid4().hex[:12]
        self._identity: Identity | None = None
        self._outbox = Outbox(ws, limit=OUTBOX_LIMIT, label=f"{remote}/{self.id}")
        self._rate = RateLimiter(RATE_PER_SECOND, RATE_BURST)
        self._ended_by: CloseReason | None = None  # the server ended it (replaced, removed, ...)
        self._left = False  # the client said leave (or was sent away): no grace period
        # Several nodes: a session for a room hosted elsewhere is relayed there after its hello.
        self._request = request
        self._relayed = request is not None and relayed_from(request) is not None
        self._hello_raw = ""
        self.relay_to: NodeRecord | None = None

    @property
    def identity(self) -> Identity:
        """The verified identity (set when hello is accepted)."""
        assert self._identity is not None, "the session has no identity before hello"
        return self._identity

    @property
    def closed(self) -> bool:
        """Whether the socket is gone."""
        return self.ws.closed

    def send(self, message: ServerMessage) -> None:
        """Queue a message for the client; a client that cannot keep up is disconnected."""
        self._outbox.send(message)

    async def close(self, reason: CloseReason) -> None:
        """End the session from the server's side: say why where the client must act on it, then close."""
        if self._ended_by is not None:
            return
        self._ended_by = reason
        if reason is CloseReason.REPLACED:
            self.send(SessionReplaced(message="您已在其他窗口或设备加入，此处已断开 You joined again from another window or device; this one is closed"))
        elif reason is CloseReason.LOST:
            self.send(Error(code="connection_lost", message="连接中断过久，请重新加入 The connection was lost for too long: join again"))
        elif reason is CloseReason.ROOM_MOVED:
            self.send(Error(code="room_moved", message="会商室已迁至其他节点，正在重新连接 The room moved to another node: connecting again"))
        else:
            notice = ended_notice(reason)  # revoked, expired, access withdrawn
            if notice is not None:
                self.send(notice)
        self._outbox.close()

    async def run(self) -> None:
        """Serve the session until the client leaves or the connection drops."""
        writer = asyncio.get_running_loop().create_task(self._outbox.run(), name="ws-writer")
        try:
            if await self._hello():
                await (self._relay() if self.relay_to is not None else self._loop())
        finally:
            # aiohttp cancels the handler when the client goes away: the cleanup must still run
            # to its end, or the others never hear that this participant left.
            cleanup = self.services.background.spawn(self._cleanup(writer), name="session-cleanup")
            if cleanup is not None:
                await asyncio.shield(cleanup)

    async def _cleanup(self, writer: asyncio.Task[None]) -> None:
        if self.room is not None and self.participant is not None:
            # A socket that dropped without `leave` is a loss: the participant keeps its tiles for
            # the grace period. One the server ended is already accounted for by the room.
            await self.room.leave(self, lost=not self._left and self._ended_by is None)
            await self.services.rooms.forget_presence(self.room, self.participant.id)
        self._outbox.close()
        try:
            await asyncio.wait_for(writer, 5)
        except asyncio.TimeoutError:
            logger.warning("ws writer did not finish remote=%s", self.remote)

    async def _receive(self, timeout: float | None = None) -> str | None:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type == WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data).decode("utf-8", errors="replace")
        return None

    def _reply_error(self, exc: Exception, request_id: str | None) -> None:
        code, message = wire_error(exc)
        self.send(Error(id=request_id, code=code, message=message))

    async def _hello(self) -> bool:
        try:
            raw = await self._receive(HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            self.send(Error(code="hello_timeout", message="expected hello within 10 s"))
            return False
        if raw is None:
            return False
        self._hello_raw = raw
        try:
            message = parse_client(raw)
            if not isinstance(message, Hello):
                raise ProtocolError("hello_expected", "the first message must be hello", message.id)
            await self._join(message)
            return True
        except (ProtocolError, AuthError, RequestError, StoreUnavailable) as exc:
            request_id = exc.request_id if isinstance(exc, ProtocolError) else getattr(message, "id", None)
            self._reply_error(exc, request_id)
            logger.info("session refused remote=%s code=%s", self.remote, wire_error(exc)[0])
            return False

    async def _join(self, hello: Hello) -> None:
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError("unsupported_version", f"protocol version {PROTOCOL_VERSION} expected", hello.id)
        # The address is limited before the token is looked at, the identity once it is known.
        self.services.rate_limits.check("join", address=self.remote)
        if hello.token:
            identity = self.services.tokens.verify_device_token(hello.token)
        elif self.cookie_identity is not None:
            identity = self.services.tokens.recheck(self.cookie_identity)  # revoked since the upgrade?
        elif self._cookie_refusal is not None:
            raise self._cookie_refusal
        else:
            raise TokenMissing("log in or give a device token")
        self.services.rate_limits.check("join", identity=identity.identity)
        identity.check_room(hello.room)
        # The room's node serves the session; from another node it is relayed there (never twice).
        self.relay_to = await self.services.nodes.locate(hello.room, relayed=self._relayed, identity=identity.identity)
        if self.relay_to is not None:
            return
        room = await self.services.rooms.get(hello.room)
        # The store records who is present: without it, the join is refused before it is welcomed
        # (at once while the store is known to be down), not welcomed and then dropped.
        if not await self.services.store.ping():
            raise StoreUnavailable("the store did not answer before the join")
        self._identity = identity
        # Admission, registration, the welcome and the subscriber connection: one place, the room.
        self.participant = await room.join(self, hello.id)
        self.room = room
        try:
            await self.services.rooms.record_presence(room)
        except StoreUnavailable as exc:
            # Welcomed already, and the store answered just before: it went away in between. The
            # participant stays (media needs no store); the periodic refresh writes the presence.
            logger.warning("presence not recorded at join room=%s identity=%s error=%s: the refresh will write it",
                           room.id, identity.identity, exc)

    async def _relay(self) -> None:
        """Pump the session to and from the node that hosts its room (server/relay.py)."""
        assert self.relay_to is not None and self._request is not None
        self._left = True  # nothing of it lives here: no grace period, no presence
        try:
            await self.services.relays.websocket(self._request, self.ws, self.relay_to, self._hello_raw)
        except RoomMoved as exc:
            self._reply_error(exc, request_id(self._hello_raw))
            logger.info("session relay failed remote=%s node=%s", self.remote, self.relay_to.node_id)

    async def _loop(self) -> None:
        while not self.ws.closed:
            raw = await self._receive()
            if raw is None:
                return
            if not self._rate.allow():
                self.send(Error(id=request_id(raw), code="rate_limited", message="too many messages"))
                self.bad_messages += 1
            else:
                await self._dispatch(raw)
            if self.bad_messages >= MAX_BAD_MESSAGES:
                self.send(Error(code="too_many_errors", message="disconnected after repeated bad messages"))
                self._left = True  # sent away, not lost: no grace period
                return
            if self._ended_by is not None:
                return

    async def _dispatch(self, raw: str) -> None:
        request_id: str | None = None
        try:
            message = parse_client(raw)
            request_id = message.id
            if isinstance(message, Leave):
                self._left = True
                await self.ws.close()
                return
            if isinstance(message, Ping):
                self.send(Pong(id=message.id))
                return
            self._check_current()
            reply = await self._handle(message)
            if reply is not None:
                self.send(reply)
        except (ProtocolError, AuthError, RequestError) as exc:
            self.bad_messages += 1
            self._reply_error(exc, exc.request_id if isinstance(exc, ProtocolError) else request_id)
        except Exception as exc:  # noqa: BLE001 - a failed request must not end the session
            code, _ = wire_error(exc)
            if code == "internal":
                logger.exception("request failed remote=%s", self.remote)
            self._reply_error(exc, request_id)

    def _check_current(self) -> None:
        """Refuse anything from a session that is no longer its identity's (replaced, removed, ended)."""
        room, participant = self.room, self.participant
        assert room is not None and participant is not None
        if self._ended_by is not None or not room.is_current(self) or room.participants.get(participant.id) is not participant:
            replaced = self._ended_by is CloseReason.REPLACED or (self._ended_by is None and room.participants.get(participant.id) is not None)
            self._ended_by = self._ended_by or CloseReason.REPLACED
            self._outbox.close()
            if replaced:
                raise RequestError("session_replaced", "this identity joined again elsewhere: this session is closed")
            raise RequestError("session_ended", "this session is no longer in the room")

    async def _handle(self, message: ClientMessage) -> ServerMessage | None:
        room, participant = self.room, self.participant
        assert room is not None and participant is not None
        if isinstance(message, PublishOffer):
            self.services.limits.check_sdp(message.sdp)
            answer = await room.publish(participant, self, message.sdp, dict(message.sources))
            return PublishAnswer(id=message.id, sdp=answer)
        if isinstance(message, SubscribeAnswer):
            self.services.limits.check_sdp(message.sdp, offer=False)
            if participant.subscriber is None:
                raise RequestError("not_subscribed", "this session has no subscriber connection")
            participant.subscriber.handle_answer(message.sdp)
            return None
        if isinstance(message, SetMuted):
            room.set_muted(participant, message.kind, message.muted)
            return None
        if isinstance(message, TileSizes):
            if participant.subscriber is not None:
                participant.subscriber.show_at(message.sizes)
            return None
        if isinstance(message, Hello):
            raise RequestError("already_joined", "hello was already accepted")
        handler = self.services.handlers.get(type(message))
        if handler is None:
            raise RequestError("unsupported", f"{type(message).__name__} is not handled")
        return await handler(self, message)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """`GET /ws`: a signaling session."""
    services = request.app[SERVICES]
    # Oversize messages up to 4x the limit get a wire error from the parser; beyond that aiohttp
    # closes with 1009 (message too big).
    ws = WebSocket(heartbeat=20, max_msg_size=services.config.server.max_message_bytes * 4)
    await ws.prepare(request)
    session = Session(ws, services, cookie_auth(request), request.remote or "?", request=request)
    services.sessions.add(session)
    try:
        await session.run()
    finally:
        services.sessions.discard(session)
    return ws
