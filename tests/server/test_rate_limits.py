"""Rate limits on joins, directives and WHIP/WHEP offers: per identity and per address, with the wait said."""

from __future__ import annotations

import json

import aiohttp
import pytest

from server.config import Bucket, RateLimitSettings
from server.errors import RateLimited
from server.rate_limits import RateLimits
from tests.server.conftest import PlatformFactory

ONE_A_MINUTE = Bucket(burst=1, per_minute=1)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limits = RateLimits(RateLimitSettings(join_identity=Bucket(burst=3, per_minute=6)), clock=clock)
    for _ in range(3):
        limits.check("join", identity="phone")
    with pytest.raises(RateLimited) as refused:
        limits.check("join", identity="phone")
    assert (refused.value.code, refused.value.retry_after, refused.value.status) == ("rate_limited", 10, 429)
    assert "try again in 10 s" in refused.value.message
    limits.check("join", identity="wall")  # another identity has its own bucket
    clock.now += 10
    limits.check("join", identity="phone")
    assert limits.refused == {"join": 1, "issue": 0, "whip": 0, "whep": 0}


def test_an_address_is_limited_across_identities_and_a_refusal_takes_no_token() -> None:
    clock = Clock()
    limits = RateLimits(RateLimitSettings(whip_address=Bucket(burst=2, per_minute=60), whip_identity=Bucket(burst=1, per_minute=60)), clock=clock)
    limits.check("whip", identity="a", address="192.0.2.7")
    with pytest.raises(RateLimited):
        limits.check("whip", identity="a", address="192.0.2.7")  # the identity's bucket is empty...
    limits.check("whip", identity="b", address="192.0.2.7")  # ...and the address kept its token for b
    with pytest.raises(RateLimited):
        limits.check("whip", identity="c", address="192.0.2.7")
    limits.check("whip", identity="c", address="198.51.100.1")


def test_limits_can_be_switched_off() -> None:
    limits = RateLimits(RateLimitSettings(enabled=False, join_identity=ONE_A_MINUTE))
    for _ in range(5):
        limits.check("join", identity="phone")


async def test_a_join_too_many_is_refused_with_the_hellos_id(make_platform: PlatformFactory) -> None:
    platform = await make_platform(rate_limits=RateLimitSettings(join_identity=ONE_A_MINUTE))
    token = platform.token("levee-phone")
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(platform.url + "/ws")
        await first.send_str(json.dumps({"type": "hello", "id": "h1", "version": 1, "room": "consultation", "token": token}))
        assert json.loads((await first.receive()).data)["type"] == "welcome"
        second = await http.ws_connect(platform.url + "/ws")
        await second.send_str(json.dumps({"type": "hello", "id": "h2", "version": 1, "room": "consultation", "token": token}))
        refused = json.loads((await second.receive()).data)
        assert (refused["type"], refused["id"], refused["code"]) == ("error", "h2", "rate_limited")
        assert "try again in 60 s" in refused["message"]
        await first.close()
        await second.close()


async def test_a_directive_too_many_is_refused_with_its_request_id(make_platform: PlatformFactory) -> None:
    platform = await make_platform(rate_limits=RateLimitSettings(issue_identity=ONE_A_MINUTE))
    token = platform.token("centre-desk", site="command_centre", grants=("issue",))
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{platform.url}/command/ws?token={token}") as ws:
        for request_id in ("d1", "d2"):
            await ws.send_str(json.dumps({"type": "directive_issue", "id": request_id, "cls": "reference", "title": "汛情", "sites": ["linjiang"]}))
        by_id: dict[str, dict[str, str]] = {}
        while len(by_id) < 2:  # pushes of the issued directive come in between
            message = json.loads((await ws.receive(timeout=10)).data)
            if message.get("id"):
                by_id[message["id"]] = message
    assert by_id["d1"]["type"] == "command_ok"
    assert (by_id["d2"]["type"], by_id["d2"]["code"]) == ("error", "rate_limited")


async def test_a_whip_offer_too_many_gets_429_with_retry_after_and_is_counted(make_platform: PlatformFactory) -> None:
    platform = await make_platform(rate_limits=RateLimitSettings(whip_identity=ONE_A_MINUTE))
    headers = {"Authorization": f"Bearer {platform.token('levee-encoder', grants=('publish',))}", "Content-Type": "application/sdp"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{platform.url}/whip/consultation", data="not sdp", headers=headers) as response:
            assert response.status == 400  # it counted all the same
        async with http.post(f"{platform.url}/whip/consultation", data="not sdp", headers=headers) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "60"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert (await response.text()).startswith("rate_limited: ")
        async with http.get(f"{platform.url}/metrics") as response:
            metrics = await response.text()
    assert 'cp_rate_limited_total{what="whip"} 1.0' in metrics
    assert 'cp_rate_limited_total{what="whep"} 0.0' in metrics


async def test_a_whep_offer_stream_from_one_address_is_limited_before_its_token_is_read(make_platform: PlatformFactory) -> None:
    platform = await make_platform(rate_limits=RateLimitSettings(whep_address=Bucket(burst=2, per_minute=1)))
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(f"{platform.url}/whep/consultation/levee-encoder", data="v=0",
                                 headers={"Authorization": "Bearer forged", "Content-Type": "application/sdp"}) as response:
                statuses.append(response.status)
    assert statuses == [401, 401, 429]


async def test_a_message_past_the_sockets_rate_is_refused_with_its_id(make_platform: PlatformFactory) -> None:
    """The per-socket message rate: the refusal names the request it refuses, so the client's waits end."""
    platform = await make_platform()
    token = platform.token("levee-phone")
    async with aiohttp.ClientSession() as http, http.ws_connect(platform.url + "/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello", "id": "h", "version": 1, "room": "consultation", "token": token}))
        while json.loads((await ws.receive(timeout=10)).data).get("id") != "h":
            pass
        for n in range(205):  # the burst is 200, refilled at 50 a second
            await ws.send_str(json.dumps({"type": "ping", "id": f"p{n}"}))
        refused: list[dict[str, str]] = []
        while not refused:
            message = json.loads((await ws.receive(timeout=10)).data)
            if message["type"] == "error":
                refused.append(message)
    assert refused[0]["code"] == "rate_limited"
    assert refused[0]["id"] is not None and refused[0]["id"].startswith("p")
