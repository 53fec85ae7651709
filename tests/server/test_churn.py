"""Participants come and go: join/publish/leave cycles leave no connection, task, socket or memory behind."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
from collections import Counter

import pytest
from aiortc import RTCPeerConnection

from server.memory import MemoryReleaser
from synthetic.client import RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.conftest import soak_or
from server.config import RateLimitSettings
from tests.server.conftest import PlatformFactory



def _task_names() -> Counter[str]:
    """Live tasks by what they run (their coroutine's name), not by their own names."""
    return Counter(task.get_coro().__qualname__ for task in asyncio.all_tasks())  # type: ignore[union-attr]


def _peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


async def _quiet() -> None:
    """Let what is closing finish before measuring (aioice's and aiortc's loops end in the background),
    then give free heap pages back to the system, as the server does after connections end."""
    for _ in range(20):
        await asyncio.sleep(0.1)
    gc.collect()
    MemoryReleaser().release()


@pytest.mark.soak
async def test_join_publish_leave_cycles_leave_nothing_behind(make_platform: PlatformFactory, caplog: pytest.LogCaptureFixture) -> None:
    # Five identities rejoining several times a second is the load this test measures, not an attack.
    platform = await make_platform(rate_limits=RateLimitSettings(enabled=False))
    # pytest keeps every captured log record for the report: at INFO, a thousand cycles' worth would
    # be measured as the server's memory.
    caplog.set_level(logging.WARNING)
    cycles = int(soak_or(120, 1000))
    warm_up = int(soak_or(60, 100))
    video = encode_video_loop("VP8", width=160, height=96, seconds=1, fps=10)
    audio = encode_opus_loop(seconds=1)
    watcher = RoomClient(platform.url, "consultation", platform.token("wall-screen", grants=("subscribe",)), name="wall-screen")
    await watcher.connect()
    room = platform.services.rooms.rooms["consultation"]
    baseline_tasks: Counter[str] = Counter()
    baseline_fds = baseline_peers = 0
    baseline_rss = 0.0
    try:
        for cycle in range(warm_up + cycles):
            # Measured after the warm-up, when the wall's own connection and every cache are up;
            # each cycle ends in the same state, so anything a cycle leaks shows `cycles` times over.
            if cycle == warm_up:
                await _quiet()
                baseline_tasks, baseline_fds, baseline_peers, baseline_rss = _task_names(), _fds(), _peer_connections(), _rss_mb()
            identity = f"unit{cycle % 5}"
            client = RoomClient(platform.url, "consultation", platform.token(identity), name=f"unit{cycle}")
            await client.connect()
            await client.publish({"camera": video_loop_track(video, fps=10), "microphone": audio_loop_track(audio)})
            await watcher.wait_for(lambda w: sum(1 for p in w.publications.values() if p.identity == identity) == 2, timeout=10)
            await client.close()
            await watcher.wait_for(lambda w: identity not in w.participants and not w.publications, timeout=10)
        subscriber = room.router.subscriber("wall-screen")
        assert subscriber is not None
        await subscriber.wait_settled(10)
        assert set(room.participants) == {"wall-screen"}
        assert not room.router.publications and room.router.subscription_count == 0
        assert room.router.peer_count == 1  # the wall's subscriber connection
        assert subscriber.transceiver_count <= 2, "transceivers are recycled, not added per publication"
        # Closing connections finishes in the background (aioice, aiortc's loops): give it a moment.
        for _ in range(50):
            if _task_names() - baseline_tasks == Counter() and _fds() <= baseline_fds + 2:
                break
            await asyncio.sleep(0.1)
        await _quiet()
        leftover = _task_names() - baseline_tasks
        rss_growth = _rss_mb() - baseline_rss
        print(f"{cycles} cycles: tasks left {dict(leftover)}, fds {_fds()} (baseline {baseline_fds}), "
              f"RSS {rss_growth:+.1f} MB")
        assert sum(leftover.values()) <= 2, leftover
        assert _fds() <= baseline_fds + 2
        assert _peer_connections() <= baseline_peers
        assert rss_growth < 3 + cycles * 0.003, f"RSS grew {rss_growth:.1f} MB over {cycles} cycles"
    finally:
        await watcher.close()
