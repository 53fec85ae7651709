"""Access ends where it is used: logouts and revocations reach open sockets and other nodes, survive a
restart, and a user or grant taken out of the configuration ends the sessions that held it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from aiortc import RTCConfiguration, RTCPeerConnection

from server.access import ACCESS, Access, reload_on_hangup
from server.app import build_services, create_app
from server.config import DEFAULT_CONFIG_PATH, Config
from server.services import Services
from server.store import MemoryStore, RedisStore, RevocationRecord, Store
from tests.server.conftest import SECRET

ROOM = "consultation"
TIMEOUT = 5.0


@dataclass
class Node:
    """One running server: its URL, state and access watch."""

    url: str
    services: Services
    access: Access
    server: TestServer

    def cookie(self, username: str) -> str:
        """A fresh session cookie of a configured user, as a login would set it."""
        user = self.services.config.user(username)
        assert user is not None
        return self.services.tokens.issue_session(user, 3600)

    def device(self, identity: str, site: str = "linjiang", grants: tuple[str, ...] = ("subscribe",), ttl: int = 600) -> str:
        """A device token for this node's secret."""
        return self.services.tokens.issue_device_token(identity=identity, site=site, room=ROOM, grants=grants, ttl=ttl)

    def headers(self, cookie: str | None = None) -> dict[str, str]:
        """What this node's own pages send: the session cookie and their origin."""
        return {"Origin": self.url, **({"Cookie": f"cp_session={cookie}"} if cookie else {})}


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
def start_node(aiohttp_server: Callable[..., Awaitable[TestServer]], demo_config: Config) -> NodeFactory:
    """Start a server on `store` (a MemoryStore by default) with `config` and `[server]` settings changed."""

    async def start(store: Store | None = None, config: Config | None = None, **settings: object) -> Node:
        base = config or demo_config
        config = msgspec.structs.replace(base, server=msgspec.structs.replace(base.server, **settings))
        services = build_services(config, secret=SECRET, store=store or MemoryStore(node_id=f"node-{uuid.uuid4().hex[:4]}"))
        server = await aiohttp_server(create_app(services))
        return Node(str(server.make_url("")).rstrip("/"), services, server.app[ACCESS], server)

    return start


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the test Redis, deleted afterwards."""
    prefix = f"test-access-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass
class Socket:
    """A raw WebSocket to `/ws` or `/command/ws` that keeps what the server says, until it closes."""

    ws: aiohttp.ClientWebSocketResponse
    received: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> Socket:
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            if raw.type == aiohttp.WSMsgType.TEXT:
                async with self._arrived:
                    self.received.append(json.loads(raw.data))
                    self._arrived.notify_all()
        self.closed.set()

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a request and return the reply with its id."""
        seen = len(self.received)
        await self.ws.send_str(json.dumps(message))
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: any(m.get("id") == message["id"] for m in self.received[seen:])), TIMEOUT)
        return next(m for m in self.received[seen:] if m.get("id") == message["id"])

    async def ended_by(self) -> str:
        """Wait until the server closes the socket; the code of its last error message."""
        await asyncio.wait_for(self.closed.wait(), TIMEOUT)
        errors = [m["code"] for m in self.received if m.get("type") == "error"]
        return errors[-1] if errors else ""

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def open_socket(http: aiohttp.ClientSession, node: Node, path: str = "/ws", *, cookie: str | None = None) -> Socket:
    return Socket(await http.ws_connect(node.url + path, headers=node.headers(cookie))).start()


async def join(http: aiohttp.ClientSession, node: Node, *, cookie: str | None = None, token: str | None = None) -> Socket:
    """A `/ws` session in the consultation room, welcomed."""
    socket = await open_socket(http, node, cookie=cookie)
    hello: dict[str, Any] = {"type": "hello", "id": "1", "version": 1, "room": ROOM, **({"token": token} if token else {})}
    welcome = await socket.ask(hello)
    assert welcome["type"] == "welcome", welcome
    return socket


async def signed_in(http: aiohttp.ClientSession, node: Node, cookie: str) -> bool:
    """Whether the node takes the cookie: the room list answers instead of sending to the login page."""
    async with http.get(node.url + "/", headers=node.headers(cookie), allow_redirects=False) as response:
        return response.status == 200


async def log_out(http: aiohttp.ClientSession, node: Node, cookie: str) -> None:
    async with http.post(node.url + "/logout", headers=node.headers(cookie), allow_redirects=False) as response:
        assert response.status == 303


# ------------------------------------------------------------------------------ one node ---


async def test_logout_ends_the_users_open_sockets_and_its_cookie(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    cookie = node.cookie("mayor")
    room = await join(http, node, cookie=cookie)
    console = await open_socket(http, node, "/command/ws", cookie=cookie)
    assert (await console.ask({"type": "command_subscribe", "id": "s1"}))["type"] == "command_synced"
    waiting = await open_socket(http, node, cookie=cookie)  # upgraded, no hello yet
    other = await join(http, node, cookie=node.cookie("chief"))
    await log_out(http, node, cookie)
    assert await room.ended_by() == "token_revoked"
    assert await console.ended_by() == "token_revoked"
    assert await waiting.ended_by() == "token_revoked"
    assert "mayor" not in node.services.rooms.rooms[ROOM].participants
    assert not await signed_in(http, node, cookie)
    again = await open_socket(http, node, cookie=cookie)
    refused = await again.ask({"type": "hello", "id": "1", "version": 1, "room": ROOM})
    assert refused["code"] == "unauthenticated"
    assert not other.closed.is_set() and "chief" in node.services.rooms.rooms[ROOM].participants
    await other.close()


async def test_a_device_link_revoked_on_the_page_ends_its_connections_at_once(
    start_node: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await start_node()
    token = node.device("linjiang-phone", grants=("publish", "subscribe"))
    phone = await join(http, node, token=token)
    token_id = node.services.tokens.verify_device_token(token).token_id
    admin = node.cookie("chief")
    async with http.get(node.url + "/admin/devices", headers=node.headers(admin)) as response:
        assert response.status == 200
        page = await response.text()
    assert f'data-token-id="{token_id}"' in page and "linjiang-phone" in page
    revoke = f"{node.url}/api/device-links/{token_id}/revoke"
    async with http.post(revoke, json={"reason": "手机丢失 phone lost"}, headers=node.headers(node.cookie("mayor"))) as response:
        assert response.status == 403  # the mayor is no administrator
    async with http.post(revoke, json={"reason": "手机丢失 phone lost"}, headers=node.headers(admin)) as response:
        assert response.status == 200
        assert await response.json() == {"token_id": token_id, "revoked": True, "ended": 1}
    assert await phone.ended_by() == "token_revoked"
    back = await open_socket(http, node)
    assert (await back.ask({"type": "hello", "id": "1", "version": 1, "room": ROOM, "token": token}))["code"] == "token_revoked"
    async with http.post(node.url + f"/whip/{ROOM}", data="v=0\r\n", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as response:
        assert response.status == 401 and "token_revoked" in await response.text()
    records, _ = await node.services.store.revocations_after(0)
    assert [(r.token_id, r.identity, r.by, r.reason) for r in records] == [(token_id, "linjiang-phone", "chief", "手机丢失 phone lost")]


async def test_the_device_links_page_is_for_administrators(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    async with http.get(node.url + "/admin/devices", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"].startswith("/login")
    async with http.get(node.url + "/admin/devices", headers=node.headers(node.cookie("county01"))) as response:
        assert response.status == 403


async def test_a_token_that_expires_while_connected_is_ended_by_the_recheck(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    phone = await join(http, node, token=node.device("linjiang-phone", ttl=60))
    console = await open_socket(http, node, f"/command/ws?token={node.device('linjiang-desk', ttl=600)}")
    assert (await console.ask({"type": "command_subscribe", "id": "s1"}))["type"] == "command_synced"
    node.services.tokens._clock = lambda: time.time() + 120  # the phone's minute is over, not the desk's ten
    assert await node.access.recheck() == 1
    assert await phone.ended_by() == "token_expired"
    assert not console.closed.is_set()
    await console.close()


# -------------------------------------------------------------- the configuration ---


def without_user(config: Config, username: str) -> Config:
    return msgspec.structs.replace(config, users=tuple(u for u in config.users if u.username != username))


def with_grants(config: Config, username: str, grants: tuple[str, ...]) -> Config:
    users = tuple(msgspec.structs.replace(u, grants=grants) if u.username == username else u for u in config.users)
    return msgspec.structs.replace(config, users=users)


async def test_a_grant_removed_while_connected_ends_the_session_and_the_return_lacks_it(
    start_node: NodeFactory, http: aiohttp.ClientSession, demo_config: Config
) -> None:
    node = await start_node()
    cookie = node.cookie("mayor")
    room = await join(http, node, cookie=cookie)
    assert "issue" in room.received[0]["grants"]
    bystander = await join(http, node, cookie=node.cookie("chief"))
    assert await node.access.reload(with_grants(demo_config, "mayor", ("publish", "subscribe", "moderate"))) == 1
    assert await room.ended_by() == "access_withdrawn"
    back = await join(http, node, cookie=cookie)
    assert "issue" not in back.received[0]["grants"]
    issued = await back.ask({"type": "directive_issue", "id": "d1", "cls": "reference", "title": "t", "sites": ["linjiang"]})
    assert issued["code"] == "forbidden"
    assert not bystander.closed.is_set()
    for socket in (back, bystander):
        await socket.close()


async def test_a_user_removed_from_the_configuration_is_ended_by_the_periodic_recheck(
    start_node: NodeFactory, http: aiohttp.ClientSession, demo_config: Config
) -> None:
    node = await start_node(access_recheck=0.1)
    cookie = node.cookie("county01")
    console = await open_socket(http, node, "/command/ws", cookie=cookie)
    assert (await console.ask({"type": "command_subscribe", "id": "s1"}))["type"] == "command_synced"
    assert node.services.tokens.directory is not None
    node.services.tokens.directory.load(without_user(demo_config, "county01"))  # as a reload would
    assert await console.ended_by() == "access_withdrawn"
    assert not await signed_in(http, node, cookie)


async def test_after_a_restart_a_removed_user_is_refused_and_a_removed_grant_is_gone(
    start_node: NodeFactory, http: aiohttp.ClientSession, demo_config: Config
) -> None:
    before = await start_node()
    mayor, county = before.cookie("mayor"), before.cookie("county01")
    await before.server.close()
    changed = with_grants(without_user(demo_config, "county01"), "mayor", ("publish", "subscribe"))
    after = await start_node(config=changed)
    assert not await signed_in(http, after, county)
    room = await join(http, after, cookie=mayor)
    assert room.received[0]["grants"] == ["publish", "subscribe"]
    await room.close()


# ------------------------------------------------------------------- several nodes ---


@pytest.mark.redis
async def test_a_logout_on_one_node_is_honoured_by_another_sharing_redis(
    start_node: NodeFactory, http: aiohttp.ClientSession, redis_url: str, redis_prefix: str
) -> None:
    a = await start_node(RedisStore(redis_url, node_id="node-a", key_prefix=redis_prefix), revocation_poll=0.1)
    b = await start_node(RedisStore(redis_url, node_id="node-b", key_prefix=redis_prefix), revocation_poll=0.1)
    cookie = a.cookie("mayor")
    on_b = await join(http, b, cookie=cookie)
    console_on_b = await open_socket(http, b, "/command/ws", cookie=cookie)
    assert (await console_on_b.ask({"type": "command_subscribe", "id": "s1"}))["type"] == "command_synced"
    await log_out(http, a, cookie)
    assert await on_b.ended_by() == "token_revoked"  # node B read it from Redis within its poll
    assert await console_on_b.ended_by() == "token_revoked"
    assert not await signed_in(http, b, cookie)
    assert not await signed_in(http, a, cookie)
    assert await signed_in(http, b, b.cookie("mayor"))  # a new login works on either node


@pytest.mark.redis
async def test_a_logout_and_a_revoked_link_stay_refused_after_a_restart(
    start_node: NodeFactory, http: aiohttp.ClientSession, redis_url: str, redis_prefix: str
) -> None:
    first = await start_node(RedisStore(redis_url, node_id="node-a", key_prefix=redis_prefix))
    cookie = first.cookie("mayor")
    token = first.device("linjiang-phone")
    phone = await join(http, first, token=token)
    await log_out(http, first, cookie)
    token_id = first.services.tokens.verify_device_token(token).token_id
    async with http.post(f"{first.url}/api/device-links/{token_id}/revoke", json={"reason": ""}, headers=first.headers(first.cookie("chief"))) as response:
        assert response.status == 200
    assert await phone.ended_by() == "token_revoked"
    await first.server.close()
    restarted = await start_node(RedisStore(redis_url, node_id="node-a", key_prefix=redis_prefix))
    assert not await signed_in(http, restarted, cookie)
    back = await open_socket(http, restarted)
    assert (await back.ask({"type": "hello", "id": "1", "version": 1, "room": ROOM, "token": token}))["code"] == "token_revoked"
    await back.close()


async def test_a_revoked_encoders_whip_resource_is_closed_and_its_tracks_go(start_node: NodeFactory, http: aiohttp.ClientSession) -> None:
    node = await start_node()
    token = node.device("levee-encoder", grants=("publish",))
    encoder = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    encoder.addTransceiver("video", direction="sendonly")
    try:
        await encoder.setLocalDescription(await encoder.createOffer())
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
        async with http.post(f"{node.url}/whip/{ROOM}", data=encoder.localDescription.sdp, headers=headers) as response:
            assert response.status == 201
            location = response.headers["Location"]
        room = node.services.rooms.rooms[ROOM]
        assert "levee-encoder" in room.participants
        identity = node.services.tokens.verify_device_token(token)
        revoked = RevocationRecord(token_id=identity.token_id, expires_at=identity.expires_at, revoked_at=time.time(), reason="stolen")
        assert await node.access.revoke(revoked) == 1
        assert "levee-encoder" not in room.participants and not room.router.publications
        async with http.delete(node.url + location, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 401  # the token itself is refused now
    finally:
        await encoder.close()


async def test_a_hangup_reloads_the_users_and_ends_what_lost_its_grants(
    aiohttp_server: Callable[..., Awaitable[TestServer]], demo_config: Config, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "city.toml"
    path.write_text(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    services = build_services(demo_config, secret=SECRET, store=MemoryStore(node_id="node-a"))
    app = create_app(services)
    reload_on_hangup(app, path)
    server = await aiohttp_server(app)
    node = Node(str(server.make_url("")).rstrip("/"), services, app[ACCESS], server)
    room = await join(http, node, cookie=node.cookie("mayor"))
    mayor = 'username = "mayor"\ndisplay_name = "市长 / Mayor"\nsite = "office"\ngrants = ["publish", "subscribe", "moderate", "issue"]'
    text = path.read_text(encoding="utf-8")
    assert mayor in text
    path.write_text(text.replace(mayor, mayor.replace(', "moderate", "issue"]', "]")), encoding="utf-8")
    os.kill(os.getpid(), signal.SIGHUP)  # handled by the server's loop, as `kill -HUP <pid>` would be
    assert await room.ended_by() == "access_withdrawn"
    user = services.config.user("mayor")
    assert user is not None and user.grants == ("publish", "subscribe")
