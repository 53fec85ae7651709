"""Memory at the media layer: a subscription with a full NACK history costs well under 300 KB,
and 10,000 subscribe/unsubscribe cycles leave nothing behind."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from aiortc.rtp import RtpPacket

import media
from media.aiortc.srtp import RtpOut
from media.aiortc.transceivers import media_codecs
from media.peers import SubscriberPeer
from media.publication import Publication
from media.router import RoomRouter
from media.subscription import HISTORY_SIZE, Subscription
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.media.conftest import publish


# Only allocations made by the relay's code (and this test's calls into it) count: the test shares
# its process with whatever earlier tests left running, whose allocations are not the relay's.
OURS = [tracemalloc.Filter(True, str(Path(media.__file__).parent / "*")), tracemalloc.Filter(True, __file__)]


def _ours() -> int:
    return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(OURS).statistics("filename"))


class NullOut:
    """Accepts what a subscription sends without writing it: many subscriptions share one test
    sender here, and SRTP would (rightly) refuse the same sequence numbers on one SSRC."""

    def __init__(self, out: RtpOut) -> None:
        self._out = out

    @property
    def connected(self) -> bool:
        return self._out.connected

    def send(self, data: bytes) -> bool:
        return True

    def send_rtp(self, marker_pt: int, seq: int, ts: int, ssrc: int, tail: bytes, extended: bool) -> int:
        return 12 + len(tail)


class Feeder:
    """Feeds synthetic publisher packets through the publication's real receiver tap."""

    def __init__(self, router: RoomRouter, publication: Publication) -> None:
        transceiver = router._publishers[publication.owner][0].pc.getTransceivers()[0]
        self.receiver = transceiver.receiver
        self.payload_type = media_codecs(transceiver)[0].payloadType
        self.ssrc = publication.media_ssrc
        self.seq = 1000
        self.ts = 0

    async def feed(self, count: int) -> None:
        for _ in range(count):
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + 3000) & 0xFFFFFFFF
            packet = RtpPacket(payload_type=self.payload_type, marker=1, sequence_number=self.seq, timestamp=self.ts, ssrc=self.ssrc)
            packet.payload = b"\x10\x00\x01" + bytes(1100)  # a VP8 delta frame of one packet
            await self.receiver._handle_rtp_packet(packet, arrival_time_ms=0)


async def test_a_subscription_costs_under_300_kb_and_cycles_leave_nothing_behind(router: RoomRouter, make_subscriber) -> None:
    client, publications = await publish(router, "county01", [video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1))])
    video = publications[0]
    seat = make_subscriber("seat", lean=True)
    seat.peer.subscribe(video)
    await seat.wait_packets(lambda: len(seat.packets.get(video.id, [])) > 5)
    client.getSenders()[0].replaceTrack(None)  # from here on, only synthetic packets flow
    # The seat's own subscription sits out. Otherwise the synthetic stream reaches it too, as a
    # jump from the publisher's random sequence numbers: SRTP refuses it as a replay until the
    # feeder's numbers pass the real ones, and then the seat's history fills with synthetic
    # packets in the middle of the cycles, 570 KB that looked like growth (an intermittent failure).
    video.subscriptions[0].paused = True
    transceiver = seat.peer.pc.getTransceivers()[0]
    sender = transceiver.sender
    payload_type = SubscriberPeer.payload_type(transceiver, video.codec)
    assert payload_type is not None
    feeder = Feeder(router, video)

    def subscribe() -> Subscription:
        subscription = Subscription(video, subscriber="load", sender=sender, payload_type=payload_type, mid=transceiver.mid, counters=router.counters)
        subscription._out = NullOut(subscription._out)  # type: ignore[assignment]
        subscription.waiting_keyframe = False
        return subscription

    await feeder.feed(HISTORY_SIZE + 100)
    gc.collect()
    tracemalloc.start()
    try:
        before = _ours()
        subscriptions = [subscribe() for _ in range(50)]
        await feeder.feed(HISTORY_SIZE + 100)  # every history full
        gc.collect()
        per_subscription = (_ours() - before) / len(subscriptions)
        for subscription in subscriptions:
            subscription.close()
        del subscriptions

        for _ in range(1000):
            subscribe().close()
        await feeder.feed(HISTORY_SIZE)
        gc.collect()
        after_warmup = _ours()
        for cycle in range(10_000):
            subscription = subscribe()
            if cycle % 10 == 0:
                await feeder.feed(1)
            subscription.close()
        await feeder.feed(HISTORY_SIZE)
        gc.collect()
        growth = _ours() - after_warmup
    finally:
        tracemalloc.stop()
    assert per_subscription < 300 * 1024, f"{per_subscription / 1024:.0f} KB per subscription"
    assert growth < 64 * 1024, f"{growth / 1024:.0f} KB more after 10,000 cycles"
    assert len(video.subscriptions) == 1
    print(f"per subscription {per_subscription / 1024:.1f} KB, growth {growth / 1024:.1f} KB")
    await client.close()
