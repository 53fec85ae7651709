"""With RedisStore the server keeps rooms and presence in a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.store import RedisStore
from synthetic.client import RoomClient
from tests.server.conftest import SECRET


async def test_rooms_and_presence_go_through_redis(
    aiohttp_server: Callable[..., TestServer], demo_config: Config, redis_url: str
) -> None:
    prefix = f"test-platform-{uuid.uuid4().hex[:8]}:"
    store = RedisStore(redis_url, node_id="node-a", key_prefix=prefix)
    services = build_services(demo_config, secret=SECRET, store=store)
    server = await aiohttp_server(create_app(services))
    url = str(server.make_url("")).rstrip("/")
    try:
        assert [r.id for r in await store.list_rooms()] == sorted(r.id for r in demo_config.rooms)
        token = services.tokens.issue_device_token(identity="desk-county01", site="jiangbei", room="consultation", grants=["publish"], ttl=60)
        client = RoomClient(url, "consultation", token)
        await client.connect()
        presence = await store.list_presence("consultation")
        assert [(p.identity, p.site, p.node) for p in presence] == [("desk-county01", "jiangbei", "node-a")]
        assert await store.room_owner("consultation") == "node-a", "the room is placed on this node"
        await client.close()
        await client.wait_disconnected()
        await services.sessions.wait_empty(5)
        assert await store.list_presence("consultation") == []
    finally:
        await server.close()
        connection = aioredis.from_url(redis_url)
        keys = [key async for key in connection.scan_iter(match=prefix + "*")]
        if keys:
            await connection.delete(*keys)
        await connection.aclose()
