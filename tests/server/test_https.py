"""With a self-signed certificate the server serves HTTPS, and a field unit joins over wss."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import aiohttp
import msgspec
from aiohttp import web

from server.app import build_services, create_app
from server.config import Config
from server.store import MemoryStore
from server.tls import server_ssl_context
from synthetic.client import RoomClient
from tests.server.conftest import SECRET


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_self_signed_server_serves_https_and_wss(tmp_path: Path, demo_config: Config) -> None:
    settings = msgspec.structs.replace(demo_config.server, self_signed_tls=True)
    server_context = server_ssl_context(settings, tmp_path)
    assert server_context is not None
    client_context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "self-signed.crt"))
    services = build_services(demo_config, secret=SECRET, store=MemoryStore(node_id="tls"))
    runner = web.AppRunner(create_app(services))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=client_context) as response:
                assert response.status == 200
            async with http.get(f"https://localhost:{port}/login", ssl=client_context) as response:
                assert "登录" in await response.text()
                assert f"connect-src 'self' wss://localhost:{port}" in response.headers["Content-Security-Policy"]
            wall = services.tokens.issue_device_token(identity="wall-1", site="command_centre", room="consultation",
                                                      grants=["subscribe"], ttl=60)
            navigation = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
            async with http.get(f"https://localhost:{port}/wall/consultation?token={wall}", headers=navigation,
                                ssl=client_context, allow_redirects=False) as response:
                assert response.status == 303
                assert "; Secure" in response.headers["Set-Cookie"]  # served over TLS: Secure with no setting
        token = services.tokens.issue_device_token(
            identity="levee-phone", site="linjiang", room="consultation", grants=["publish"], ttl=60
        )
        client = RoomClient(f"https://127.0.0.1:{port}", "consultation", token, ssl=client_context)
        welcome = await client.connect()
        assert welcome.you is not None and welcome.you.identity == "levee-phone"
        await client.close()
    finally:
        await runner.cleanup()
