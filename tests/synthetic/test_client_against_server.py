"""The synthetic client against the real server in a child process: publish a pattern, receive it elsewhere."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import av
from PIL import Image, ImageStat

from server.auth import TokenService
from server.config import DEFAULT_CONFIG_PATH
from synthetic.client import ClientError, FrameCounter, RoomClient
from synthetic.demo import ServerProcess
from synthetic.pattern import TestPatternTrack, ToneTrack

ROOM = "consultation"

Mint = Callable[..., str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Mint]]:
    """A server on a free port with its own data directory and secret; yields its URL and a token minter."""
    secret = secrets.token_hex(32)
    port = _free_port()
    env = {**os.environ, "SERVER_SECRET": secret, "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"}
    process = ServerProcess(DEFAULT_CONFIG_PATH, port, env=env)
    await process.start()
    base_url = f"http://127.0.0.1:{port}"
    tokens = TokenService(secret.encode())

    def mint(identity: str, site: str, grants: list[str]) -> str:
        return tokens.issue_device_token(identity=identity, site=site, room=ROOM, grants=grants, ttl=600)

    try:
        await process.wait_healthy(base_url, timeout=30)
        yield base_url, mint
    finally:
        await process.stop()


def _is_uniform(image: Image.Image) -> bool:
    return max(ImageStat.Stat(image).var) == 0


async def test_a_participant_receives_the_pattern_another_publishes(server: tuple[str, Mint]) -> None:
    base_url, mint = server
    publisher = RoomClient(base_url, ROOM, mint("jiangbei", "jiangbei", ["publish"]), name="jiangbei")
    viewer = RoomClient(base_url, ROOM, mint("wall-screen", "office", ["subscribe"]), name="wall-screen")
    camera = TestPatternTrack("Jiangbei District", "江北区", width=320, height=180, fps=10)
    try:
        await viewer.connect()
        welcome = await publisher.connect()
        assert welcome.you.identity == "jiangbei"
        await publisher.publish({"camera": camera, "microphone": ToneTrack()})

        await viewer.wait_for(lambda c: len(c.received) == 2, timeout=20)
        sources = {p.source for p in viewer.publications.values() if p.identity == "jiangbei"}
        assert sources == {"camera", "microphone"}
        video = next(track for track in viewer.received.values() if track.kind == "video")
        async with FrameCounter(video) as counter:
            await counter.wait_frames(5, timeout=20)
            assert isinstance(counter.last, av.VideoFrame)
            image = counter.last.to_image()  # type: ignore[no-untyped-call]
        assert image.size == (320, 180)
        assert not _is_uniform(image)
    finally:
        await publisher.close()
        await viewer.close()


async def test_the_viewer_sees_the_publisher_leave(server: tuple[str, Mint]) -> None:
    base_url, mint = server
    publisher = RoomClient(base_url, ROOM, mint("mobile01-kit", "mobile01", ["publish"]), name="mobile01-kit")
    viewer = RoomClient(base_url, ROOM, mint("wall-screen", "office", ["subscribe"]), name="wall-screen")
    try:
        await viewer.connect()
        await publisher.connect()
        await viewer.wait_for(lambda c: "mobile01-kit" in c.participants, timeout=10)
        await publisher.publish({"microphone": ToneTrack()})
        await viewer.wait_for(lambda c: any(p.identity == "mobile01-kit" for p in c.publications.values()), timeout=10)
        await publisher.close()
        await viewer.wait_for(
            lambda c: "mobile01-kit" not in c.participants
            and not any(p.identity == "mobile01-kit" for p in c.publications.values()),
            timeout=10,
        )
    finally:
        await publisher.close()
        await viewer.close()


async def test_a_bad_token_is_refused_with_an_error(server: tuple[str, Mint]) -> None:
    base_url, _ = server
    client = RoomClient(base_url, ROOM, "not-a-token")
    with pytest.raises(ClientError):
        await client.connect()
    assert not client.connected
