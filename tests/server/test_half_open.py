"""Clients that say hello and offer, then nothing: each costs a bounded amount of memory while it
lasts, is ended when its connections never come up, and a second round costs nothing more."""

from __future__ import annotations

import asyncio
import gc
import logging
import json
import os
import resource
import time

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from server.memory import MemoryReleaser
from synthetic.client import RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.server.conftest import Platform, PlatformFactory

ROOM = "consultation"
CLIENTS = 100
PUBLISHERS = 6
# What one half-open client may cost the server while it lasts: its publisher and subscriber
# connections (sockets, DTLS certificate and context, an offer of at most two tracks).
MAX_MB_PER_CLIENT = 1.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


async def _half_open(http: aiohttp.ClientSession, platform: Platform, identity: str, offer: str, joined: asyncio.Event) -> None:
    """Hello and a publisher offer, then silence: reads (so pings are answered) but never answers."""
    async with http.ws_connect(platform.url.replace("http", "ws") + "/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello", "id": "1", "version": 1, "room": ROOM, "token": platform.token(identity)}))
        await ws.send_str(json.dumps({"type": "publish_offer", "id": "2", "sdp": offer, "sources": {}}))
        answered = False
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and json.loads(message.data).get("type") == "publish_answer":
                answered = True
                joined.set()
        assert answered


async def _round(http: aiohttp.ClientSession, platform: Platform, offer: str, tag: str) -> tuple[float, float]:
    """Run CLIENTS half-open clients; the RSS (MB) when all are in, and how long until all were ended."""
    room = platform.services.rooms.rooms[ROOM]
    events = [asyncio.Event() for _ in range(CLIENTS)]
    started = time.monotonic()
    tasks = [asyncio.create_task(_half_open(http, platform, f"half-{tag}-{i}", offer, events[i])) for i in range(CLIENTS)]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), 60)
    gc.collect()
    peak = _rss_mb()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)  # the server ends each of them
    while len(room.participants) > PUBLISHERS:
        await asyncio.sleep(0.1)
    MemoryReleaser().release()  # what the server does after connections end (server/memory.py)
    return peak, time.monotonic() - started


async def test_half_open_clients_cost_a_bounded_amount_each_and_a_second_round_nothing_more(
    make_platform: PlatformFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)  # pytest keeps captured records: they would count as the server's memory
    platform = await make_platform(connect_timeout=8.0, reconnect_grace=2.0)
    video, audio = encode_video_loop("VP8", width=160, height=96, seconds=1, fps=10), encode_opus_loop(seconds=1)
    publishers = [RoomClient(platform.url, ROOM, platform.token(f"site{i}", grants=("publish",)), name=f"site{i}") for i in range(PUBLISHERS)]
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for client in publishers:
            await client.connect()
            await client.publish({"camera": video_loop_track(video, fps=10), "microphone": audio_loop_track(audio)})
        offerer.addTransceiver("video", direction="sendonly")
        offerer.addTransceiver("audio", direction="sendonly")
        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription.sdp
        room = platform.services.rooms.rooms[ROOM]
        async with aiohttp.ClientSession() as http:
            gc.collect()
            MemoryReleaser().release()
            base = _rss_mb()
            fds = len(os.listdir("/proc/self/fd"))
            first_peak, first_took = await _round(http, platform, offer, "a")
            gc.collect()
            after_first = _rss_mb()
            second_peak, _ = await _round(http, platform, offer, "b")
            gc.collect()
            after_second = _rss_mb()
        per_client = (first_peak - base) / CLIENTS
        print(f"{CLIENTS} half-open clients ({2 * PUBLISHERS} tracks in the room): {per_client:.2f} MB each at the peak "
              f"(base {base:.0f} MB, peak {first_peak:.0f} MB, after {after_first:.0f} MB, all ended after {first_took:.1f} s); "
              f"second round: peak {second_peak:.0f} MB, after {after_second:.0f} MB")
        assert per_client < MAX_MB_PER_CLIENT
        assert second_peak - first_peak < 10, "a second round must cost nothing more than the first"
        assert after_second - after_first < 10
        assert len(os.listdir("/proc/self/fd")) <= fds + 5
        assert platform.services.lifecycle.failures.get("never_connected", 0) >= 2 * CLIENTS
        assert set(room.participants) == {f"site{i}" for i in range(PUBLISHERS)}
    finally:
        await offerer.close()
        for client in publishers:
            await client.close()
