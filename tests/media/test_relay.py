"""The relay forwards a publisher's packets to subscribers, encoded, with keyframes on demand."""

from __future__ import annotations

import asyncio

from aiortc import VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from media.router import RoomRouter
from tests.media.conftest import SubscribingClient, publish


async def _frames(track, count: int, timeout: float = 15) -> list:
    frames = []
    async def collect() -> None:
        while len(frames) < count:
            frames.append(await track.recv())
    await asyncio.wait_for(collect(), timeout)
    return frames


async def test_a_subscriber_receives_video_and_audio_from_a_publisher(router: RoomRouter, make_subscriber) -> None:
    client, publications = await publish(router, "county01", [VideoStreamTrack(), AudioStreamTrack()])
    subscriber: SubscribingClient = make_subscriber("mayor")
    for publication in publications:
        subscriber.peer.subscribe(publication)
    video = next(p for p in publications if p.kind == "video")
    audio = next(p for p in publications if p.kind == "audio")
    frames = await _frames(await subscriber.wait_track(video.id), 5)
    assert frames[-1].width == 640
    await _frames(await subscriber.wait_track(audio.id), 5)
    assert router.counters.packets_forwarded > 0
    await client.close()
