"""Cameras in the running server: pulled while a room is watched, on the roster and /metrics, and
added or removed by an administrator; never a credential in what the server shows, logs or records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.cameras import CAMERA_STREAM, CAMERAS
from server.config import CameraConfig, Config
from server.store import MemoryStore
from synthetic.client import FrameCounter, RoomClient
from tests.cameras.conftest import Camera
from tests.server.conftest import SECRET, Platform, demo_config  # noqa: F401 - the fixture

PASSWORD = "Cam:p@ss-42"


async def start_platform(aiohttp_server: Callable[..., TestServer], config: Config) -> Platform:
    services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test"))
    server = await aiohttp_server(create_app(services))
    server.app[CAMERAS].linger = 0.5
    return Platform(url=str(server.make_url("")).rstrip("/"), services=services)


async def camera_status(client: RoomClient, identity: str, prefix: str, timeout: float = 20) -> str:
    """Wait until the camera's participant shows a status starting with `prefix`; the status."""
    await client.wait_for(lambda c: identity in c.participants and c.participants[identity].status.startswith(prefix), timeout)
    return client.participants[identity].status


async def test_a_configured_camera_is_pulled_while_watched_and_its_state_is_on_the_roster_and_metrics(
    aiohttp_server: Callable[..., TestServer], demo_config: Config, start_camera: Callable[..., Awaitable[Camera]],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    camera = await start_camera(user="admin", password=PASSWORD)
    monkeypatch.setenv("GATE_CAMERA_PASSWORD", PASSWORD)
    config = msgspec.structs.replace(demo_config, cameras=(CameraConfig(
        id="gate", site="jiangbei", name_zh="江北大门", name_en="Jiangbei gate", url=f"rtsp://127.0.0.1:{camera.port}/stream",
        username="admin", password_env="GATE_CAMERA_PASSWORD", rooms=("consultation",),
    ),))
    platform = await start_platform(aiohttp_server, config)
    assert not platform.services.rooms.rooms  # rooms are created on first use: nothing is pulled before
    viewer = RoomClient(platform.url, "consultation", platform.token("viewer", grants=("subscribe",)), name="viewer")
    try:
        await viewer.connect()
        assert await camera_status(viewer, "camera:gate", "live") == "live"
        info = viewer.participants["camera:gate"]
        assert (info.site, info.role, info.name) == ("jiangbei", "camera", "江北大门 Jiangbei gate")
        await viewer.wait_for(lambda c: any(p.source == "rtsp" and p.publication_id in c.received for p in c.publications.values()), 20)
        publication = next(p for p in viewer.publications.values() if p.source == "rtsp")
        assert publication.codec == "H264" and publication.identity == "camera:gate"
        async with FrameCounter(viewer.received[publication.publication_id]) as frames:
            await frames.wait_frames(5, timeout=20)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{platform.url}/metrics") as response:
                metrics = await response.text()
            assert 'cp_camera_state{camera="gate",room="consultation",state="live"} 1.0' in metrics
            async with http.get(f"{platform.url}/api/cameras", params={"token": platform.token("ops", grants=("admin",))}) as response:
                listing = await response.text()
        assert f'"url": "rtsp://127.0.0.1:{camera.port}/stream"' in listing and PASSWORD not in listing

        await camera.stop()
        failed = await camera_status(viewer, "camera:gate", "failed")
        assert viewer.participants["camera:gate"].state == "reconnecting" and PASSWORD not in failed
        await camera.start()
        await camera_status(viewer, "camera:gate", "live")

        await viewer.close()  # nobody watches: the pull stops after the linger
        room = platform.services.rooms.rooms["consultation"]
        await asyncio.wait_for(_until(lambda: "camera:gate" not in room.participants and not room.router.publications), 10)
    finally:
        await viewer.close()
    assert PASSWORD not in caplog.text


async def test_an_administrator_adds_and_removes_a_camera_and_its_password_is_sealed_in_the_log(
    aiohttp_server: Callable[..., TestServer], demo_config: Config, start_camera: Callable[..., Awaitable[Camera]],
) -> None:
    camera = await start_camera(user="op", password=PASSWORD)
    platform = await start_platform(aiohttp_server, demo_config)
    admin = platform.token("ops", grants=("admin",))
    viewer = RoomClient(platform.url, "consultation", platform.token("viewer", grants=("subscribe",)), name="viewer")
    form = {"id": "bridge", "site": "jiangbei", "name_zh": "大桥", "url": f"rtsp://127.0.0.1:{camera.port}/stream",
            "username": "op", "password": PASSWORD, "transport": "udp", "rooms": "consultation"}
    try:
        await viewer.connect()
        async with aiohttp.ClientSession(headers={"Origin": platform.url}) as http:
            bad = {**form, "url": f"rtsp://op:{PASSWORD}@127.0.0.1:{camera.port}/stream"}
            async with http.post(f"{platform.url}/cameras", params={"token": admin}, data=bad, allow_redirects=False) as response:
                assert response.status == 303 and "carries%20credentials" in response.headers["Location"]
                assert PASSWORD not in response.headers["Location"]
            async with http.post(f"{platform.url}/cameras", params={"token": admin}, data=form, allow_redirects=False) as response:
                assert response.status == 303 and response.headers["Location"] == "/cameras"
            await camera_status(viewer, "camera:bridge", "live")
            async with http.get(f"{platform.url}/cameras", params={"token": admin}) as response:
                page = await response.text()
                assert response.status == 200 and "大桥" in page and 'data-state="live"' in page and PASSWORD not in page
            async with http.get(f"{platform.url}/cameras", params={"token": platform.token("viewer")}) as response:
                assert response.status == 403
            async with http.post(f"{platform.url}/cameras/bridge/delete", params={"token": admin}, allow_redirects=False) as response:
                assert response.status == 303
        await viewer.wait_for(lambda c: "camera:bridge" not in c.participants, 10)
        events = await platform.services.store.read_events(CAMERA_STREAM)
        assert [e.kind for e in events] == ["added", "removed"] and events[0].actor == "ops"
        assert PASSWORD not in msgspec.json.encode([e.data for e in events]).decode()
    finally:
        await viewer.close()


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


def test_a_camera_url_with_credentials_or_an_unknown_site_is_refused_at_load(demo_config: Config) -> None:
    from server.config import camera_problems

    sites, rooms = {s.id for s in demo_config.sites}, {r.id for r in demo_config.rooms}
    good = CameraConfig(id="c", site="jiangbei", name_zh="c", url="rtsp://10.0.0.5:554/h264")
    assert camera_problems(good, sites, rooms) == []
    leaky = msgspec.structs.replace(good, url="rtsp://admin:secret@10.0.0.5/h264", site="atlantis", rooms=("nowhere",))
    problems = camera_problems(leaky, sites, rooms)
    assert any("carries credentials" in p for p in problems) and any("atlantis" in p for p in problems)
    assert any("nowhere" in p for p in problems) and not any("secret" in p for p in problems)
    assert camera_problems(msgspec.structs.replace(good, url="http://x/y"), sites, rooms) == ["url: not an rtsp:// URL"]
