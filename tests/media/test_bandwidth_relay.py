"""A subscriber whose feedback says what its link carries, against a real relay with simulcast
publishers: the spotlight keeps a higher layer than the tiles, and below the lowest layers the
least important video is paused and the subscriber is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiortc import RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from media.aiortc.client import send_rtcp
from media.publication import Publication
from media.router import RoomRouter
from media.simulcast import vp8_keyframe_size
from synthetic.simulcast import SimulcastLoopPublisher, encode_layers
from tests.media.conftest import SubscribingClient

SPOTLIGHT, TILE = (960, 540), (480, 270)


@pytest.fixture(scope="module")
def layers() -> list[list[bytes]]:
    return encode_layers(seconds=1.0)


@pytest.fixture
async def publishers(router: RoomRouter, layers: list[list[bytes]]) -> AsyncIterator[list[Publication]]:
    clients: list[SimulcastLoopPublisher] = []
    publications: list[Publication] = []
    for index in range(3):
        client = SimulcastLoopPublisher(layers)
        peer = router.new_publisher(f"site{index}", on_publication=publications.append)
        await client.accept(await peer.answer(await client.offer(), {}))
        clients.append(client)
    yield publications
    for client in clients:
        await client.close()


async def _until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)


def _remb(client: SubscribingClient, bits_per_second: int) -> None:
    ssrcs = [packets[0].ssrc for packets in client.packets.values() if packets]
    send_rtcp(client.pc, bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bits_per_second, ssrcs))))


def _last_size(client: SubscribingClient, publication_id: str) -> tuple[int, int] | None:
    sizes = [vp8_keyframe_size(p.payload) for p in client.packets.get(publication_id, [])]
    known = [size for size in sizes if size is not None]
    return known[-1] if known else None


async def test_a_one_megabit_subscriber_keeps_the_spotlight_above_its_tiles_and_pauses_below_the_lowest(
    router: RoomRouter, publishers: list[Publication]
) -> None:
    client = SubscribingClient(lean=True, remb=False)
    paused: list[tuple[str, bool]] = []
    client.peer = router.new_subscriber("leader", client.on_offer, on_paused=lambda p, on: paused.append((p, on)))
    spotlight, *tiles = publishers
    for publication in publishers:
        client.peer.subscribe(publication)
    client.peer.show_at({spotlight.id: SPOTLIGHT, **{tile.id: TILE for tile in tiles}})
    await _until(lambda: all(_last_size(client, p.id) for p in publishers))
    await _until(lambda: _last_size(client, spotlight.id) == (960, 540))  # no feedback yet: as wanted

    async def feedback(bits_per_second: int) -> None:
        while True:  # as a browser, several times a second
            _remb(client, bits_per_second)
            await asyncio.sleep(0.2)

    sending = asyncio.ensure_future(feedback(20_000_000))  # the link carries everything ...
    try:
        await asyncio.sleep(0.6)
        assert client.peer.link.estimate == 20_000_000 and not paused
        sending.cancel()
        sending = asyncio.ensure_future(feedback(1_000_000))  # ... then falls to 1 Mbit/s
        await _until(lambda: _last_size(client, spotlight.id) == (480, 270))
        await _until(lambda: all(_last_size(client, tile.id) == (240, 135) for tile in tiles))
        assert client.peer.link.estimate == 1_000_000
        assert not paused  # nothing frozen at 1 Mbit/s
        counts = {p.id: len(client.packets[p.id]) for p in publishers}
        await asyncio.sleep(1.0)
        assert all(len(client.packets[p.id]) > counts[p.id] for p in publishers)  # every one still moving

        sending.cancel()
        low = spotlight.rates()[0]  # below what the three lowest layers need: tiles go first
        sending = asyncio.ensure_future(feedback(int(low * 1.5)))
        await _until(lambda: any(on for _p, on in paused))
        assert {p for p, on in paused if on} <= {t.id for t in tiles}
        assert spotlight.id not in {p for p, _on in paused}
        assert len(client.packets[spotlight.id]) > counts[spotlight.id]

        sending.cancel()
        sending = asyncio.ensure_future(feedback(5_000_000))
        await _until(lambda: paused[-1][1] is False, timeout=10)  # resumed after the hold
        await _until(lambda: _last_size(client, spotlight.id) == (960, 540))
    finally:
        sending.cancel()
        await client.pc.close()
