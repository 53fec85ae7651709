"""GET /api/presence: the sites in the caller's rooms now, and how many per room; refused without a login."""

from __future__ import annotations

import aiohttp

from synthetic.client import RoomClient
from tests.server.conftest import Platform


async def test_presence_names_the_sites_in_the_callers_rooms(platform: Platform) -> None:
    present = RoomClient(platform.url, "consultation", platform.token("presence-linjiang", site="linjiang"), name="p")
    await present.connect()
    try:
        token = platform.token("presence-viewer", site="office", grants=("subscribe",))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{platform.url}/api/presence", params={"token": token}) as resp:
                assert resp.status == 200
                body = await resp.json()
        assert body["sites"]["linjiang"] == ["consultation"]
        assert body["rooms"]["consultation"] >= 1
        assert "command" not in body["rooms"]  # a device of one room sees that room only
    finally:
        await present.close()


async def test_presence_without_a_login_is_refused_with_a_code(platform: Platform) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/api/presence") as resp:
            assert resp.status == 401
            assert (await resp.text()).startswith("unauthenticated:")
        async with http.get(f"{platform.url}/api/presence", params={"token": "broken"}) as resp:
            assert resp.status == 401
            assert (await resp.text()).startswith("invalid_token:")
