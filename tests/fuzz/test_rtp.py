"""RTP and RTCP datagrams into a live publisher connection under fuzzing.

A real aiortc client publishes into the relay; the fuzzer then sends, on the same UDP pair, the
packets the fuzzers of Janus and libwebrtc found bugs with: truncated headers, CSRC counts larger
than the packet, extension blocks whose length runs past the end, padding lengths larger than the
packet, RTCP length fields that do not add up, compound packets of every type, and plain garbage
(an empty datagram among it). RTP and RTCP are protected with the client's own SRTP keys, so they
pass authentication and reach the lean receive path, aiortc's parsers and the relay's taps. No
input ends the connection or logs an error, each is handled within a bounded time, and the
client's real video still arrives afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket
from hypothesis import event, given
from hypothesis import strategies as st

from media.aiortc.guard import EXTENSION_IDS
from media.aiortc.send import sender_extensions_map
from media.counters import RelayCounters
from media.packets import parse_rtp
from media.publication import Publication
from media.router import RoomRouter
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.media.conftest import publish

from .conftest import fuzz_settings

HOSTILE_SSRC = 0x0BADF00D
SETTLE = 0.02  # seconds given to the server to read what one example sent
RTCP_TYPES = (192, 195, 200, 201, 202, 203, 204, 205, 206, 207, 210)


# --- packets -------------------------------------------------------------------------------------


@st.composite
def rtp_packets(draw: st.DrawFn, *, payload_type: int = 96, mid_id: int = 1, abs_id: int = 3, level_id: int = 5) -> bytes:
    """One RTP packet, mostly well-formed at the start, with hostile lengths and counts."""
    version = draw(st.sampled_from((2, 2, 2, 2, 0, 1, 3)))
    csrcs = draw(st.integers(0, 15))
    csrcs_present = draw(st.integers(0, csrcs))
    extension = draw(st.booleans())
    padding = draw(st.booleans())
    marker = draw(st.integers(0, 1))
    pt = draw(st.sampled_from((payload_type, payload_type, payload_type, 0, 127, 72, 77)))
    header = struct.pack("!BBHII", version << 6 | padding << 5 | extension << 4 | csrcs, marker << 7 | pt,
                         draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF)), HOSTILE_SSRC)
    data = header + b"\x00\x00\x00\x07" * csrcs_present
    if extension:
        profile = draw(st.sampled_from((0xBEDE, 0xBEDE, 0x1000, 0x1001, 0x100F, 0xABCD, 0)))
        ids = st.sampled_from((mid_id, abs_id, level_id, 0, 2, 4, 14, 15, 255))
        elements = b""
        for _ in range(draw(st.integers(0, 5))):
            ext_id, size = draw(ids), draw(st.integers(0, 17))
            if profile == 0xBEDE:
                elements += bytes([(ext_id & 0x0F) << 4 | max(size - 1, 0) & 0x0F]) + bytes(size)
            else:
                elements += bytes([ext_id & 0xFF, size]) + bytes(size)
        words = (len(elements) + 3) // 4
        length = draw(st.sampled_from((words, words, words + 1, max(words - 1, 0), 0, 0xFFFF)))
        data += struct.pack("!HH", profile, length) + elements.ljust(4 * words, b"\x00")
    data += draw(st.binary(max_size=64))
    if padding:
        data += draw(st.sampled_from((b"\x01", b"\x04", b"\x00", b"\xff", b"\x00\x00\x00\x40")))
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def rtcp_packets(draw: st.DrawFn, *, ssrcs: tuple[int, ...]) -> bytes:
    """A compound RTCP packet of 1 to 4 parts whose counts and lengths may not add up."""
    compound = b""
    for _ in range(draw(st.integers(1, 4))):
        packet_type = draw(st.sampled_from(RTCP_TYPES))
        count = draw(st.integers(0, 31))
        sender = draw(st.sampled_from(ssrcs))
        if packet_type == 206 and draw(st.booleans()):
            count = 15  # REMB: "REMB", a number of SSRCs and exponent/mantissa
            body = struct.pack("!II", sender, 0) + b"REMB" + bytes([draw(st.integers(0, 255))]) + draw(st.binary(max_size=12))
        elif packet_type == 205:
            count = draw(st.sampled_from((1, 1, 15, 3)))  # NACK
            body = struct.pack("!II", sender, draw(st.sampled_from(ssrcs))) + draw(st.binary(max_size=16))
        elif packet_type == 202:  # SDES: chunks with item lengths that run past the end
            body = struct.pack("!I", sender) + bytes([1, draw(st.integers(0, 255))]) + draw(st.binary(max_size=16))
        elif packet_type == 203:  # BYE with a reason length
            body = struct.pack("!I", sender) + bytes([draw(st.integers(0, 255))]) + draw(st.binary(max_size=8))
        else:
            body = struct.pack("!I", sender) + draw(st.binary(max_size=48))
        padding = draw(st.integers(0, 3)) == 0
        if padding:
            body += bytes([draw(st.integers(0, 255))])
        words = (len(body) + 3) // 4
        body = body.ljust(4 * words, b"\x00")
        length = draw(st.sampled_from((words, words, words, words + 1, max(words - 1, 0), 0, 0xFFFF)))
        version = draw(st.sampled_from((2, 2, 2, 1)))
        compound += struct.pack("!BBH", version << 6 | padding << 5 | count, packet_type, length) + body
    if draw(st.integers(0, 3)) == 0:
        compound = compound[: draw(st.integers(8, max(len(compound), 8)))]
    return compound


garbage = st.one_of(
    st.just(b""), st.binary(min_size=1, max_size=3), st.binary(max_size=200),
    st.builds(lambda first, rest: bytes([first]) + rest, st.integers(0, 255), st.binary(max_size=120)),
)


@dataclass(frozen=True)
class Datagram:
    """One datagram to send: `kind` says whether it is protected as RTP, as RTCP, or sent raw."""

    kind: str
    data: bytes


def datagrams(ssrcs: tuple[int, ...]) -> st.SearchStrategy[list[Datagram]]:
    one = st.one_of(
        rtp_packets().map(lambda d: Datagram("rtp", d)),
        rtcp_packets(ssrcs=ssrcs).map(lambda d: Datagram("rtcp", d)),
        garbage.map(lambda d: Datagram("raw", d)),
    )
    return st.lists(one, min_size=1, max_size=8)


# --- the parse alone -----------------------------------------------------------------------------


# A parse takes microseconds; the deadline catches one that goes pathological (a loop over a length
# field), with room for a pause of the machine (a garbage collection, a busy neighbour: 92 ms seen).
@fuzz_settings(3000, deadline_ms=1000)
@given(data=rtp_packets())
def test_the_lean_parse_refuses_or_agrees_with_aiortc(data: bytes) -> None:
    parsed = parse_rtp(data, 3, 5)
    try:
        reference = RtpPacket.parse(data)
    except (ValueError, struct.error):
        reference = None
    event(f"lean: {'parsed' if parsed else 'refused'}, aiortc: {'parsed' if reference else 'refused'}")
    if parsed is None or reference is None:
        return
    payload_type, marker, seq, ts, ssrc, payload, padding, _abs, _level = parsed
    assert (payload_type, marker, seq, ts, ssrc) == (
        reference.payload_type, reference.marker, reference.sequence_number, reference.timestamp, reference.ssrc)
    assert (payload, padding) == (reference.payload, reference.padding_size)


# --- a live connection ---------------------------------------------------------------------------


@dataclass
class Live:
    """A publisher connection into the relay, and how to send on its UDP pair."""

    client: RTCPeerConnection
    publication: Publication
    ssrcs: tuple[int, ...]
    outsider: socket.socket

    def send(self, datagram: Datagram) -> bool:
        """Send one datagram to the server; False if the client's SRTP refused to protect it."""
        dtls = self.client.getTransceivers()[0].sender.transport
        data = datagram.data
        try:
            if datagram.kind == "rtp":
                data = dtls._tx_srtp.protect(data)
            elif datagram.kind == "rtcp":
                data = dtls._tx_srtp.protect_rtcp(data)
        except Exception:  # noqa: BLE001 - pylibsrtp refuses what it cannot parse
            return False
        pair = dtls.transport._connection._nominated[1]
        if datagram.kind == "raw":
            # From another address, as anyone could send it; on a plain socket, since asyncio's
            # sendto() drops an empty datagram without a word.
            self.outsider.sendto(data, pair.remote_addr)
        else:
            pair.protocol.transport.sendto(data, pair.remote_addr)
        return True

    @property
    def server_transport_state(self) -> str:
        return str(self.publication._receiver.transport.state)


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    router = RoomRouter("fuzz", counters=RelayCounters())
    client, publications = await publish(router, "fuzz", [video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1))])
    publication = publications[0]
    for _ in range(200):
        if publication.packets > 5:
            break
        await asyncio.sleep(0.05)
    assert publication.packets > 5
    sender = client.getTransceivers()[0].sender
    ids = getattr(sender_extensions_map(sender), EXTENSION_IDS)
    # The hostile SSRC is routed to the publication by its mid, as aiortc routes a new SSRC:
    # from then on its packets take the lean receive path.
    mid = client.getTransceivers()[0].mid.encode()
    routed = struct.pack("!BBHII", 0x90, 96, 1, 0, HOSTILE_SSRC) + struct.pack("!HH", 0xBEDE, 1) + bytes(
        [ids.mid << 4 | len(mid) - 1]) + mid.ljust(3, b"\x00") + b"\x10\x02\x00"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outsider:
        live = Live(client, publication, (sender._ssrc, HOSTILE_SSRC, 1, 0), outsider)
        assert live.send(Datagram("rtp", routed))
        yield live
    await client.close()
    await router.close()


@fuzz_settings(150, deadline_ms=None)
@given(batch=datagrams((0, 1, HOSTILE_SSRC)))
async def test_hostile_datagrams_end_nothing_and_log_no_error(live: Live, batch: list[Datagram], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for datagram in batch:
        event(f"{datagram.kind}: {'sent' if live.send(datagram) else 'refused by SRTP'}")
    await asyncio.sleep(SETTLE)
    assert live.server_transport_state == "connected"
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    # ...and the client's real video still flows
    before = live.publication.packets
    for _ in range(100):
        if live.publication.packets > before:
            break
        await asyncio.sleep(0.01)
    assert live.publication.packets > before


async def test_an_empty_datagram_does_not_end_a_connection(live: Live) -> None:
    """The one unauthenticated input that ended any aiortc connection: anyone reaching the port can send it."""
    for _ in range(3):
        live.send(Datagram("raw", b""))
    await asyncio.sleep(0.2)
    assert live.server_transport_state == "connected"
    before = live.publication.packets
    await asyncio.sleep(0.5)
    assert live.publication.packets > before
