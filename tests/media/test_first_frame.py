"""A subscriber that joins between keyframes gets its first frame within 300 ms on loopback,
even when the publication's keyframe requests are throttled by an earlier joiner."""

from __future__ import annotations

import asyncio
import time

from media.aiortc.client import on_keyframe_request
from media.router import RoomRouter
from media.rtp import is_keyframe_start
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop
from synthetic.load import KeyframeLoopTrack
from tests.media.conftest import SubscribingClient, publish


async def test_subscribers_joining_between_keyframes_start_within_300_ms(router: RoomRouter, make_subscriber) -> None:
    track = KeyframeLoopTrack(encode_video_loop("VP8", width=640, height=360, seconds=2))
    client, publications = await publish(router, "county01", [track, audio_loop_track(encode_opus_loop(seconds=1))])
    on_keyframe_request(client.getSenders()[0], track.restart)
    video = next(p for p in publications if p.kind == "video")
    audio = next(p for p in publications if p.kind == "audio")
    seats = [make_subscriber(f"seat{i}", lean=True) for i in range(2)]
    for seat in seats:  # already in the room, listening: their connections are up
        seat.peer.subscribe(audio)
    for seat in seats:
        await seat.wait_packets(lambda seat=seat: len(seat.packets.get(audio.id, [])) > 5)
    await asyncio.sleep(0.4)  # now between two keyframes of the 1 s GOP

    elapsed: list[float] = []

    async def join(seat: SubscribingClient) -> None:
        started = time.monotonic()
        seat.peer.subscribe(video)
        await seat.wait_packets(lambda: bool(seat.packets.get(video.id)), timeout=5)
        elapsed.append(time.monotonic() - started)
        assert is_keyframe_start("VP8", seat.packets[video.id][0].payload)

    first = asyncio.create_task(join(seats[0]))
    await asyncio.sleep(0.1)  # the second joiner's keyframe request is throttled
    await join(seats[1])
    await first
    assert max(elapsed) < 0.3, f"first frames after {[round(e * 1000) for e in elapsed]} ms"
    await client.close()
