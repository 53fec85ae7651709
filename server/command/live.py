"""`/command/ws`: a lean socket for pages outside a room (the console, the incident board).

It speaks only the command messages, through the same handlers as `/ws`, with the verified
identity of the session cookie or a device token (`?token=`); it joins no room and carries no media.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from server.access import ACCESS, ended_notice
from server.auth import AuthError, Identity
from server.command.keys import COMMAND
from server.command.views import Viewer
from server.connection import CloseReason
from server.errors import RequestError, wire_error
from server.outbox import Outbox
from server.services import SERVICES, Services
from server.session import OUTBOX_LIMIT, RATE_BURST, RATE_PER_SECOND, RateLimiter
from server.store import StoreUnavailable
from server.web_auth import page_identity
from server.websocket import WebSocket
from signaling.codec import ProtocolError, parse_client, request_id
from signaling.command import COMMAND_CLIENT_MESSAGES
from signaling.messages import Error, Ping, Pong, ServerMessage

logger = logging.getLogger(__name__)

MAX_BAD_MESSAGES = 10


@dataclass(frozen=True)
class _Who:
    identity: Identity


class ConsoleSocket:
    """One console or board connection: an outbox drained by a writer, and the dispatch loop."""

    def __init__(self, ws: web.WebSocketResponse, identity: Identity, remote: str, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.remote = remote
        self.id = "c" + uuid.uuid4().hex[:11]
        self.participant = _Who(identity)
        self.viewer = Viewer(identity.identity, identity.site, identity.can("issue"))
        self.listener = self
        self.reads = True  # a console or board: a person's page
        self._outbox = Outbox(ws, limit=OUTBOX_LIMIT * 5, label=f"{remote}/{self.id}")

    def send(self, message: ServerMessage) -> None:
        """Queue a message; a client that cannot keep up is disconnected."""
        self._outbox.send(message)

    @property
    def closed(self) -> bool:
        """Whether the socket is gone."""
        return self.ws.closed

    @property
    def identity(self) -> Identity:
        """The verified identity behind the socket."""
        return self.participant.identity

    async def close(self, reason: CloseReason) -> None:
        """End the socket from the server's side (its token was revoked, expired, or lost its access)."""
        notice = ended_notice(reason)
        if notice is not None:
            self.send(notice)
        self._outbox.close()

    async def run(self) -> None:
        """Serve until the client goes away."""
        writer = asyncio.get_running_loop().create_task(self._outbox.run(), name="command-ws-writer")
        rate = RateLimiter(RATE_PER_SECOND, RATE_BURST)
        bad = 0
        try:
            async for raw in self.ws:
                if raw.type != WSMsgType.TEXT:
                    continue
                if not rate.allow():
                    self.send(Error(id=request_id(str(raw.data)), code="rate_limited", message="too many messages"))
                    bad += 1
                elif not await self._dispatch(str(raw.data)):
                    bad += 1
                if bad >= MAX_BAD_MESSAGES:
                    self.send(Error(code="too_many_errors", message="disconnected after repeated bad messages"))
                    break
        finally:
            self._outbox.close()
            await asyncio.gather(writer, return_exceptions=True)

    async def _dispatch(self, raw: str) -> bool:
        request_id: str | None = None
        try:
            message = parse_client(raw)
            request_id = message.id
            if isinstance(message, Ping):
                self.send(Pong(id=message.id))
                return True
            handler = self.services.handlers.get(type(message))
            if handler is None or not isinstance(message, COMMAND_CLIENT_MESSAGES):
                raise RequestError("unsupported", f"{type(message).__name__} is not handled on /command/ws")
            # Handlers are typed for the room Session; the command ones (the only ones that pass the
            # guard above) read just participant/id/remote/send (caller_of), which this socket has.
            reply = await handler(self, message)  # type: ignore[arg-type]
            if reply is not None:
                self.send(reply)
            return True
        except (ProtocolError, AuthError, RequestError) as exc:
            code, text = wire_error(exc)
            self.send(Error(id=exc.request_id if isinstance(exc, ProtocolError) else request_id, code=code, message=text))
            return False
        except StoreUnavailable as exc:  # said at once, with the wait: nothing was recorded
            code, text = wire_error(exc)
            self.send(Error(id=request_id, code=code, message=text))
            return True
        except Exception:  # noqa: BLE001 - a failed request must not end the socket
            logger.exception("command request failed remote=%s", self.remote)
            self.send(Error(id=request_id, code="internal", message="internal error"))
            return True


async def command_socket(request: web.Request) -> web.WebSocketResponse:
    """`GET /command/ws`: command updates and requests for a logged-in user or a device."""
    services = request.app[SERVICES]
    try:
        identity, _ = page_identity(request)
    except AuthError as exc:
        raise web.HTTPUnauthorized(text=f"{exc.code}: {exc}\n") from None
    if identity is None:
        raise web.HTTPUnauthorized(text="unauthenticated: log in or give a device token\n")
    ws = WebSocket(heartbeat=20, max_msg_size=services.config.server.max_message_bytes * 4)
    await ws.prepare(request)
    socket = ConsoleSocket(ws, identity, request.remote or "?", services)

    listeners = request.app[COMMAND].service.listeners
    listeners.add(socket)
    access = request.app[ACCESS]  # a logout or a revocation ends this socket too
    access.track(socket)
    try:
        await socket.run()
    finally:
        access.untrack(socket)
        listeners.remove(socket)
    return ws
