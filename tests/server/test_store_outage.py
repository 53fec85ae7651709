"""Redis goes away under a running node: clients hear "store unavailable, retry" at once, nothing is
left half-done, media keeps flowing, and the node recovers by itself when Redis is back.

Our own redis-server per test, stopped (SIGSTOP: it hangs), killed (connection refused) and started
again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.services import Services
from server.store import RedisStore
from tests.redis_processes import RedisProcess
from tests.server.conftest import SECRET

pytestmark = pytest.mark.redis

ROOM = "consultation"
COMMAND_TIMEOUT = 1.0  # the node's Redis command timeout here (5 s by default): what a hung Redis costs once


@pytest.fixture
def redis_process(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    if process.proc is not None and process.proc.poll() is None:
        process.kill()


class Node:
    """The server in this process over `redis_process`, and a client for it."""

    def __init__(self, url: str, services: Services, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.services = services
        self.http = http

    def token(self, identity: str, grants: tuple[str, ...] = ("publish", "subscribe")) -> str:
        return self.services.tokens.issue_device_token(identity=identity, site="jiangbei", room=ROOM, grants=grants, ttl=600)

    async def hello(self, identity: str) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, object], float]:
        """Open /ws and say hello: the socket, the reply to the hello, and how long it took."""
        ws = await self.http.ws_connect(self.url + "/ws")
        started = time.perf_counter()
        await ws.send_str(json.dumps({"type": "hello", "id": "h", "version": 1, "room": ROOM, "token": self.token(identity)}))
        while True:
            reply = json.loads((await ws.receive(timeout=15)).data)
            if reply.get("id") == "h":
                return ws, reply, time.perf_counter() - started

    def participants(self) -> set[str]:
        room = self.services.rooms.rooms.get(ROOM)
        return set(room.participants) if room is not None else set()

    async def settled(self, sessions: int) -> None:
        """Wait until only `sessions` sessions are open and no socket writer outlives its session."""
        for _ in range(100):
            writers = [t for t in asyncio.all_tasks() if t.get_name() == "ws-writer" and not t.done()]
            if len(list(self.services.sessions)) == sessions and len(writers) == sessions:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(list(self.services.sessions))} sessions, {len(writers)} writers; {sessions} expected")


@pytest.fixture
async def node(
    redis_process: RedisProcess, aiohttp_server: Callable[..., TestServer], demo_config: Config
) -> AsyncIterator[Node]:
    store = RedisStore(redis_process.url, node_id="outage", key_prefix="outage:", command_timeout=COMMAND_TIMEOUT, connect_timeout=0.5)
    services = build_services(demo_config, secret=SECRET, store=store)
    server = await aiohttp_server(create_app(services))
    async with aiohttp.ClientSession() as http:
        yield Node(str(server.make_url("")).rstrip("/"), services, http)


async def _healthz(node: Node) -> int:
    async with node.http.get(node.url + "/healthz") as response:
        return response.status


async def test_a_join_while_redis_is_down_is_refused_at_once_and_leaves_nothing(node: Node, redis_process: RedisProcess) -> None:
    first, welcome, _ = await node.hello("levee-phone")
    assert welcome["type"] == "welcome"
    redis_process.kill()

    second, refused, took = await node.hello("county-phone")
    assert (refused["type"], refused["code"]) == ("error", "store_unavailable"), refused
    assert "retry" in str(refused["message"])
    assert took < 1.0  # connection refused: said at once
    assert node.participants() == {"levee-phone"}  # nothing half-done, and the one present stays
    await second.close()
    await node.settled(1)

    # While it is down, every call fails at once (one a second tries Redis again).
    third, refused, took = await node.hello("county-phone")
    assert refused["code"] == "store_unavailable" and took < 0.5
    await third.close()
    assert await _healthz(node) == 503
    async with node.http.post(f"{node.url}/whip/{ROOM}", data="v=0\r\n", headers={
        "Authorization": f"Bearer {node.token('encoder')}", "Content-Type": "application/sdp"}) as response:
        assert response.status in (400, 503)  # a bad offer is refused before the store is asked

    redis_process.start()  # same port, its AOF: the node finds it again by itself
    for _ in range(40):
        if await _healthz(node) == 200:
            break
        await asyncio.sleep(0.1)
    back, welcome, _ = await node.hello("county-phone")
    assert welcome["type"] == "welcome"
    assert node.participants() == {"levee-phone", "county-phone"}
    await first.close()
    await back.close()


async def test_a_hung_redis_costs_one_command_timeout_then_fails_fast_until_it_answers(node: Node, redis_process: RedisProcess) -> None:
    first, welcome, _ = await node.hello("levee-phone")
    assert welcome["type"] == "welcome"
    redis_process.signal(signal.SIGSTOP)
    try:
        second, refused, took = await node.hello("county-phone")
        assert refused["code"] == "store_unavailable" and took < COMMAND_TIMEOUT + 1.0, (refused, took)
        await second.close()
        third, refused, took = await node.hello("county-phone")
        assert refused["code"] == "store_unavailable" and took < 0.5, (refused, took)
        await third.close()
        # A request on the command socket hears it at once, with its own id.
        token = node.token("centre-desk", grants=("issue",))
        async with node.http.ws_connect(f"{node.url}/command/ws?token={token}") as console:
            await console.send_str(json.dumps({"type": "directive_issue", "id": "d1", "cls": "reference", "title": "汛情", "sites": ["linjiang"]}))
            reply = json.loads((await console.receive(timeout=5)).data)
            while reply.get("id") != "d1":
                reply = json.loads((await console.receive(timeout=5)).data)
            assert (reply["type"], reply["code"]) == ("error", "store_unavailable"), reply
        assert node.participants() == {"levee-phone"}
        await node.settled(1)
    finally:
        redis_process.signal(signal.SIGCONT)
    await asyncio.sleep(1.1)  # the next try reaches Redis
    back, welcome, _ = await node.hello("county-phone")
    assert welcome["type"] == "welcome"
    await first.close()
    await back.close()
