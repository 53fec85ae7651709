"""A real RTSP camera pulled into a room's router: subscribers decode its H.264, forwarded as it came."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from media.router import RoomRouter
from media.counters import RelayCounters
from media.rtsp import CameraFeed, CameraSource, CameraState, redact, redact_url
from tests.cameras.conftest import Camera
from tests.media.conftest import SubscribingClient

PASSWORD = "pa:ss@w0rd"  # ':' and '@' as a camera's password may have them
USER = "admin"


@pytest.fixture
async def router() -> AsyncIterator[RoomRouter]:
    room = RoomRouter("cameras", counters=RelayCounters())
    yield room
    await room.close()


@pytest.fixture
async def subscriber(router: RoomRouter) -> AsyncIterator[SubscribingClient]:
    client = SubscribingClient()
    client.peer = router.new_subscriber("viewer", client.on_offer)
    yield client
    await client.pc.close()


class States:
    """The states a feed went through, awaitable."""

    def __init__(self) -> None:
        self.seen: list[CameraState] = []
        self.changed = asyncio.Event()

    def __call__(self, feed: CameraFeed) -> None:
        self.seen.append(feed.state)
        self.changed.set()

    async def reach(self, state: CameraState, timeout: float = 20) -> None:
        async def wait() -> None:
            while not self.seen or self.seen[-1] != state:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def decoded_frames(client: SubscribingClient, publication_id: str, count: int) -> list[tuple[int, int]]:
    """Sizes of `count` frames the subscriber decoded from the camera's track."""
    track = await client.wait_track(publication_id)
    frames = []
    for _ in range(count):
        frame = await asyncio.wait_for(track.recv(), 10)
        frames.append((frame.width, frame.height))  # type: ignore[attr-defined]
    return frames


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_a_camera_reaches_a_subscriber_who_decodes_its_frames(
    transport: str, start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter, subscriber: SubscribingClient,
) -> None:
    camera = await start_camera()
    states = States()
    feed = CameraFeed("gate", CameraSource(camera.url, transport), owner="county-a", counters=router.counters, on_state=states)  # type: ignore[arg-type]
    try:
        feed.start()
        assert subscriber.peer is not None
        subscriber.peer.subscribe(feed.publication)
        assert await decoded_frames(subscriber, feed.publication.id, 10) == [(320, 240)] * 10
        assert states.seen[:2] == ["connecting", "live"]
        assert feed.codec == "h264" and feed.publication.source == "rtsp"
    finally:
        await feed.close()
    assert feed.publication.closed


async def test_a_camera_going_away_fails_and_its_frames_resume_when_it_comes_back(
    start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter, subscriber: SubscribingClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    camera = await start_camera(user=USER, password=PASSWORD)
    states = States()
    feed = CameraFeed("bridge", CameraSource(camera.url), owner="county-a", counters=router.counters, on_state=states, backoff_max=1.0)
    try:
        feed.start()
        assert subscriber.peer is not None
        subscriber.peer.subscribe(feed.publication)
        await decoded_frames(subscriber, feed.publication.id, 3)
        await camera.stop()
        await states.reach("failed")
        assert feed.reason and PASSWORD not in feed.reason
        await camera.start()
        await states.reach("live")
        track = await subscriber.wait_track(feed.publication.id)
        # The same track: at most what it queued of the first stream (frames delivered then, less the
        # 3 taken), then 5 or more decoded from the camera's new stream.
        queued_at_most = feed.frames - 3
        for _ in range(queued_at_most + 5):
            await asyncio.wait_for(track.recv(), 10)
        assert states.seen[:3] == ["connecting", "live", "failed"]
        assert states.seen[-2:] == ["connecting", "live"]
    finally:
        await feed.close()
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)
    assert "***@127.0.0.1" in caplog.text and USER not in feed.url


async def test_wrong_credentials_fail_with_a_reason_that_does_not_quote_them(
    start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter,
) -> None:
    camera = await start_camera(user=USER, password=PASSWORD)
    states = States()
    url = camera.url.replace(PASSWORD, "wrong:secret")
    feed = CameraFeed("door", CameraSource(url), owner="county-a", counters=router.counters, on_state=states)
    try:
        feed.start()
        await states.reach("failed")
        assert "wrong" not in feed.reason and "secret" not in feed.reason
    finally:
        await feed.close()


async def test_an_h265_camera_is_flagged_unsupported_not_crashed(
    start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter,
) -> None:
    camera = await start_camera(codec="h265")
    states = States()
    feed = CameraFeed("hevc", CameraSource(camera.url), owner="county-a", counters=router.counters, on_state=states)
    try:
        feed.start()
        await states.reach("unsupported")
        assert "H.265" in feed.reason and feed.codec == "hevc"
        assert not feed.publication.closed and feed.publication.packets == 0
    finally:
        await feed.close()


def test_redaction_masks_credentials_in_urls_and_messages() -> None:
    assert redact_url("rtsp://admin:pa%3Ass%40w0rd@10.0.0.5:554/h264") == "rtsp://***@10.0.0.5:554/h264"
    assert redact_url("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert redact_url("rtsp://user@cam.local/x") == "rtsp://***@cam.local/x"
    message = "Connection refused: 'rtsp://admin:hunter2@10.0.0.5:554/h264'"
    assert redact(message) == "Connection refused: 'rtsp://***@10.0.0.5:554/h264'"
    assert redact("401 for hunter2", "hunter2") == "401 for ***"
    assert "hunter2" not in repr(CameraSource("rtsp://admin:hunter2@h/x"))


async def test_more_cameras_than_the_default_executor_has_workers_all_go_live(
    start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter,
) -> None:
    # Each pull holds a thread for as long as the camera streams: eight must not wait for six.
    camera = await start_camera()
    states = [States() for _ in range(8)]
    feeds = [CameraFeed(f"c{i}", CameraSource(camera.url), owner="county-a", counters=router.counters, on_state=s)
             for i, s in enumerate(states)]
    try:
        for feed in feeds:
            feed.start()
        await asyncio.gather(*(s.reach("live") for s in states))
        assert all(feed.frames > 0 for feed in feeds)
    finally:
        for feed in feeds:
            await feed.close()


def test_an_annex_b_stream_splits_into_its_nal_units() -> None:
    from media.rtsp import _parameter_sets, _split

    stream = b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x01\x68\xce\x3c\x80" + b"\x00\x00\x00\x01\x65\x88\x84"
    assert _split(stream) == [b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x65\x88\x84"]
    avcc = b"\x01\x42\x00\x1f\xff\xe1\x00\x04\x67\x42\x00\x1f\x01\x00\x04\x68\xce\x3c\x80"
    assert _parameter_sets(avcc) == [b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80"]
    assert _parameter_sets(stream) == [b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80"]


async def test_a_new_subscriber_starts_at_once_on_the_frames_since_the_cameras_last_keyframe(
    start_camera: Callable[..., Awaitable[Camera]], router: RoomRouter, subscriber: SubscribingClient,
) -> None:
    camera = await start_camera("h264", "", "", "--gop", "75")  # a keyframe every 5 s, and none on request
    states = States()
    feed = CameraFeed("slow-gop", CameraSource(camera.url), owner="county-a", counters=router.counters, on_state=states)
    try:
        feed.start()
        await asyncio.wait_for(feed.publication.next_keyframe(), 15)
        keyframe_at = feed.publication.last_keyframe_at
        await asyncio.sleep(1.5)  # the scenario: a viewer arriving 1.5 s into the camera's 5 s GOP
        assert subscriber.peer is not None
        subscriber.peer.subscribe(feed.publication)
        track = await subscriber.wait_track(feed.publication.id)
        frame = await asyncio.wait_for(track.recv(), 10)
        assert (frame.width, frame.height) == (320, 240)  # type: ignore[attr-defined]
        assert feed.publication.last_keyframe_at == keyframe_at  # decoded before the camera's next keyframe
    finally:
        await feed.close()
