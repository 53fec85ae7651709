"""An in-process server with a manual clock, and lean command clients speaking `/ws` (no WebRTC)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.command.keys import COMMAND, Command
from server.config import Config
from server.scheduler import ManualClock
from server.services import Services
from server.store import MemoryStore
from signaling.codec import encode, parse_server
from signaling.command import CommandEvent, CommandSubscribe
from signaling.messages import ClientMessage, Error, Hello, ServerMessage, Welcome

SECRET = b"test-secret-" + b"0" * 40
TIMEOUT = 10.0


class Refused(Exception):
    """The server answered a request with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass
class CommandClient:
    """A lean `/ws` client: joins a room without media and collects command events by id."""

    ws: aiohttp.ClientWebSocketResponse
    events: dict[str, CommandEvent] = field(default_factory=dict)
    duplicates: int = 0
    errors: list[Error] = field(default_factory=list)
    _pending: dict[str, asyncio.Future[ServerMessage]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: Iterable[int] = field(default_factory=lambda: itertools.count(100))
    _reader: asyncio.Task[None] | None = None

    async def start(self, hello: Hello | None) -> None:
        """Say hello (room sockets) and start reading."""
        self._reader = asyncio.get_running_loop().create_task(self._read())
        if hello is not None:
            welcome = await self.request(hello)
            assert isinstance(welcome, Welcome), welcome

    async def _read(self) -> None:
        async for raw in self.ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                continue
            message = parse_server(raw.data)
            future = self._pending.pop(message.id, None) if message.id else None
            if future is not None and not future.done():
                future.set_result(message)
            elif isinstance(message, CommandEvent):
                if message.event.id in self.events:
                    self.duplicates += 1
                self.events[message.event.id] = message
            elif isinstance(message, Error):
                self.errors.append(message)
            async with self._changed:
                self._changed.notify_all()

    async def request(self, message: ClientMessage) -> ServerMessage:
        """Send with a fresh id; the reply, or Refused for an error reply."""
        request_id = message.id or str(next(self._ids))  # type: ignore[call-overload]
        message = msgspec.structs.replace(message, id=request_id)
        future: asyncio.Future[ServerMessage] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.ws.send_str(encode(message))
        reply = await asyncio.wait_for(future, TIMEOUT)
        if isinstance(reply, Error):
            raise Refused(reply.code, reply.message)
        return reply

    async def send_raw(self, text: str) -> None:
        """Send text as is."""
        await self.ws.send_str(text)

    async def wait_for(self, predicate: Callable[[CommandClient], bool], timeout: float = TIMEOUT) -> None:
        """Wait until `predicate(self)` holds."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self)), timeout)

    def of_kind(self, kind: str) -> list[CommandEvent]:
        """Received events of one kind, in arrival order."""
        return [e for e in self.events.values() if e.event.kind == kind]

    async def close(self) -> None:
        """Close the socket and stop reading."""
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class CommandPlatform:
    """The running server, its clock, and a factory of connected clients."""

    url: str
    services: Services
    clock: ManualClock
    command: Command
    session: aiohttp.ClientSession
    clients: list[CommandClient] = field(default_factory=list)

    def token(self, identity: str, site: str, grants: Iterable[str] = ("publish",), room: str = "consultation") -> str:
        """A device token for this server."""
        return self.services.tokens.issue_device_token(identity=identity, site=site, room=room, grants=grants, ttl=600)

    async def client(self, identity: str, site: str, grants: Iterable[str] = ("publish",), *,
                     subscribe: bool = True, after: str | None = None) -> CommandClient:
        """A client in the consultation room (no media), subscribed to command updates."""
        ws = await self.session.ws_connect(self.url + "/ws")
        client = CommandClient(ws)
        self.clients.append(client)
        await client.start(Hello(room="consultation", token=self.token(identity, site, grants)))
        if subscribe:
            await client.request(CommandSubscribe(after=after))
        return client

    async def console(self, identity: str, site: str, grants: Iterable[str] = ("issue",)) -> CommandClient:
        """A client on `/command/ws` (the console's socket), subscribed: a configured user's login (its
        site and grants are the configuration's), else a device token with `site` and `grants`."""
        user = self.services.config.user(identity)
        if user is not None:  # a device named like a user is not that user (it gets "device:" before its name)
            cookie = self.services.tokens.issue_session(user, 600)
            ws = await self.session.ws_connect(f"{self.url}/command/ws", headers={"Cookie": f"cp_session={cookie}", "Origin": self.url})
        else:
            ws = await self.session.ws_connect(f"{self.url}/command/ws?token={self.token(identity, site, grants)}")
        client = CommandClient(ws)
        self.clients.append(client)
        await client.start(None)
        await client.request(CommandSubscribe())
        return client


async def serving(aiohttp_server: Callable[..., TestServer], config: Config) -> AsyncIterator[CommandPlatform]:
    """The whole server in-process on `config` with a ManualClock and a memory store; its clients closed after."""
    clock = ManualClock()
    services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test", clock=clock.now), clock=clock)
    app = create_app(services)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        platform = CommandPlatform(str(server.make_url("")).rstrip("/"), services, clock, app[COMMAND], session)
        yield platform
        for client in platform.clients:
            await client.close()


@pytest.fixture
async def command_platform(aiohttp_server: Callable[..., TestServer], demo_config: Config,
                           tmp_path: object) -> AsyncIterator[CommandPlatform]:
    """The whole server in-process with a ManualClock and a temporary data directory."""
    config = msgspec.structs.replace(demo_config, server=msgspec.structs.replace(demo_config.server, data_dir=str(tmp_path)))
    async for platform in serving(aiohttp_server, config):
        yield platform
