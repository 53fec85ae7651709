"""Lip sync: the sender reports a subscriber gets map NTP to RTP time monotonically, at each
stream's clock rate, and consistently between a publisher's audio and video."""

from __future__ import annotations

import asyncio
import struct
import time

from aiortc.rtp import RtcpPacket, RtcpSrPacket, RtpPacket

from media.aiortc.client import tap_receiver
from media.aiortc.receive import tap_sender_reports
from media.aiortc.reports import sdes_cname_chunk
from media.router import RoomRouter
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from synthetic.load import KeyframeLoopTrack
from tests.media.conftest import publish

NTP_UNIT = 2**32


async def test_subscriber_sender_reports_keep_audio_and_video_in_sync(router: RoomRouter, make_subscriber) -> None:
    video_track = KeyframeLoopTrack(encode_video_loop("VP8", width=320, height=180, seconds=1))
    client, publications = await publish(router, "county01", [video_track, audio_loop_track(encode_opus_loop(seconds=1))])
    video = next(p for p in publications if p.kind == "video")
    audio = next(p for p in publications if p.kind == "audio")
    subscriber = make_subscriber("mayor", lean=True)
    for publication in publications:
        subscriber.peer.subscribe(publication)
    await subscriber.wait_track(video.id)
    await subscriber.wait_track(audio.id)

    reports: dict[int, list[tuple[int, int]]] = {}
    latest: dict[int, tuple[float, int]] = {}  # ssrc -> (arrival, rtp timestamp) of the newest packet
    got_reports = asyncio.Event()
    for receiver in subscriber.pc.getReceivers():
        tap_sender_reports(receiver, lambda ssrc, ntp, rtp: (reports.setdefault(ssrc, []).append((ntp, rtp)), got_reports.set()))

    def on_packet(packet: RtpPacket, arrival_ms: int) -> None:
        latest[packet.ssrc] = (time.time(), packet.timestamp)

    for receiver in subscriber.pc.getReceivers():
        tap_receiver(receiver, on_packet)

    async def enough() -> None:
        while len(reports) < 2 or min(len(r) for r in reports.values()) < 3:
            got_reports.clear()
            await got_reports.wait()

    await asyncio.wait_for(enough(), 15)
    # Each stream: NTP and RTP advance together at the stream's clock rate.
    rates = {}
    for ssrc, pairs in reports.items():
        (ntp0, rtp0), (ntp1, rtp1) = pairs[-2], pairs[-1]
        assert ntp1 > ntp0, "NTP time runs forward"
        seconds = (ntp1 - ntp0) / NTP_UNIT
        rates[ssrc] = ((rtp1 - rtp0) & 0xFFFFFFFF) / seconds
    assert sorted(round(rate / 1000) for rate in rates.values()) == [48, 90], rates
    # Both streams: the media that arrives together maps to the same wall-clock time (lip sync).
    capture = {}
    for ssrc, pairs in reports.items():
        ntp, rtp = pairs[-1]
        clock_rate = 90000 if rates[ssrc] > 70000 else 48000
        arrival, timestamp = latest[ssrc]
        offset = ((timestamp - rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        capture[ssrc] = (ntp / NTP_UNIT + offset / clock_rate, arrival)
    (cap_a, arr_a), (cap_b, arr_b) = capture.values()
    skew = (cap_a - cap_b) - (arr_a - arr_b)
    assert abs(skew) < 0.08, f"audio/video sender reports disagree by {skew * 1000:.0f} ms"
    await client.close()


async def test_a_connections_sender_reports_travel_compounded_and_still_give_the_round_trip(router: RoomRouter, make_subscriber) -> None:
    video = encode_video_loop("VP8", width=160, height=96, seconds=1)
    tracks = [video_loop_track(video), video_loop_track(video), audio_loop_track(encode_opus_loop(seconds=1))]
    client, publications = await publish(router, "county01", tracks)
    subscriber = make_subscriber("wall", lean=True)
    for publication in publications:
        subscriber.peer.subscribe(publication)
    for publication in publications:
        await subscriber.wait_track(publication.id)
    dtls = subscriber.pc.getReceivers()[0].transport
    datagrams: list[list[int]] = []  # the SSRCs each RTCP datagram reports as a sender
    handle = dtls._handle_rtcp_data

    async def counting(data: bytes) -> None:
        senders = [p.ssrc for p in RtcpPacket.parse(data) if isinstance(p, RtcpSrPacket)]
        if senders:
            datagrams.append(senders)
        await handle(data)

    dtls._handle_rtcp_data = counting  # type: ignore[method-assign]
    await asyncio.sleep(4)
    server_senders = [s.sender for s in subscriber.peer.pc.getTransceivers()]
    ssrcs = {sender._ssrc for sender in server_senders}
    assert len(datagrams) >= 2
    assert all(sorted(d) == sorted(ssrcs) for d in datagrams), (datagrams, ssrcs)  # every sender, one datagram
    for sender in server_senders:  # the subscriber's receiver reports answer these reports: a round trip
        remote = [s for s in (await sender.getStats()).values() if s.type == "remote-inbound-rtp"]
        assert remote and remote[0].roundTripTime is not None and remote[0].roundTripTime < 0.5
    await client.close()


def _read_sdes_cnames(chunks: bytes, count: int) -> list[tuple[int, str]]:
    """An RFC 3550 6.5 reader: items up to a null octet, then padding to the chunk's 32-bit end."""
    found, pos = [], 0
    for _ in range(count):
        assert pos % 4 == 0, "chunks start on a 32-bit boundary"
        ssrc = struct.unpack_from("!L", chunks, pos)[0]
        pos += 4
        cname = ""
        while chunks[pos] != 0:
            kind, length = chunks[pos], chunks[pos + 1]
            if kind == 1:
                cname = chunks[pos + 2 : pos + 2 + length].decode()
            pos += 2 + length
        pos = (pos // 4 + 1) * 4  # the null octet(s) up to the next boundary
        found.append((ssrc, cname))
    assert pos == len(chunks)
    return found


def test_sdes_chunks_are_padded_one_by_one_whatever_the_cname_length() -> None:
    sources = [(1000 + n, "c" * n) for n in range(1, 9)] + [(7, "{0f7c4a52-9d8e-4b1a-a3c2-5e6f7a8b9c0d}")]
    chunks = b"".join(sdes_cname_chunk(ssrc, cname) for ssrc, cname in sources)
    assert _read_sdes_cnames(chunks, len(sources)) == sources
