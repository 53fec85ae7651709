"""The relay's lean paths: the receive side's RTP parse and rate window, and that live packets
take the lean paths in and out rather than aiortc's."""

from __future__ import annotations

import asyncio
import random
import struct

from aiortc import RTCPeerConnection
from aiortc.rate import RateCounter
from aiortc.rtp import RtpPacket

from media.aiortc.guard import check_instance_hooks
from media.aiortc.srtp import MAX_PLAINTEXT
from media.packets import Inbound, RateWindow, parse_rtp
from media.publication import Publication
from media.router import RoomRouter
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.media.conftest import publish


def _packet(*, csrcs: int = 0, extension: bytes = b"", padding: int = 0, payload: bytes = b"payload") -> bytes:
    first = 0x80 | (0x10 if extension else 0) | (0x20 if padding else 0) | csrcs
    data = struct.pack("!BBHII", first, 0x80 | 96, 65535, 0xFFFFFFFF, 1234) + b"\x00\x00\x00\x07" * csrcs + extension
    data += payload
    if padding:
        data += b"\x00" * (padding - 1) + bytes([padding])
    return data


def test_the_parse_reads_abs_send_time_and_audio_level_from_a_one_byte_block() -> None:
    # mid "0" (id 1), abs-send-time (id 3), audio level (id 5), padding to 12 bytes
    block = b"\x10" + b"0" + b"\x32\x12\x34\x56" + b"\x50\xaa" + b"\x00\x00\x00\x00"
    data = _packet(extension=b"\xbe\xde\x00\x03" + block, csrcs=2, padding=4)
    parsed = parse_rtp(data, 3, 5)
    assert parsed == (96, 1, 65535, 0xFFFFFFFF, 1234, b"payload", 4, 0x123456, (True, 0x2A))
    reference = RtpPacket.parse(data)
    assert (reference.payload, reference.padding_size, reference.marker) == (parsed[5], parsed[6], parsed[1])


def test_the_parse_reads_a_two_byte_block_and_skips_other_profiles() -> None:
    block = b"\x03\x03\x12\x34\x56" + b"\x05\x01\x0a" + b"\x00\x00\x00\x00"  # 12 bytes
    assert parse_rtp(_packet(extension=b"\x10\x00\x00\x03" + block), 3, 5)[7:] == (0x123456, (False, 10))
    assert parse_rtp(_packet(extension=b"\xab\xcd\x00\x01\xde\xad\xbe\xef"), 3, 5)[5:] == (b"payload", 0, None, None)


def test_the_parse_refuses_malformed_packets() -> None:
    assert parse_rtp(b"\x80\x60\x00", 3, 5) is None  # shorter than a header
    assert parse_rtp(b"\x40" + _packet()[1:], 3, 5) is None  # version 1
    assert parse_rtp(_packet(extension=b"\xbe\xde\x00\x09"), 3, 5) is None  # block longer than the packet
    assert parse_rtp(_packet(payload=b"ab", padding=0)[:-2] + b"\x00\x09", 3, 5) is not None
    bad_padding = bytearray(_packet(payload=b"ab", padding=1))
    bad_padding[0] |= 0x20
    bad_padding[-1] = 200
    assert parse_rtp(bytes(bad_padding), 3, 5) is None


def test_the_rate_window_gives_the_figures_of_aiortcs_rate_counter() -> None:
    rng = random.Random(6)
    for _ in range(20):
        theirs, ours = RateCounter(1000, 8000), RateWindow(1000, 8000)
        now = rng.randint(0, 10**9)
        for _ in range(2000):
            now += rng.choice((0, 0, 1, 2, 5, 33, 200, 1500))
            if rng.random() < 0.01:
                theirs.reset()
                ours.reset()
            assert theirs.rate(now) == ours.rate(now)
            size = rng.randint(50, 1300)
            theirs.add(size, now)
            ours.add(size, now)
            assert theirs.rate(now) == ours.rate(now)


async def _wait_packets(publication: Publication, arrived: asyncio.Event, count: int) -> None:
    while publication.packets < count:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 10)


async def _watched_publication(router: RoomRouter) -> tuple[RTCPeerConnection, Publication, asyncio.Event]:
    """A live publication whose every packet sets the returned event, once 5 have arrived."""
    client, publications = await publish(router, "county01", [video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1))])
    publication = publications[0]
    arrived = asyncio.Event()
    forward = publication._on_packet

    def on_packet(ssrc: int, inbound: Inbound, arrival_ms: int) -> None:
        forward(ssrc, inbound, arrival_ms)
        arrived.set()

    publication._on_packet = on_packet  # type: ignore[method-assign]
    publication.set_upstream_repair(True)  # taps again, now through on_packet
    await _wait_packets(publication, arrived, 5)
    return client, publication, arrived


async def test_a_publishers_packets_bypass_aiortcs_receive_path_once_routed(router: RoomRouter) -> None:
    client, publication, arrived = await _watched_publication(router)
    receiver = publication._receiver
    check_instance_hooks(receiver, None)
    slow: list[int] = []
    aiortc_path = receiver._handle_rtp_packet

    async def counting(packet: RtpPacket, arrival_time_ms: int) -> None:
        slow.append(packet.sequence_number)
        await aiortc_path(packet, arrival_time_ms)

    receiver._handle_rtp_packet = counting  # type: ignore[method-assign]
    before = publication.packets
    await _wait_packets(publication, arrived, before + 30)
    assert len(slow) <= 2  # only packets queued before their SSRC was routed
    await client.close()


async def test_subscribers_packets_bypass_aiortcs_send_path_once_connected(router: RoomRouter, make_subscriber) -> None:
    client, publications = await publish(router, "county01", [video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1))])
    video = publications[0]
    seat = make_subscriber("seat", lean=True)
    seat.peer.subscribe(video)
    await seat.wait_packets(lambda: len(seat.packets.get(video.id, [])) > 5)
    dtls = seat.peer.pc.getSenders()[0].transport
    through_aiortc: list[bytes] = []
    aiortc_path = dtls._send_rtp

    async def counting(data: bytes) -> None:
        through_aiortc.append(data)
        await aiortc_path(data)

    dtls._send_rtp = counting  # type: ignore[method-assign]
    before = len(seat.packets[video.id])
    await seat.wait_packets(lambda: len(seat.packets[video.id]) > before + 30)
    assert [d for d in through_aiortc if not 191 < d[1] < 224] == []  # only RTCP (sender reports) goes through aiortc
    out = video.subscriptions[0]._out
    assert out.failures == 0
    # A packet too long for the send buffer is refused and counted, and nothing breaks.
    assert out.send_rtp(96, 1, 2, 3, bytes(MAX_PLAINTEXT), False) == 0
    assert out.failures == 1
    count = len(seat.packets[video.id])
    await seat.wait_packets(lambda: len(seat.packets[video.id]) > count + 10)
    await client.close()


async def test_tampered_and_replayed_packets_are_dropped_on_the_lean_path(router: RoomRouter, caplog) -> None:
    client, publication, arrived = await _watched_publication(router)
    connection = publication._receiver.transport.transport._connection
    seen: list[bytes] = []
    lean = connection.data_received

    def capture(data: bytes, component: int) -> None:
        if 127 < data[0] < 192 and not 191 < data[1] < 224:
            seen.append(data)
        lean(data, component)

    connection.data_received = capture
    await _wait_packets(publication, arrived, publication.packets + 3)
    packet = seen[-1]
    before = publication.packets
    connection.data_received = lean
    lean(packet[:-1] + bytes([packet[-1] ^ 0xFF]), 1)  # authentication tag broken
    lean(packet, 1)  # a replay
    lean(packet[:20], 1)  # truncated
    assert publication.packets == before
    assert "lean receive failed" not in caplog.text
    await _wait_packets(publication, arrived, before + 5)  # and the stream goes on
    await client.close()
