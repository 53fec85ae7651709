"""ICE servers for clients: coturn REST API credentials, the TURN secret, Link values, and the 500 a client can read."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server import http_media
from server.config import ServerSettings
from server.ice_servers import (
    IceServer,
    IceServers,
    TurnSecretMissing,
    TurnSecretUnusable,
    load_turn_secret,
    peer_ice_urls,
    turn_credential,
)

SECRET = b"s" * 40
STUN = "stun:stun.example.net:3478"
TURN = "turn:turn.example.net:3478?transport=udp"


def test_turn_credentials_follow_the_coturn_rest_api_and_expire_after_the_lifetime() -> None:
    servers = IceServers((STUN, TURN), turn_secret=SECRET, ttl=600, clock=lambda: 1_700_000_000.7)
    stun, turn = servers.for_identity("levee-encoder")
    assert stun == IceServer(STUN)
    assert turn.username == "1700000600:levee-encoder"
    digest = hmac.new(SECRET, b"1700000600:levee-encoder", hashlib.sha1).digest()
    assert turn.credential == base64.b64encode(digest).decode() == turn_credential(SECRET, turn.username)


def test_browsers_get_rtc_ice_server_dictionaries() -> None:
    stun, turn = IceServers((STUN, TURN), turn_secret=SECRET, ttl=60, clock=lambda: 0).for_identity("wall")
    assert stun.as_rtc() == {"urls": STUN}
    assert turn.as_rtc() == {"urls": TURN, "username": "60:wall", "credential": turn_credential(SECRET, "60:wall")}


def test_turn_urls_without_a_secret_refuse_to_start() -> None:
    with pytest.raises(TurnSecretMissing, match="TURN_SECRET"):
        IceServers((STUN, "turns:turn.example.net:5349?transport=tcp"), turn_secret=None, ttl=60)
    assert IceServers((STUN,), turn_secret=None, ttl=60).for_identity("x") == (IceServer(STUN),)


def test_the_servers_own_peers_get_no_turn_urls() -> None:
    assert peer_ice_urls((STUN, TURN, "TURNS:t.example.net?transport=tcp", "stuns:s.example.net")) == (STUN, "stuns:s.example.net")


def test_the_turn_secret_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_turn_secret({}) is None
    assert load_turn_secret({"TURN_SECRET": "t" * 32 + "\n"}) == b"t" * 32
    path = tmp_path / "turn.key"
    path.write_text("f" * 40 + "\n", encoding="utf-8")
    assert load_turn_secret({"TURN_SECRET_FILE": str(path)}) == b"f" * 40


def test_a_short_or_unreadable_turn_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(TurnSecretUnusable) as short:
        load_turn_secret({"TURN_SECRET": "hunter2"})
    assert "hunter2" not in str(short.value)
    with pytest.raises(TurnSecretUnusable, match="TURN_SECRET_FILE"):
        load_turn_secret({"TURN_SECRET_FILE": str(tmp_path / "absent")})


def test_link_values_quote_their_parameters_as_rfc_8288_says() -> None:
    assert http_media.link_value(IceServer(STUN)) == f'<{STUN}>; rel="ice-server"'
    value = http_media.link_value(IceServer(TURN, 'a"b', "c\\d"))
    assert value == f'<{TURN}>; rel="ice-server"; username="a\\"b"; credential="c\\\\d"; credential-type="password"'


async def test_an_unexpected_error_is_a_500_that_a_cross_origin_client_can_read(aiohttp_server: Callable[..., TestServer]) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application()
    app.router.add_post("/whip/{room}", broken)
    http_media.install(app, ServerSettings(), {})
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url("/whip/consultation"), headers={"Origin": "http://a.example"}) as response:
            assert response.status == 500
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "a bug" not in await response.text()
