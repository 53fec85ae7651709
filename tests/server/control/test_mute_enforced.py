"""A server mute is enforced at the relay: the muted site's packets stop reaching subscribers within 200 ms."""

from __future__ import annotations

import asyncio
import time

from aiortc.rtp import RtpPacket

from media.aiortc.client import tap_receiver
from signaling.control import MuteParticipant
from synthetic.client import RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.server.conftest import Platform
from tests.server.control.conftest import CHAIR_GRANTS, Join, origin_room, until

DEADLINE = 0.200


class PacketClock:
    """Arrival times (monotonic seconds) of every packet per publication at a lean subscriber."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.arrived = asyncio.Event()

    def tap(self, client: RoomClient) -> None:
        """Count packets at the transport of each received track; nothing is decoded any more."""
        pc = client._subscriber  # the test reaches into the client to listen below the decoder
        assert pc is not None
        for publication_id, track in client.received.items():
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            times = self.arrivals.setdefault(publication_id, [])

            def on_packet(packet: RtpPacket, arrival_ms: int, times: list[float] = times) -> None:
                times.append(time.monotonic())
                self.arrived.set()

            tap_receiver(receiver, on_packet)

    async def wait(self, publication_id: str, count: int, timeout: float = 15) -> None:
        """Wait until `count` packets of the publication have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.arrivals.get(publication_id, [])) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_muted_sites_packets_stop_reaching_subscribers_within_200_ms(platform: Platform, join: Join) -> None:
    chair = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    site = await join("levee", site="linjiang")
    viewer = await join("viewer", site="qingshan", grants=("subscribe",))
    video, audio = video_loop_track(encode_video_loop(seconds=1.0)), audio_loop_track(encode_opus_loop(seconds=1.0))
    await site.publish({"camera": video, "microphone": audio})
    await viewer.wait_for(lambda c: len(c.received) == 2, timeout=15)
    kinds = {p: viewer.publications[p].kind for p in viewer.received}
    clock = PacketClock()
    clock.tap(viewer)
    for publication_id in kinds:
        await clock.wait(publication_id, 20)
    for kind in ("audio", "video"):
        publication_id = next(p for p, k in kinds.items() if k == kind)
        publication = origin_room(platform, publication_id).router.publications[publication_id]  # type: ignore[index]
        commanded = time.monotonic()
        await chair.request(MuteParticipant(identity="levee", kind=kind))  # type: ignore[arg-type]
        sent_before = publication.packets
        # the client keeps sending: a second's worth reaches the server ...
        await until(lambda: publication.packets >= sent_before + 20)
        late = [t - commanded for t in clock.arrivals[publication_id] if t - commanded > DEADLINE]
        # ... and none of it reaches the subscriber after the deadline
        assert late == [], f"{kind}: {len(late)} packets arrived later than {DEADLINE * 1000:.0f} ms after the mute"
        last = max((t - commanded for t in clock.arrivals[publication_id]), default=0.0)
        print(f"{kind}: last packet at the subscriber {last * 1000:.1f} ms after the command")

    # the chair unmutes: media flows again (video after a keyframe)
    for kind in ("audio", "video"):
        await chair.request(MuteParticipant(identity="levee", kind=kind, muted=False))  # type: ignore[arg-type]
    for publication_id in kinds:
        count = len(clock.arrivals[publication_id])
        await clock.wait(publication_id, count + 10)
    assert video.sent > 0 and audio.sent > 0
