"""A publication relayed once to another node's router, whatever the number of subscribers there."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from media.cascade import CascadeIn, Origin
from media.counters import RelayCounters
from media.peers import SubscriberPeer
from media.publication import Publication
from media.router import RoomRouter
from synthetic.encoded import encode_video_loop
from synthetic.load import KeyframeLoopTrack
from tests.media.conftest import SubscribingClient, publish
from tests.media.test_loss_repair import LossyOut
from tests.media.test_loss_repair import _decoded_ratio as decoded_ratio, _first_frame as first_frame
from tests.media.test_loss_repair import _publish as publish_video


@pytest.fixture
async def far() -> AsyncIterator[RoomRouter]:
    """The room's router on a second node."""
    room = RoomRouter("test", counters=RelayCounters())
    yield room
    await room.close()


async def link(origin_router: RoomRouter, far: RoomRouter, publications: list[Publication]) -> tuple[CascadeIn, SubscriberPeer]:
    """Bring `publications` from the origin router into `far` on one link, as two nodes do over HTTP:
    to the origin the far node is one more subscriber; the far node answers its offers."""
    cascade = far.new_cascade("node-a")
    origins = {p.id: Origin(p.id, p.owner, p.source, p.codec.name) for p in publications}

    async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
        async def answer() -> None:
            answer_sdp, added = await cascade.answer(sdp, tracks, origins.get)
            for publication in added:
                far.add_cascaded(cascade, publication)
            peer.handle_answer(answer_sdp)

        asyncio.get_running_loop().create_task(answer())

    peer = origin_router.new_subscriber("node:node-b", send_offer)
    for publication in publications:
        peer.subscribe(publication)
    await until(lambda: len(far.publications) == len(publications))
    return cascade, peer


async def until(predicate, timeout: float = 10) -> None:
    """Wait for state the links change as offers are answered (checked every 10 ms)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def frames(track, count: int, timeout: float = 15) -> list:
    got = []

    async def collect() -> None:
        while len(got) < count:
            got.append(await track.recv())

    await asyncio.wait_for(collect(), timeout)
    return got


async def test_subscribers_on_the_far_node_receive_a_publication_relayed_once(router: RoomRouter, far: RoomRouter) -> None:
    client, publications = await publish(router, "county01", [VideoStreamTrack(), AudioStreamTrack()])
    cascade, _ = await link(router, far, publications)
    assert {p.id for p in far.publications.values()} == {p.id for p in publications}
    subscribers = []
    for name in ("mayor", "wall", "deputy"):
        subscriber = SubscribingClient()
        subscriber.peer = far.new_subscriber(name, subscriber.on_offer)
        for publication in far.publications.values():
            subscriber.peer.subscribe(publication)
        subscribers.append(subscriber)
    video = next(p for p in publications if p.kind == "video")
    for subscriber in subscribers:
        got = await frames(await subscriber.wait_track(video.id), 5)
        assert got[-1].width == 640
    # Three subscribers over there, one subscription here: the link is one more subscriber.
    assert [len(p.subscriptions) for p in publications] == [1, 1]
    assert far.subscription_count == 6
    for subscriber in subscribers:
        await subscriber.pc.close()
    await far.close_cascade(cascade)
    assert far.publications == {}
    await client.close()


async def test_a_keyframe_request_from_the_far_node_reaches_the_publisher(router: RoomRouter, far: RoomRouter) -> None:
    client, publications = await publish(router, "county01", [VideoStreamTrack()])
    await link(router, far, publications)
    (copy,) = far.publications.values()
    subscriber = SubscribingClient()
    subscriber.peer = far.new_subscriber("mayor", subscriber.on_offer)
    subscriber.peer.subscribe(copy)
    await frames(await subscriber.wait_track(copy.id), 3)
    before = router.counters.keyframe_requests
    keyframes_before = publications[0].last_keyframe_at

    async def asked_upstream() -> None:
        while router.counters.keyframe_requests == before or publications[0].last_keyframe_at == keyframes_before:
            copy.request_keyframe()  # throttled at both ends: asked again until one gets through
            await asyncio.sleep(0.05)

    await asyncio.wait_for(asked_upstream(), 10)
    await subscriber.pc.close()
    await client.close()


async def test_the_link_closes_with_its_far_room(router: RoomRouter, far: RoomRouter) -> None:
    client, publications = await publish(router, "county01", [VideoStreamTrack()])
    cascade, _ = await link(router, far, publications)
    await far.close()
    assert cascade.closed and far.publications == {}
    assert all(p.closed for p in cascade.publications.values())
    await client.close()


@pytest.mark.parametrize("repair", [True, False], ids=["with NACK/RTX", "without repair"])
async def test_loss_on_the_link_is_repaired_by_the_origin_node(router: RoomRouter, far: RoomRouter, repair: bool) -> None:
    rng = random.Random(7)
    track = KeyframeLoopTrack(encode_video_loop("VP8", width=640, height=360, seconds=2, bitrate=1_000_000))
    client, video = await publish_video(router, track)
    await link(router, far, [video])
    (copy,) = far.publications.values()
    copy.set_upstream_repair(repair)
    subscriber = SubscribingClient()
    subscriber.peer = far.new_subscriber("mayor", subscriber.on_offer)
    subscriber.peer.subscribe(copy)
    remote = await subscriber.wait_track(copy.id)
    await first_frame(remote)
    (on_link,) = video.subscriptions  # what the origin node sends on the link: 10 % of it lost on the way
    on_link._out = LossyOut(on_link._out, rng)
    ratio = await decoded_ratio(track, remote)
    if repair:
        assert ratio >= 0.9, f"{ratio:.1%} of frames decoded across a link losing 10 %"
        assert router.counters.retransmissions > 0 and far.counters.upstream_nacks > 0
    else:
        assert ratio < 0.9, f"{ratio:.1%} of frames decoded without repair: the loss did not bite"
    await subscriber.pc.close()
    await client.close()


async def test_one_link_follows_the_publications_as_they_come_and_go(router: RoomRouter, far: RoomRouter) -> None:
    first, (camera,) = await publish(router, "county01", [VideoStreamTrack()])
    cascade, peer = await link(router, far, [camera])
    second, (other,) = await publish(router, "county02", [VideoStreamTrack()])
    peer.subscribe(other)  # a publication made on the origin after the link opened: the same link carries it
    await until(lambda: other.id in far.publications)
    peer.unsubscribe(camera.id)  # its publisher left: the copy over there ends
    await until(lambda: camera.id not in far.publications)
    assert len(cascade.publications) == 1 and len(router.publications) == 2
    await first.close()
    await second.close()


async def test_an_h264_publication_crosses_as_h264(router: RoomRouter, far: RoomRouter) -> None:
    client = RTCPeerConnection()
    transceiver = client.addTransceiver(VideoStreamTrack(), direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"])
    await client.setLocalDescription(await client.createOffer())
    publications: list[Publication] = []
    peer = router.new_publisher("encoder", on_publication=publications.append)
    await client.setRemoteDescription(RTCSessionDescription(sdp=await peer.answer(client.localDescription.sdp, {}), type="answer"))
    (video,) = publications
    assert video.codec.name == "H264"
    await link(router, far, [video])
    (copy,) = far.publications.values()
    assert copy.codec.name == "H264"  # what the origin sends, not the first codec the link's m-line lists
    subscriber = SubscribingClient()
    subscriber.peer = far.new_subscriber("mayor", subscriber.on_offer)
    subscriber.peer.subscribe(copy)
    got = await frames(await subscriber.wait_track(copy.id), 10)
    assert got[-1].width == 640
    await subscriber.pc.close()
    await client.close()
