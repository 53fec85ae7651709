"""WHIP and WHEP as RFC 9725 says, for clients on any origin: CORS, Link ice-server, WWW-Authenticate, PATCH."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import cast

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from server.app import build_services, create_app
from server.auth import TokenService
from server.config import Config
from server.store import MemoryStore
from synthetic.pattern import TestPatternTrack
from tests.server.conftest import SECRET, Platform

FOREIGN = "http://encoder.example:9000"
TURN_SECRET = "turn-secret-for-tests-" + "7" * 20
TTL = 3600
# TCP to a closed local port fails at once: the server's own peers, which get these URLs until
# they drop TURN, must not wait on a relay that is not there.
TURN_TCP = "turn:127.0.0.1:9?transport=tcp"
TURNS = "turns:127.0.0.1:9?transport=tcp"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Credentials")


class StunResponder(asyncio.DatagramProtocol):
    """A STUN server that answers binding requests (RFC 8489), so the server's peers gather at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # the selector loop's does not subclass it

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        response = stun.Message(
            message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE, transaction_id=request.transaction_id
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        self.transport.sendto(bytes(response), addr)


@pytest.fixture
async def stun_url() -> AsyncIterator[str]:
    """The URL of a STUN server running in this test."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(StunResponder, local_addr=("127.0.0.1", 0))
    yield f"stun:127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    transport.close()


@pytest.fixture
async def turn_platform(
    aiohttp_server: Callable[..., TestServer], demo_config: Config, stun_url: str, monkeypatch: pytest.MonkeyPatch
) -> Platform:
    """The server with a STUN and two TURN servers configured and the TURN secret in its environment."""
    monkeypatch.setenv("TURN_SECRET", TURN_SECRET)
    monkeypatch.delenv("TURN_SECRET_FILE", raising=False)
    settings = msgspec.structs.replace(demo_config.server, ice_servers=(stun_url, TURN_TCP, TURNS), turn_credential_ttl=TTL)
    config = msgspec.structs.replace(demo_config, server=settings)
    services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test"))
    server = await aiohttp_server(create_app(services))
    return Platform(url=str(server.make_url("")).rstrip("/"), services=services)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp", "Origin": FOREIGN}


def _preflight(method: str) -> dict[str, str]:
    return {"Origin": FOREIGN, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization,content-type"}


def _methods(value: str) -> set[str]:
    return {m.strip() for m in value.split(",")}


def _assert_cors(response: aiohttp.ClientResponse) -> None:
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    exposed = _methods(response.headers["Access-Control-Expose-Headers"])
    assert {"Location", "Link", "ETag", "Accept-Post", "WWW-Authenticate"} <= exposed


def _assert_turn_credentials(link: dict[str, str], identity: str) -> None:
    """The coturn REST API scheme: `<expiry>:<identity>`, base64(HMAC-SHA1(secret, username))."""
    expiry, _, named = link["username"].partition(":")
    assert named == identity
    assert time.time() < int(expiry) <= time.time() + TTL + 1
    expected = base64.b64encode(hmac.new(TURN_SECRET.encode(), link["username"].encode(), hashlib.sha1).digest()).decode()
    assert link["credential"] == expected
    assert link["credential-type"] == "password"


def _ice_links(response: aiohttp.ClientResponse) -> dict[str, dict[str, str]]:
    links = response.links.getall("ice-server", [])
    return {str(link["url"]): {k: str(v) for k, v in link.items() if k != "url"} for link in links}


async def _offer(*kinds: str, send: bool) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        if send:
            pc.addTransceiver(TestPatternTrack("X", width=160, height=96, fps=10), direction="sendonly")
        else:
            pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def test_a_preflight_on_the_whip_endpoint_lets_any_origin_post_sdp_with_a_bearer_token(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(platform.url + "/whip/consultation", headers=_preflight("POST")) as response:
            assert response.status == 204
            _assert_cors(response)
            assert {"POST", "OPTIONS"} <= _methods(response.headers["Access-Control-Allow-Methods"])
            assert "DELETE" not in response.headers["Access-Control-Allow-Methods"]
            assert {"Authorization", "Content-Type", "If-Match"} <= _methods(response.headers["Access-Control-Allow-Headers"])
            assert int(response.headers["Access-Control-Max-Age"]) > 0
            assert response.headers["Accept-Post"] == "application/sdp"
            assert "Link" not in response.headers  # a preflight carries no token


async def test_a_preflight_on_the_whep_endpoint_allows_post(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(platform.url + "/whep/consultation/levee-encoder", headers=_preflight("POST")) as response:
            assert response.status == 204
            _assert_cors(response)
            assert "POST" in _methods(response.headers["Access-Control-Allow-Methods"])
            assert response.headers["Accept-Post"] == "application/sdp"


@pytest.mark.parametrize("path", ["/whip/consultation/0123abcd", "/whep/consultation/levee-encoder/0123abcd"])
async def test_a_preflight_on_a_session_url_allows_delete_and_patch(platform: Platform, path: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.options(platform.url + path, headers=_preflight("DELETE")) as response:
            assert response.status == 204
            _assert_cors(response)
            assert _methods(response.headers["Access-Control-Allow-Methods"]) == {"DELETE", "PATCH", "OPTIONS"}
            assert "Accept-Post" not in response.headers


async def test_whip_and_whep_from_a_foreign_origin_get_cors_headers_and_ice_servers_with_turn_credentials(
    turn_platform: Platform, stun_url: str
) -> None:
    encoder = await _offer("video", send=True)
    player = await _offer("video", send=False)
    publish = turn_platform.token("levee-encoder", grants=("publish",))
    watch = turn_platform.token("wall-7", grants=("subscribe",))
    async with aiohttp.ClientSession() as http:
        try:
            async with http.post(turn_platform.url + "/whip/consultation", data=encoder.localDescription.sdp, headers=_bearer(publish)) as response:
                assert response.status == 201, await response.text()
                _assert_cors(response)
                whip_location = response.headers["Location"]
                links = _ice_links(response)
                await encoder.setRemoteDescription(RTCSessionDescription(sdp=await response.text(), type="answer"))
            assert set(links) == {stun_url, TURN_TCP, TURNS}
            assert links[stun_url] == {"rel": "ice-server"}  # STUN as it is, no credentials
            for turn in (TURN_TCP, TURNS):
                _assert_turn_credentials(links[turn], "levee-encoder")
            assert any(raw.startswith(f"<{TURN_TCP}>; rel=\"ice-server\"; username=") for raw in response.headers.getall("Link"))

            whep = turn_platform.url + "/whep/consultation/levee-encoder"
            async with http.post(whep, data=player.localDescription.sdp, headers=_bearer(watch)) as response:
                assert response.status == 201, await response.text()
                _assert_cors(response)
                whep_location = response.headers["Location"]
                _assert_turn_credentials(_ice_links(response)[TURN_TCP], "wall-7")

            for location, token in ((whep_location, watch), (whip_location, publish)):
                async with http.delete(turn_platform.url + location, headers={"Authorization": f"Bearer {token}", "Origin": FOREIGN}) as response:
                    assert response.status in (200, 204)
                    _assert_cors(response)
                    assert "Link" not in response.headers
        finally:
            await encoder.close()
            await player.close()


async def test_options_with_a_valid_token_gives_the_ice_servers_and_without_one_does_not(turn_platform: Platform) -> None:
    url = turn_platform.url + "/whip/consultation"
    token = turn_platform.token("levee-encoder", grants=("publish",))
    async with aiohttp.ClientSession() as http:
        async with http.options(url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 204
            assert response.headers["Accept-Post"] == "application/sdp"
            _assert_turn_credentials(_ice_links(response)[TURN_TCP], "levee-encoder")
        async with http.options(url) as response:
            assert response.status == 204
            assert "Link" not in response.headers
        subscriber_only = turn_platform.token("wall-7", grants=("subscribe",))
        async with http.options(url, headers={"Authorization": f"Bearer {subscriber_only}"}) as response:
            assert "Link" not in response.headers  # no relay credentials for an endpoint it may not use


async def test_a_room_page_embeds_the_ice_servers_as_objects_with_turn_credentials(turn_platform: Platform, stun_url: str) -> None:
    token = turn_platform.token("county-officer", grants=("publish", "subscribe"))
    async with aiohttp.ClientSession() as http:
        async with http.get(turn_platform.url + f"/rooms/consultation?token={token}") as response:
            assert response.status == 200
            html = await response.text()
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert match is not None
    servers = {s["urls"]: s for s in json.loads(match.group(1))["ice_servers"]}
    assert servers[stun_url] == {"urls": stun_url}
    _assert_turn_credentials({**servers[TURN_TCP], "credential-type": "password"}, "county-officer")


async def test_401_without_a_token_challenges_for_a_bearer_token(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(platform.url + "/whip/consultation", data="v=0\r\n", headers={"Content-Type": "application/sdp", "Origin": FOREIGN}) as response:
            assert response.status == 401
            _assert_cors(response)
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="command-platform"'


@pytest.mark.parametrize("kind", ["garbage", "expired", "other-secret"])
async def test_401_with_a_bad_token_says_invalid_token(platform: Platform, kind: str) -> None:
    if kind == "garbage":
        token = "not-a-token"
    else:
        signer = TokenService(SECRET if kind == "expired" else b"another-secret-" + b"1" * 40, clock=lambda: time.time() - 7200)
        token = signer.issue_device_token(identity="levee-encoder", site="jiangbei", room="consultation", grants=("publish",), ttl=600)
    async with aiohttp.ClientSession() as http:
        for method, path in (("POST", "/whip/consultation"), ("POST", "/whep/consultation/x"), ("DELETE", "/whip/consultation/abc")):
            async with http.request(method, platform.url + path, data="v=0\r\n", headers=_bearer(token)) as response:
                assert response.status == 401
                _assert_cors(response)
                challenge = response.headers["WWW-Authenticate"]
                assert challenge.startswith('Bearer realm="command-platform", error="invalid_token"')
                if kind == "expired":
                    assert 'error_description="token expired"' in challenge


@pytest.mark.parametrize("path", ["/whip/consultation/0123abcd", "/whep/consultation/levee-encoder/0123abcd"])
async def test_patch_on_a_session_is_not_implemented(platform: Platform, path: str) -> None:
    headers = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*", "Origin": FOREIGN}
    async with aiohttp.ClientSession() as http:
        async with http.patch(platform.url + path, data="a=ice-ufrag:abcd\r\n", headers=headers) as response:
            assert response.status == 501
            _assert_cors(response)
            assert "trickle ICE" in await response.text()


async def test_other_methods_on_the_endpoint_are_405_with_cors(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("GET", "PATCH", "DELETE"):
            async with http.request(method, platform.url + "/whip/consultation", headers={"Origin": FOREIGN}) as response:
                assert response.status == 405
                _assert_cors(response)


async def test_pages_sockets_and_the_json_api_stay_same_origin(platform: Platform) -> None:
    token = platform.token("county-officer")
    headers = {"Origin": FOREIGN}
    async with aiohttp.ClientSession() as http:
        for method, path in (
            ("GET", "/login"),
            ("GET", f"/rooms/consultation?token={token}"),
            ("GET", "/ws"),
            ("GET", "/command/ws"),
            ("GET", "/command/export.json"),
            ("POST", "/api/rollcalls"),
            ("GET", "/healthz"),
        ):
            async with http.request(method, platform.url + path, headers=headers, allow_redirects=False) as response:
                assert not any(h in response.headers for h in CORS_HEADERS), (method, path, response.status)
            async with http.options(platform.url + path, headers=_preflight(method)) as response:
                assert response.status != 204
                assert not any(h in response.headers for h in CORS_HEADERS), ("OPTIONS", path)
