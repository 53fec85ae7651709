"""Bad input gets a clear error and loses nothing; the session or the server stays up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.server.conftest import Platform


class Wire:
    """A raw `/ws` connection for sending arbitrary text."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, payload: object) -> None:
        await self.ws.send_str(payload if isinstance(payload, str) else json.dumps(payload))

    async def reply(self) -> dict[str, object]:
        msg = await self.ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a message, got {msg.type!r}"
        return json.loads(msg.data)

    async def ask(self, payload: object) -> dict[str, object]:
        await self.send(payload)
        return await self.reply()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _open(http: aiohttp.ClientSession, platform: Platform) -> Wire:
    return Wire(await http.ws_connect(platform.url + "/ws"))


async def _joined(http: aiohttp.ClientSession, platform: Platform) -> Wire:
    wire = await _open(http, platform)
    welcome = await wire.ask({"type": "hello", "id": "1", "version": 1, "room": "consultation", "token": platform.token("county01")})
    assert welcome["type"] == "welcome"
    return wire


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        ({"type": "hello", "id": "h", "version": 1, "room": "consultation"}, "unauthenticated"),
        ({"type": "hello", "id": "h", "version": 1, "room": "consultation", "token": "not-a-jwt"}, "invalid_token"),
        ({"type": "hello", "id": "h", "version": 9, "room": "consultation", "token": None}, "unsupported_version"),
        ({"type": "hello", "id": "h", "version": 1, "room": "nowhere", "token": None}, "unauthenticated"),
        ({"type": "ping", "id": "h"}, "hello_expected"),
    ],
)
async def test_a_session_without_a_valid_hello_is_refused_with_a_clear_error(
    http: aiohttp.ClientSession, platform: Platform, hello: dict[str, object], code: str
) -> None:
    wire = await _open(http, platform)
    reply = await wire.ask(hello)
    assert reply["type"] == "error" and reply["code"] == code and reply["id"] == "h"
    assert (await wire.ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert platform.services.rooms.rooms.get("consultation") is None or not platform.services.rooms.rooms["consultation"].participants


async def test_an_expired_token_is_refused(http: aiohttp.ClientSession, platform: Platform) -> None:
    token = platform.services.tokens.issue_device_token(identity="x", site="jiangbei", room="consultation", grants=["publish"], ttl=1)
    platform.services.tokens._clock = lambda: 10**10  # the far future, for this server's verifier
    wire = await _open(http, platform)
    reply = await wire.ask({"type": "hello", "id": "1", "version": 1, "room": "consultation", "token": token})
    assert reply["code"] == "token_expired"


async def test_a_token_for_another_room_is_refused(http: aiohttp.ClientSession, platform: Platform) -> None:
    wire = await _open(http, platform)
    reply = await wire.ask({"type": "hello", "id": "1", "version": 1, "room": "consultation", "token": platform.token("x", room="command")})
    assert reply["code"] == "wrong_room"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{not json", "malformed_json"),
        ({"type": "teleport", "id": "7"}, "unknown_type"),
        ({"type": "publish_offer", "id": "7", "sdp": 42}, "invalid_field"),
        ({"type": "ping", "id": "7", "extra": True}, "invalid_field"),
        ({"type": "publish_offer", "id": "7", "sdp": "garbage"}, "bad_sdp"),
        ({"type": "publish_offer", "id": "7", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"}, "bad_sdp"),
        ({"type": "publish_offer", "id": "7", "sdp": "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 1000}, "sdp_too_large"),
        ({"type": "publish_offer", "id": "7", "sdp": "v=0\r\n" + "m=audio 9 RTP 0\r\n" * 1000}, "too_many_tracks"),
        ({"type": "subscribe_answer", "id": "7", "sdp": "v=0\r\n"}, "unexpected_answer"),
        ({"type": "hello", "id": "7", "version": 1, "room": "consultation"}, "already_joined"),
        ("x" * 70_000, "too_large"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_session_stays_up(
    http: aiohttp.ClientSession, platform: Platform, payload: object, code: str
) -> None:
    wire = await _joined(http, platform)
    reply = await wire.ask(payload)
    while reply["type"] != "error":  # room events may arrive first
        reply = await wire.reply()
    assert reply["code"] == code, reply
    assert reply["message"]
    assert (await wire.ask({"type": "ping", "id": "after"})) == {"type": "pong", "id": "after"}


async def test_a_client_that_keeps_sending_bad_messages_is_disconnected(http: aiohttp.ClientSession, platform: Platform) -> None:
    wire = await _joined(http, platform)
    for _ in range(10):
        await wire.send("{bad")
    codes = []
    while True:
        msg = await wire.ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        codes.append(json.loads(msg.data).get("code"))
    assert codes[-1] == "too_many_errors"
    assert "county01" not in platform.services.rooms.rooms["consultation"].participants


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, "v=0\r\n", 401),
        ({"Authorization": "Bearer nonsense"}, "v=0\r\n", 401),
        ({"Authorization": "Bearer {token}", "Content-Type": "text/plain"}, "v=0\r\n", 400),
        ({"Authorization": "Bearer {token}", "Content-Type": "application/sdp"}, "hello", 400),
        ({"Authorization": "Bearer {token}", "Content-Type": "application/sdp"}, "v=0\r\n" + "m=video 9 RTP 0\r\n" * 1000, 400),
        ({"Authorization": "Bearer {other_room}", "Content-Type": "application/sdp"}, "v=0\r\n", 403),
        ({"Authorization": "Bearer {watch_only}", "Content-Type": "application/sdp"}, "v=0\r\n", 403),
    ],
)
async def test_whip_refuses_bad_requests_with_4xx(
    http: aiohttp.ClientSession, platform: Platform, headers: dict[str, str], body: str, status: int
) -> None:
    tokens = {
        "token": platform.token("encoder"),
        "other_room": platform.token("encoder", room="command"),
        "watch_only": platform.token("encoder", grants=("subscribe",)),
    }
    headers = {k: v.format(**tokens) for k, v in headers.items()}
    async with http.post(platform.url + "/whip/consultation", data=body, headers=headers) as response:
        assert response.status == status
        assert (await response.text()).strip()
    async with http.get(platform.url + "/healthz") as response:
        assert response.status == 200
    room = platform.services.rooms.rooms.get("consultation")
    assert room is None or not room.router.publications


async def test_pages_refuse_bad_tokens_and_unknown_rooms(http: aiohttp.ClientSession, platform: Platform) -> None:
    async with http.get(platform.url + "/rooms/consultation?token=bad") as response:
        assert response.status == 401
    async with http.get(platform.url + "/rooms/nowhere?token=" + platform.token("x", room="nowhere")) as response:
        assert response.status == 404
    async with http.get(platform.url + "/rooms/consultation", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"].startswith("/login")
