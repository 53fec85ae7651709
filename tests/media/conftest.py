"""Real aiortc peers in memory around the relay: a publishing client and subscribing clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from media.aiortc.client import tap_receiver

from media.counters import RelayCounters
from media.peers import SubscriberPeer
from media.publication import Publication
from media.router import RoomRouter


class SubscribingClient:
    """A client's subscriber connection: answers the server's offers, collects remote tracks."""

    def __init__(self, *, lean: bool = False, remb: bool = True) -> None:
        self.pc = RTCPeerConnection()
        self.tracks: dict[str, MediaStreamTrack] = {}
        self.lean = lean
        self.remb = remb  # False: its receivers estimate nothing (the test says what the link carries)
        self.packets: dict[str, list[RtpPacket]] = {}
        self._tapped: set[int] = set()
        self.arrived = asyncio.Event()
        self.changed = asyncio.Condition()
        self.peer: SubscriberPeer | None = None
        self._lock = asyncio.Lock()

    async def on_offer(self, sdp: str, tracks: dict[str, str]) -> None:
        """What the server's send_offer calls: answer in the background, like a real client."""
        asyncio.get_running_loop().create_task(self._answer(sdp, tracks))

    async def _answer(self, sdp: str, tracks: dict[str, str]) -> None:
        async with self._lock:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if self.lean:
                self._tap(tracks)
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            for transceiver in self.pc.getTransceivers():
                if transceiver.mid in tracks:
                    self.tracks[tracks[transceiver.mid]] = transceiver.receiver.track
            assert self.peer is not None
            self.peer.handle_answer(self.pc.localDescription.sdp)
        async with self.changed:
            self.changed.notify_all()

    def _tap(self, tracks: dict[str, str]) -> None:
        # A lean client counts packets at the transport and never decodes, like the load tool.
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            if id(receiver) in self._tapped or transceiver.mid not in tracks:
                continue
            self._tapped.add(id(receiver))
            received = self.packets.setdefault(tracks[transceiver.mid], [])
            if not self.remb:
                receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]

            def on_packet(packet: RtpPacket, arrival_ms: int, received: list[RtpPacket] = received) -> None:
                received.append(packet)
                self.arrived.set()

            tap_receiver(receiver, on_packet)

    async def wait_packets(self, enough: Callable[[], bool], timeout: float = 20) -> None:
        """Wait until `enough()` holds, re-checking on every packet that arrives."""

        async def wait() -> None:
            while not enough():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), timeout)

    async def wait_track(self, publication_id: str, timeout: float = 10) -> MediaStreamTrack:
        """The remote track carrying `publication_id`, once negotiated."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: publication_id in self.tracks), timeout)
        return self.tracks[publication_id]


async def publish(router: RoomRouter, identity: str, tracks: list[MediaStreamTrack]) -> tuple[RTCPeerConnection, list[Publication]]:
    """Publish `tracks` from a real aiortc client into the router; returns the client and publications."""
    client = RTCPeerConnection()
    for track in tracks:
        client.addTransceiver(track, direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    publications: list[Publication] = []
    peer = router.new_publisher(identity, on_publication=publications.append)
    answer = await peer.answer(client.localDescription.sdp, {})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return client, publications


@pytest.fixture
async def router() -> AsyncIterator[RoomRouter]:
    room = RoomRouter("test", counters=RelayCounters())
    yield room
    await room.close()


@pytest.fixture
async def make_subscriber(router: RoomRouter) -> AsyncIterator[Callable[..., SubscribingClient]]:
    clients: list[SubscribingClient] = []

    def make(identity: str, lean: bool = False) -> SubscribingClient:
        client = SubscribingClient(lean=lean)
        client.peer = router.new_subscriber(identity, client.on_offer)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.pc.close()
