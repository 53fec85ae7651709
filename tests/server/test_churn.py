"""Participants come and go: 50 join/leave cycles leave no connection, task or publication behind."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

from aiortc import RTCPeerConnection

from synthetic.client import RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.server.conftest import Platform


def _where(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(frames[-2:])


def _peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed")


async def test_fifty_join_leave_cycles_leave_nothing_behind(platform: Platform) -> None:
    video = encode_video_loop("VP8", width=160, height=96, seconds=1, fps=10)
    audio = encode_opus_loop(seconds=1)
    watcher = RoomClient(platform.url, "consultation", platform.token("wall", grants=("subscribe",)), name="wall")
    await watcher.connect()
    room = platform.services.rooms.rooms["consultation"]
    baseline_tasks = baseline_peers = 0
    try:
        for cycle in range(60):
            # Measure after ten warm-up cycles, when the wall's own connections are long up; each
            # cycle ends in the same state, so anything a cycle leaks shows up 50 times over.
            if cycle == 10:
                baseline_tasks = len(asyncio.all_tasks())
                baseline_counter = Counter(_where(t) for t in asyncio.all_tasks())
                baseline_peers = _peer_connections()
            client = RoomClient(platform.url, "consultation", platform.token(f"unit{cycle % 5}"), name=f"unit{cycle}")
            await client.connect()
            if cycle % 5 == 0:  # every fifth cycle publishes for real and is seen by the wall
                await client.publish({"camera": video_loop_track(video, fps=10), "microphone": audio_loop_track(audio)})
                await watcher.wait_for(lambda w: sum(1 for p in w.publications.values() if p.identity == client.welcome.you.identity) == 2, timeout=10)
            await client.close()
            identity = f"unit{cycle % 5}"
            await watcher.wait_for(lambda w: identity not in w.participants and not w.publications, timeout=10)
        subscriber = room.router.subscriber("wall")
        assert subscriber is not None
        await subscriber.wait_settled(10)
        assert set(room.participants) == {"wall"}
        assert not room.router.publications
        assert room.router.subscription_count == 0
        assert room.router.peer_count == 1  # the wall's subscriber connection
        assert subscriber.transceiver_count <= 2, "transceivers are recycled, not added per publication"
        leftover = Counter(_where(t) for t in asyncio.all_tasks())
        assert len(asyncio.all_tasks()) <= baseline_tasks + 2, leftover - baseline_counter
        assert _peer_connections() <= baseline_peers
    finally:
        await watcher.close()
