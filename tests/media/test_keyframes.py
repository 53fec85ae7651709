"""Keyframes: a late subscriber's first frame is a keyframe, fetched promptly by a throttled PLI."""

from __future__ import annotations

import time

from media.aiortc.guard import HookMismatch, check_hooks, check_instance_hooks
from media.publication import KEYFRAME_REQUEST_INTERVAL
from media.router import RoomRouter
from media.rtp import is_keyframe_start
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.media.conftest import publish


async def test_a_late_subscriber_gets_a_keyframe_well_before_the_next_scheduled_one(router: RoomRouter, make_subscriber) -> None:
    # A 4 s GOP: without a PLI the late subscriber would wait up to 4 s for a keyframe.
    packets = encode_video_loop("VP8", width=320, height=180, seconds=4, fps=30)
    client, publications = await publish(router, "county01", [video_loop_track(packets)])
    video = publications[0]
    early = make_subscriber("early", lean=True)
    early.peer.subscribe(video)
    await early.wait_packets(lambda: len(early.packets.get(video.id, [])) > 40)
    requests_before = router.counters.keyframe_requests

    late = make_subscriber("late", lean=True)
    started = time.monotonic()
    late.peer.subscribe(video)
    await late.wait_packets(lambda: bool(late.packets.get(video.id)), timeout=5)
    elapsed = time.monotonic() - started
    assert is_keyframe_start("VP8", late.packets[video.id][0].payload)
    assert router.counters.keyframe_requests > requests_before
    assert elapsed < 2.0, f"first keyframe after {elapsed:.2f} s"
    await client.close()


async def test_keyframe_requests_are_throttled_per_publication(router: RoomRouter, make_subscriber) -> None:
    packets = encode_video_loop("VP8", width=160, height=96, seconds=1)
    client, publications = await publish(router, "county01", [video_loop_track(packets)])
    video = publications[0]
    subscriber = make_subscriber("seat", lean=True)
    subscriber.peer.subscribe(video)
    await subscriber.wait_packets(lambda: len(subscriber.packets.get(video.id, [])) > 10)
    before = router.counters.keyframe_requests
    started = time.monotonic()
    for _ in range(50):  # a storm of subscriber PLIs
        video.subscriptions[0].handle_feedback("pli", [])
    sent = router.counters.keyframe_requests - before
    allowed = 1 + int((time.monotonic() - started) / KEYFRAME_REQUEST_INTERVAL)
    assert 0 <= sent <= allowed
    await client.close()


def test_the_hooked_aiortc_internals_are_where_the_relay_expects_them() -> None:
    check_hooks()


async def test_live_receivers_and_senders_carry_the_private_state_the_relay_uses(router: RoomRouter, make_subscriber) -> None:
    packets = encode_video_loop("VP8", width=160, height=96, seconds=1)
    client, publications = await publish(router, "county01", [video_loop_track(packets)])
    subscriber = make_subscriber("seat", lean=True)
    subscriber.peer.subscribe(publications[0])
    await subscriber.wait_packets(lambda: bool(subscriber.packets.get(publications[0].id)))
    check_instance_hooks(client.getReceivers()[0], subscriber.peer.pc.getSenders()[0])
    check_instance_hooks(subscriber.pc.getReceivers()[0], client.getSenders()[0])
    await client.close()


def test_the_hook_check_fails_loudly_when_a_hooked_internal_moves(monkeypatch) -> None:
    from aioice.ice import StunProtocol

    monkeypatch.delattr(StunProtocol, "send_data")
    try:
        check_hooks()
    except HookMismatch as exc:
        assert "send_data" in str(exc)
    else:
        raise AssertionError("check_hooks() accepted a missing StunProtocol.send_data")
