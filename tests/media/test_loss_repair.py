"""Loss repair both ways: with 10 % of packets dropped at the sending side, NACK/RTX keeps at
least 90 % of frames decodable at the subscriber; without repair, fewer frames make it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from media.aiortc.client import inject_send_delay, inject_send_loss, on_keyframe_request
from media.aiortc.reports import round_trip_time
from media.aiortc.srtp import RtpOut
from media.publication import Publication
from media.router import RoomRouter
from media.subscription import Subscription
from synthetic.encoded import encode_video_loop
from synthetic.load import KeyframeLoopTrack

LOSS = 0.10
WINDOW = 3.0


class LossyOut:
    """Wraps a subscription's sender path and drops a fraction of what it sends (the server is the sending side)."""

    def __init__(self, out: RtpOut, rng: random.Random) -> None:
        self._out = out
        self._rng = rng

    @property
    def connected(self) -> bool:
        return self._out.connected

    def send(self, data: bytes) -> bool:
        if self._rng.random() < LOSS:
            return True  # "sent", and lost on the way
        return self._out.send(data)

    def send_rtp(self, marker_pt: int, seq: int, ts: int, ssrc: int, tail: bytes, extended: bool) -> int:
        if self._rng.random() < LOSS:
            return 12 + len(tail)
        return self._out.send_rtp(marker_pt, seq, ts, ssrc, tail, extended)


async def _publish(router: RoomRouter, track: KeyframeLoopTrack) -> tuple[RTCPeerConnection, Publication]:
    client = RTCPeerConnection()
    transceiver = client.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")])
    on_keyframe_request(transceiver.sender, track.restart)
    await client.setLocalDescription(await client.createOffer())
    publications: list[Publication] = []
    peer = router.new_publisher("field-unit", on_publication=publications.append)
    answer = await peer.answer(client.localDescription.sdp, {})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return client, publications[0]


async def _first_frame(remote) -> None:
    """The first keyframe decoded, before any loss is injected: without repair, a keyframe of some forty
    packets crosses a 10 % loss whole only a few times in a hundred, so waiting for it under loss is luck."""
    await asyncio.wait_for(remote.recv(), 10)


async def _decoded_ratio(track: KeyframeLoopTrack, remote) -> float:
    """Frames the subscriber decodes over a window, over frames the publisher sent in it. Frames already
    waiting to be decoded are taken first: on a busy machine a backlog counted in the window read above 100 %."""
    while True:
        try:
            await asyncio.wait_for(remote.recv(), 0.01)
        except asyncio.TimeoutError:
            break
    decoded = 0
    sent_before = track.sent
    deadline = time.monotonic() + WINDOW
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(remote.recv(), left)
        except asyncio.TimeoutError:
            break
        decoded += 1
    return decoded / (track.sent - sent_before)


async def _decoded_share(remote, fps: int = 30) -> float:
    """Frames decoded over a window, over the frames the publisher sent between the first and the last
    of them (read from their timestamps): what a long, busy link delays is neither lost nor counted twice."""
    stamps: set[int] = set()
    deadline = time.monotonic() + WINDOW
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(remote.recv(), left)
        except asyncio.TimeoutError:
            break
        stamps.add(frame.pts)
    if len(stamps) < 2:
        return 0.0
    return len(stamps) / ((max(stamps) - min(stamps)) / (90000 / fps) + 1)


async def _watched(router: RoomRouter, make_subscriber) -> tuple[KeyframeLoopTrack, RTCPeerConnection, Publication, Any, Any]:
    """A 1 Mbit/s VP8 loop published and watched by the mayor, its first keyframe decoded."""
    track = KeyframeLoopTrack(encode_video_loop("VP8", width=640, height=360, seconds=2, bitrate=1_000_000))
    client, video = await _publish(router, track)
    subscriber = make_subscriber("mayor")
    subscriber.peer.subscribe(video)
    remote = await subscriber.wait_track(video.id)
    await _first_frame(remote)
    return track, client, video, subscriber, remote


@pytest.mark.parametrize("direction", ["publisher to server", "server to subscriber"])
@pytest.mark.parametrize("repair", [True, False], ids=["with NACK/RTX", "without repair"])
async def test_ten_percent_loss_is_repaired_by_nack_and_rtx(router: RoomRouter, make_subscriber, direction: str, repair: bool) -> None:
    rng = random.Random(6)
    track, client, video, subscriber, remote = await _watched(router, make_subscriber)
    if direction == "publisher to server":
        inject_send_loss(client, LOSS, rng.random)
        video.set_upstream_repair(repair)
    else:
        await subscriber.peer.wait_settled(10)
        subscription: Subscription = video.subscriptions[0]
        subscription._out = LossyOut(subscription._out, rng)
        subscription.repair = repair

    ratio = await _decoded_ratio(track, remote)

    if repair:
        assert ratio >= 0.9, f"{ratio:.1%} of frames decoded with repair"
        assert router.counters.retransmissions > 0 or direction == "publisher to server"
    else:
        assert ratio < 0.9, f"{ratio:.1%} of frames decoded without repair: the loss did not bite"
    await client.close()


async def test_a_nack_for_a_packet_forwarded_less_than_a_round_trip_ago_is_not_answered(router: RoomRouter, make_subscriber) -> None:
    client, video = await _publish(router, KeyframeLoopTrack(encode_video_loop("VP8", width=320, height=180, seconds=1)))
    subscriber = make_subscriber("mayor", lean=True)
    subscriber.peer.subscribe(video)
    await subscriber.wait_packets(lambda: len(subscriber.packets.get(video.id, [])) > 5)
    subscription: Subscription = video.subscriptions[0]
    deadline = time.monotonic() + 10
    while round_trip_time(subscription.sender) is None:  # the subscriber's receiver reports give it
        assert time.monotonic() < deadline, "no round trip measured"
        await asyncio.sleep(0.1)
    rtt = round_trip_time(subscription.sender)
    assert rtt is not None
    sent = [entry for entry in subscription._history._slots if entry is not None]
    newest = max(sent, key=lambda entry: entry[2].arrival)
    older = [entry for entry in sent if time.perf_counter() - entry[2].arrival > rtt + 0.05]
    assert older
    newest[2].arrival = time.perf_counter()  # as if it had just been forwarded (repaired upstream, late)
    before = (router.counters.retransmissions, router.counters.retransmissions_skipped)
    subscription.handle_feedback("nack", [newest[0]])
    assert (router.counters.retransmissions, router.counters.retransmissions_skipped) == (before[0], before[1] + 1)
    subscription.handle_feedback("nack", [older[-1][0]])
    assert router.counters.retransmissions == before[0] + 1
    await client.close()


async def test_a_field_uplink_losing_ten_percent_over_a_300_ms_round_trip_is_repaired_without_a_storm(
    router: RoomRouter, make_subscriber,
) -> None:
    """A field unit on 4G or satellite: 10 % of what it sends lost and a 300 ms round trip. The leader
    still decodes at least 90 % of the frames; each lost packet is asked for about once per round trip
    (not every 30 ms, which spent every try before the first answer could come back), and keyframe
    requests stay a trickle."""
    rng = random.Random(8)
    dropped = 0

    def lossy() -> float:
        nonlocal dropped
        value = rng.random()
        dropped += value < LOSS
        return value

    _, client, video, _, remote = await _watched(router, make_subscriber)
    inject_send_delay(client, 0.3)  # the round trip a retransmission takes: NACK out at once, RTX back 300 ms later
    inject_send_loss(client, LOSS, lossy)
    nacks, keyframes = router.counters.upstream_nacks, router.counters.keyframe_requests

    ratio = await _decoded_share(remote)

    nacked = router.counters.upstream_nacks - nacks
    print(f"field uplink: {ratio:.1%} of frames decoded, {dropped} packets lost, {nacked} NACKed, "
          f"{router.counters.keyframe_requests - keyframes} keyframe requests")
    assert ratio >= 0.9, f"{ratio:.1%} of frames decoded over a 300 ms round trip losing 10 %"
    assert dropped > 20 and nacked <= 2.5 * dropped, f"{nacked} NACKed for {dropped} lost: a NACK storm"
    assert router.counters.keyframe_requests - keyframes <= 3
    await client.close()
