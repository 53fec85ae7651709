"""Room clients that remember every message, for the room-control tests."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.room import Room
from server.store import MemoryStore, RedisStore
from signaling.messages import ServerMessage
from synthetic.client import RoomClient
from tests.e2e.conftest import _free_port
from tests.server.conftest import SECRET, Platform
from tests.server.test_store_contract import _delete_keys

CHAIR_GRANTS = ("publish", "subscribe", "moderate")


class Member(RoomClient):
    """A RoomClient keeping every message the server sent it, in order."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inbox: list[ServerMessage] = []
        self.on_message = self.inbox.append

    def last(self, kind: type) -> object | None:
        """The latest message of a type, or None."""
        return next((m for m in reversed(self.inbox) if isinstance(m, kind)), None)


Join = Callable[..., Awaitable[Member]]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for server state that changes with every packet (no event to wait on): checked every 10 ms."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def join(platform: Platform) -> AsyncIterator[Join]:
    """Connect a member to the consultation room: `await join("id", site=..., grants=...)`."""
    members: list[Member] = []
    urls = itertools.cycle([platform.url, *(node.url for node in _second(platform))])

    async def _join(identity: str, *, site: str = "jiangbei", grants: Iterable[str] = ("publish", "subscribe"),
                    room: str = "consultation") -> Member:
        member = Member(next(urls), room, platform.token(identity, site=site, grants=tuple(grants), room=room), name=identity)
        members.append(member)
        await member.connect()
        if _second(platform):  # as a chair acts on whom its page shows: once both nodes know
            await until(lambda: all(_knows(node, room, member.welcome.you.identity) for node in (platform, *_second(platform))))
        return member

    yield _join
    for member in members:
        await member.close()


@pytest.fixture(params=["one node", "two nodes"])
async def platform(request: pytest.FixtureRequest, aiohttp_server: Callable[..., TestServer], demo_config: Config,
                   redis_url: str) -> AsyncIterator[Platform]:
    """The server the members join: one node with the embedded store, or a room across two nodes
    over one Redis (every second member connects to the second node, where its part of the room is)."""
    if request.param == "one node":
        services = build_services(demo_config, secret=SECRET, store=MemoryStore(node_id="test"))
        server = await aiohttp_server(create_app(services))
        yield Platform(url=str(server.make_url("")).rstrip("/"), services=services)
        return
    prefix = f"test:{uuid.uuid4().hex}:"
    nodes = []
    for node_id in ("node-a", "node-b"):
        port = _free_port()
        settings = msgspec.structs.replace(demo_config.server, port=port, node_url=f"http://127.0.0.1:{port}", room_node_limit=100)
        services = build_services(msgspec.structs.replace(demo_config, server=settings), secret=SECRET,
                                  store=RedisStore(redis_url, node_id=node_id, key_prefix=prefix))
        server = await aiohttp_server(create_app(services), port=port)
        nodes.append(Platform(url=str(server.make_url("")).rstrip("/"), services=services))
    for node in nodes:
        await node.services.nodes.beat()
    first, second = nodes
    yield SpanningPlatform(url=first.url, services=first.services, second=second)
    await _delete_keys(redis_url, prefix)


def _second(platform: Platform) -> list[Platform]:
    # By attribute, not class: test modules import this conftest under another name than pytest does.
    second = getattr(platform, "second", None)
    return [second] if isinstance(second, Platform) else []


def _knows(node: Platform, room_id: str, identity: str) -> bool:
    room = node.services.rooms.rooms.get(room_id)
    if room is None:
        return True  # no part of the room there yet: it reads who is where when its first member comes
    return identity in room.participants or (room.span is not None and identity in room.span.members)


@dataclass
class SpanningPlatform(Platform):
    """Two nodes holding the room between them; `url` and `services` are the first's."""

    second: Platform


def origin_room(platform: Platform, publication_id: str, room_id: str = "consultation") -> Room:
    """The room (on the node, of two, where `publication_id` was made) that receives it from its publisher."""
    nodes = [platform, *_second(platform)]
    for node in nodes:
        room = node.services.rooms.rooms.get(room_id)
        publication = room.router.publications.get(publication_id) if room is not None else None  # type: ignore[call-overload]
        if publication is not None and (room.span is None or not room.span.brought_in(publication)):
            return room
    raise LookupError(publication_id)


def one_node_only(platform: Platform, why: str) -> None:
    """Skip the two-node run of a test whose behaviour is not shared between nodes yet."""
    if _second(platform):
        pytest.skip(f"a room across nodes: {why}")
