"""Placement between two nodes in this process over one Redis: the least loaded live node gets an
unplaced room, the first claim wins, and a node that lost a room to another ends its copy."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.services import Services
from server.store import RedisStore, RoomRecord
from signaling.codec import encode, parse_server
from signaling.messages import Error, Hello
from synthetic.client import RoomClient
from tests.e2e.conftest import _free_port
from tests.server.conftest import SECRET
from tests.server.test_store_contract import _delete_keys

pytestmark = pytest.mark.redis

Nodes = tuple[tuple[str, Services], tuple[str, Services]]


@pytest.fixture
async def two_nodes(
    redis_url: str, aiohttp_server: Callable[..., TestServer], demo_config: Config
) -> AsyncIterator[Nodes]:
    prefix = f"test:{uuid.uuid4().hex}:"
    started = []
    for node_id in ("node-a", "node-b"):
        port = _free_port()
        settings = msgspec.structs.replace(demo_config.server, port=port, node_url=f"http://127.0.0.1:{port}")
        store = RedisStore(redis_url, node_id=node_id, key_prefix=prefix)
        services = build_services(msgspec.structs.replace(demo_config, server=settings), secret=SECRET, store=store)
        server = await aiohttp_server(create_app(services), port=port)
        started.append((str(server.make_url("")).rstrip("/"), services))
    for _, services in started:
        await services.nodes.beat()  # each sees the other
    yield started[0], started[1]
    await _delete_keys(redis_url, prefix)


def token(services: Services, identity: str, room: str) -> str:
    return services.tokens.issue_device_token(identity=identity, site="police110", room=room, grants=("subscribe",), ttl=600)


async def test_an_unplaced_room_goes_to_the_least_loaded_node(two_nodes: Nodes) -> None:
    (url_a, a), (_, b) = two_nodes
    busy = RoomClient(url_a, "consultation", token(a, "busy", "consultation"), name="busy")
    newcomer = RoomClient(url_a, "command", token(a, "newcomer", "command"), name="newcomer")
    try:
        await busy.connect()  # node A, idle as B, keeps the room it was asked for
        assert set(a.rooms.rooms) == {"consultation"}
        await newcomer.connect()  # A now has a participant, B none: the new room goes to B
        assert set(b.rooms.rooms) == {"command"} and "command" not in a.rooms.rooms
        assert await a.store.room_owner("command") == "node-b"
    finally:
        await busy.close()
        await newcomer.close()


async def test_a_node_that_finds_its_room_taken_ends_its_copy(two_nodes: Nodes) -> None:
    (url_a, a), (_, b) = two_nodes
    client = RoomClient(url_a, "consultation", token(a, "site", "consultation"), name="site")
    codes: list[str] = []
    client.on_message = lambda message: codes.append(message.code) if isinstance(message, Error) else None
    try:
        await client.connect()
        await a.store.forget_node("node-a")  # as if A had been cut off from Redis past its ttl
        assert await b.store.claim_room("consultation", "node-b", ttl=30) == "node-b"
        await a.nodes.beat()
        assert "consultation" not in a.rooms.rooms
        await client.wait_disconnected()
        assert codes == ["room_moved"], "told why, then closed: the client connects again and is relayed to B"
    finally:
        await client.close()


async def test_more_relayed_sessions_than_a_client_pool_holds_are_all_welcomed(two_nodes: Nodes) -> None:
    (url_a, a), (url_b, b) = two_nodes
    first = RoomClient(url_a, "consultation", token(a, "host-site", "consultation"), name="host-site")
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        try:
            await first.connect()  # the room is on A; every session below reaches B and is relayed to A

            async def join(n: int) -> str:
                ws = await http.ws_connect(url_b + "/ws")
                sockets.append(ws)
                await ws.send_str(encode(Hello(id="h", room="consultation", token=token(b, f"relayed-{n}", "consultation"))))
                while True:
                    reply = parse_server((await ws.receive(timeout=20)).data)
                    if reply.id == "h":
                        return type(reply).__name__ + (f":{reply.code}" if isinstance(reply, Error) else "")

            replies = await asyncio.gather(*(join(n) for n in range(120)))
            assert replies.count("Welcome") == 120, sorted(set(replies))
            assert len(a.rooms.rooms["consultation"].participants) == 121
        finally:
            for ws in sockets:
                await ws.close()
            await first.close()


async def test_a_burst_of_new_rooms_is_spread_before_the_next_beat(two_nodes: Nodes) -> None:
    (_, a), (_, b) = two_nodes
    rooms = [f"burst-{n}" for n in range(6)]
    for room_id in rooms:
        await a.store.put_room(RoomRecord(id=room_id, name_zh=room_id, name_en=room_id, created_at=0.0, configured=False))
    for room_id in rooms:  # faster than a beat: the registry still says both nodes are idle
        await a.nodes.locate(room_id, relayed=False)
    owners = Counter([await a.store.room_owner(room_id) for room_id in rooms])
    assert owners == {"node-a": 3, "node-b": 3}, owners
