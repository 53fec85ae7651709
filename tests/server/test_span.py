"""A room across two nodes in this process over one Redis: each node serves its part of the room,
sees the other's participants, and every publication crosses once, whatever the subscribers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.services import Services
from server.store import RedisStore
from signaling.messages import SetMuted
from synthetic.client import FrameCounter, RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.e2e.conftest import _free_port
from tests.server.conftest import SECRET
from tests.server.test_store_contract import _delete_keys

pytestmark = pytest.mark.redis

ROOM = "consultation"
Node = tuple[str, Services]


@pytest.fixture
async def spanning(redis_url: str, aiohttp_server: Callable[..., TestServer], demo_config: Config) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on which a room holds one participant per node before it spans to the other."""
    prefix = f"test:{uuid.uuid4().hex}:"
    started = []
    for node_id in ("node-a", "node-b"):
        port = _free_port()
        settings = msgspec.structs.replace(demo_config.server, port=port, node_url=f"http://127.0.0.1:{port}", room_node_limit=1)
        store = RedisStore(redis_url, node_id=node_id, key_prefix=prefix)
        services = build_services(msgspec.structs.replace(demo_config, server=settings), secret=SECRET, store=store)
        server = await aiohttp_server(create_app(services), port=port)
        started.append((str(server.make_url("")).rstrip("/"), services))
    for _, services in started:
        await services.nodes.beat()
    yield started[0], started[1]
    await _delete_keys(redis_url, prefix)


@pytest.fixture(scope="module")
def loops() -> tuple[list[bytes], list[bytes]]:
    """One second of VP8 and Opus, encoded once for every test here."""
    return encode_video_loop("VP8", width=160, height=96, seconds=1, fps=15), encode_opus_loop(seconds=1)


def client(node: Node, identity: str, site: str = "jiangbei") -> RoomClient:
    url, services = node
    token = services.tokens.issue_device_token(identity=identity, site=site, room=ROOM, grants=("publish", "subscribe"), ttl=600)
    return RoomClient(url, ROOM, token, name=identity)


async def publish(unit: RoomClient, loops: tuple[list[bytes], list[bytes]]) -> None:
    video, audio = loops
    await unit.publish({"camera": video_loop_track(video, fps=15), "microphone": audio_loop_track(audio)})


async def sees_video_of(watcher: RoomClient, identity: str, frames: int = 5) -> str:
    """Wait until `watcher` decodes frames of `identity`'s camera; its publication id."""
    def has_video(w: RoomClient) -> bool:
        return any(p.identity == identity and p.kind == "video" and p.publication_id in w.received for p in w.publications.values())

    await watcher.wait_for(has_video, timeout=20)
    video_id = next(p.publication_id for p in watcher.publications.values() if p.identity == identity and p.kind == "video")
    async with FrameCounter(watcher.received[video_id]) as counter:
        await counter.wait_frames(frames, timeout=20)
    return video_id


async def test_two_sites_on_two_nodes_see_each_other(spanning: tuple[Node, Node], loops) -> None:
    a, b = spanning
    mayor, county = client(a, "mayor", "office"), client(a, "jiangbei")
    mayor_id = (await mayor.connect()).you.identity
    try:
        welcome = await county.connect()  # node A holds its one: the county is served on node B
        county_id = welcome.you.identity
        assert county_id in b[1].rooms.rooms[ROOM].participants and county_id not in a[1].rooms.rooms[ROOM].participants
        assert [p.identity for p in welcome.participants] == [mayor_id]
        await mayor.wait_for(lambda m: county_id in m.participants, timeout=10)
        await publish(mayor, loops)
        await publish(county, loops)
        video = await sees_video_of(mayor, county_id)
        await sees_video_of(county, mayor_id)
        room_a = a[1].rooms.rooms[ROOM]
        assert b[1].rooms.rooms[ROOM].router.publications[video].owner == county_id  # made on B
        assert room_a.span is not None and room_a.span.brought_in(room_a.router.publications[video])
    finally:
        await county.close()
    try:
        await mayor.wait_for(lambda m: county_id not in m.participants
                             and all(p.identity != county_id for p in m.publications.values()), timeout=10)
    finally:
        await mayor.close()


async def test_a_publication_crosses_once_for_any_number_of_subscribers_there(spanning: tuple[Node, Node], loops) -> None:
    a, b = spanning
    b[1].nodes.span_limit = 10  # node B takes the walls, node A (full at one) the unit
    unit = client(a, "unit")
    walls = [client(b, f"wall{n}", "command_centre") for n in range(3)]
    try:
        for wall in walls:
            await wall.connect()
        assert len(b[1].rooms.rooms[ROOM].participants) == 3
        unit_id = (await unit.connect()).you.identity
        assert unit_id in a[1].rooms.rooms[ROOM].participants
        await publish(unit, loops)
        for wall in walls:
            await sees_video_of(wall, unit_id)
        origin = a[1].rooms.rooms[ROOM]
        assert [len(p.subscriptions) for p in origin.router.publications.values()] == [1, 1]
        far = b[1].rooms.rooms[ROOM]
        assert origin.span is not None and far.span is not None
        assert origin.span.links.counts == (0, 1) and far.span.links.counts == (1, 0)  # one link, both tracks on it
    finally:
        for wall in walls:
            await wall.close()
        await unit.close()


async def test_a_node_that_leaves_the_span_takes_its_participants_out_of_the_room(spanning: tuple[Node, Node]) -> None:
    a, b = spanning
    mayor, county = client(a, "mayor", "office"), client(a, "jiangbei")
    await mayor.connect()
    county_id = (await county.connect()).you.identity
    try:
        await mayor.wait_for(lambda m: county_id in m.participants, timeout=10)
        span_b = b[1].rooms.rooms[ROOM].span
        assert span_b is not None
        await span_b.close()  # node B drops its part (a killed node's part expires: tests/server/test_span_processes.py)
        await mayor.wait_for(lambda m: county_id not in m.participants, timeout=10)
    finally:
        await county.close()
        await mayor.close()


async def test_a_publisher_muting_itself_on_one_node_shows_muted_on_the_other(spanning: tuple[Node, Node], loops) -> None:
    a, b = spanning
    mayor, county = client(a, "mayor", "office"), client(a, "jiangbei")
    await mayor.connect()
    try:
        county_id = (await county.connect()).you.identity  # served on node B
        await publish(county, loops)
        video = await sees_video_of(mayor, county_id)
        await county._send(SetMuted(kind="video", muted=True))
        await mayor.wait_for(lambda m: m.publications[video].muted, timeout=10)
        await county._send(SetMuted(kind="video", muted=False))
        await mayor.wait_for(lambda m: not m.publications[video].muted, timeout=10)
    finally:
        await county.close()
        await mayor.close()
