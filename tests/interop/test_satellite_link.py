"""A field unit on a satellite link: a publisher and a subscriber whose every datagram leaves 1.5 s late.

aioice checked consent with one 0.5 s try every ~5 s and gave up after six misses: a link whose
answers came back 0.7 s late lost its video after ~28 s. With RFC 7675 consent (retransmitted
checks, anything authenticated counts, 30 s expiry) such a link stays up, both at the server and
at the client.
"""

from __future__ import annotations

import logging
import time

import pytest

from signaling.messages import ParticipantUpdated, ServerMessage
from synthetic.client import FrameCounter, RoomClient
from synthetic.pattern import TestPatternTrack, ToneTrack
from tests.conftest import soak_or
from tests.server.conftest import Platform

DELAY = 1.5
SECONDS = soak_or(45, 300)


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 90)
async def test_a_publisher_and_a_subscriber_delayed_by_one_and_a_half_seconds_stay_connected(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """What is delayed: once both clients are connected, every datagram their ICE sockets send
    (STUN binding requests and responses, DTLS, SRTP and SRTCP) leaves DELAY seconds late
    (`RoomClient.impair`, at the sending socket); what the server sends is not delayed. So every
    round trip (the server's consent checks and the clients', RTCP) takes DELAY seconds more, and
    the publisher's media reaches the server DELAY seconds late."""
    caplog.set_level(logging.INFO, logger="media.liveness")
    unit = RoomClient(platform.url, "consultation", platform.token("sat-unit", site="mobile01"), name="sat-unit", ssl=False)
    seat = RoomClient(platform.url, "consultation", platform.token("sat-seat", grants=("subscribe",)), name="sat-seat", ssl=False)
    updates: list[ParticipantUpdated] = []

    def seen(message: ServerMessage) -> None:
        if isinstance(message, ParticipantUpdated):
            updates.append(message)

    seat.on_message = seen
    try:
        await unit.connect()
        await seat.connect()
        await unit.publish({"camera": TestPatternTrack("Satellite", width=320, height=180, fps=10), "microphone": ToneTrack()})
        await seat.wait_for(lambda c: any(p.identity == "sat-unit" and p.kind == "video" and p.publication_id in c.received
                                          for p in c.publications.values()), timeout=20)
        camera = next(p.publication_id for p in seat.publications.values() if p.identity == "sat-unit" and p.kind == "video")
        async with FrameCounter(seat.received[camera]) as video:
            await video.wait_frames(5, timeout=20)
            unit.impair(delay=DELAY)
            seat.impair(delay=DELAY)
            delayed_from, ends = video.count, time.monotonic() + SECONDS
            while time.monotonic() < ends:
                await video.wait_frames(video.count + 10, timeout=5)  # 10 fps: frames keep coming
            print(f"satellite link: {video.count - delayed_from} frames in {SECONDS:g} s of 1.5 s delay")
        assert unit.connected and seat.connected
        assert {role: h.state for role, h in unit.health.items()} == {"publisher": "alive"}
        assert {role: h.state for role, h in seat.health.items()} == {"subscriber": "alive"}
        assert seat.participants["sat-unit"].state == "connected"
        assert [u for u in updates if u.participant.identity == "sat-unit"] == []
        lost = [r.getMessage() for r in caplog.records if r.name == "media.liveness" and "alive" not in r.getMessage()]
        assert lost == [], lost  # the server never called either connection stalled or failed
    finally:
        await unit.close()
        await seat.close()
