"""Python clients in one room: every subscriber receives every publisher's tracks."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamTrack

from synthetic.client import FrameCounter, RoomClient
from synthetic.pattern import TestPatternTrack, ToneTrack
from tests.server.conftest import Platform


def _pattern(name: str) -> dict[str, MediaStreamTrack]:
    return {"camera": TestPatternTrack(name, width=160, height=96, fps=10), "microphone": ToneTrack()}


async def test_three_publishers_and_three_subscribers_each_receive_every_track(platform: Platform) -> None:
    publishers = [RoomClient(platform.url, "consultation", platform.token(f"pub{i}"), name=f"pub{i}") for i in range(3)]
    subscribers = [
        RoomClient(platform.url, "consultation", platform.token(f"sub{i}", grants=("subscribe",)), name=f"sub{i}")
        for i in range(3)
    ]
    try:
        for client in publishers + subscribers:
            await client.connect()
        for i, client in enumerate(publishers):
            await client.publish(_pattern(f"Site {i}"))
        for subscriber in subscribers:
            await subscriber.wait_for(lambda c: len(c.received) == 6, timeout=20)
        counters: list[FrameCounter] = []
        for subscriber in subscribers:
            for publication_id, track in subscriber.received.items():
                if subscriber.publications[publication_id].kind == "video":
                    counters.append(FrameCounter(track))
        assert len(counters) == 9
        await asyncio.gather(*(counter.wait_frames(3, timeout=20) for counter in counters))
        for counter in counters:
            await counter.stop()
        room = platform.services.rooms.rooms["consultation"]
        assert len(room.router.publications) == 6
        # each publication reaches the three subscribers and the two other publishers
        assert room.router.subscription_count == 6 * 5
    finally:
        for client in publishers + subscribers:
            await client.close()
