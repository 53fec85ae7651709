"""SDP offers into the publisher path under fuzzing: `/ws` publish_offer and `POST /whip/{room}` of
the real server in this process, with mutated real offers.

Seeds: aiortc's own offer (made here), and the offers Chromium 156 and FFmpeg 9.0.2's WHIP muxer
actually sent (tests/fuzz/corpus). Mutations drop, repeat, swap and cut lines, put in the
malformed rtpmap/fmtp/ssrc/extmap/fingerprint/ICE/m= lines the fuzzers of Janus and libwebrtc
found bugs with, repeat m-sections up to the byte limit, and change the line separators. Each
offer is answered or refused with a clear 4xx or wire error, never a 500 or "internal", within a
bounded time, and leaves no peer connection, participant or task behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from aiortc import RTCPeerConnection
from hypothesis import event, example, given
from hypothesis import strategies as st

from server.app import build_services, create_app
from server.config import DEFAULT_CONFIG_PATH, load_config
from server.services import Services
from server.store import MemoryStore
from signaling.codec import encode, parse_server
from signaling.messages import Error, Hello, Leave, Ping, Pong, PublishAnswer, PublishOffer

from .conftest import CORPUS, fuzz_settings

SECRET = b"fuzz-secret-" + b"0" * 40
ROOM = "consultation"
PER_OFFER = 5.0  # seconds: an answer or a refusal comes within this, whatever the offer
LINGER = 5.0  # seconds: what the server started for an offer has ended within this after it is gone
MAX_SDP_BYTES = 32768  # the configured limit (checked in the fixture)

# Lines of the kinds that broke SDP parsers in Janus's and libwebrtc's fuzzers: numbers that are
# not numbers or out of range, missing values, repeated or dangling ids, unknown directions.
HOSTILE_LINES = (
    "a=rtpmap:96 VP8/abc", "a=rtpmap:96", "a=rtpmap:abc VP8/90000", "a=rtpmap:300 VP8/90000", "a=rtpmap:96 VP8/0",
    "a=rtpmap:96 /90000", "a=rtpmap:111 opus/48000/abc", "a=rtpmap:96 VP8/90000/2/9", "a=rtpmap:-1 VP8/90000",
    "a=fmtp:96", "a=fmtp:97 apt=abc", "a=fmtp:97 apt=9999", "a=fmtp:abc x=y", "a=fmtp:96 ;;;==;",
    "a=fmtp:106 profile-level-id=zzzzzz;packetization-mode=x", "a=fmtp:106 profile-level-id=",
    "a=fmtp:111 minptime=-5;useinbandfec=2", "a=rtcp-fb:96", "a=rtcp-fb:abc nack", "a=rtcp-fb:* nack pli",
    "a=ssrc:abc cname:x", "a=ssrc:99999999999 cname:x", "a=ssrc:-1 cname:x", "a=ssrc:1", "a=ssrc:1 ",
    "a=ssrc-group:FID", "a=ssrc-group:FID 1", "a=ssrc-group:FID abc def", "a=ssrc-group:FID 1 2 3 4 5",
    "a=ssrc-group:SIM 1 2 3", "a=ssrc-group:FID 4294967296 1",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid", "a=extmap:15 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:256 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "a=extmap:abc urn:x", "a=extmap:1/bogus urn:x",
    "a=extmap:1", "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=fingerprint:sha-256 ZZ", "a=fingerprint:sha-256", "a=fingerprint:md5 00:11", "a=fingerprint:", "a=fingerprint:sha-512 00",
    "a=setup:bogus", "a=setup:", "a=setup:active", "a=setup:holdconn",
    "a=ice-ufrag:", "a=ice-pwd:", "a=ice-ufrag:x", "a=ice-options:ice2", "a=ice-lite",
    "a=candidate:garbage", "a=candidate:1 1 udp abc 1.2.3.4 5 typ host", "a=candidate:1 1 udp 1 999.1.1.1 70000 typ host",
    "a=candidate:1 1 tcp 1 1.2.3.4 5 typ relay raddr x rport y", "a=candidate:1 2 udp 1 ::1 9 typ host",
    "a=end-of-candidates", "a=mid:", "a=mid:0", "a=mid:1", "a=group:BUNDLE 0 0 9 9", "a=group:BUNDLE", "a=group:LS 0 1",
    "a=rid:q send pt=999", "a=rid:", "a=rid:q recv", "a=simulcast:send ;;;", "a=simulcast:recv q;h", "a=simulcast:",
    "a=msid:", "a=msid-semantic:", "a=sctpmap:5000 webrtc-datachannel 1024", "a=sctp-port:abc", "a=max-message-size:-1",
    "m=video abc UDP/TLS/RTP/SAVPF 96", "m=video 9 UDP/TLS/RTP/SAVPF", "m=video 9 RTP/AVP 96", "m=video 0 UDP/TLS/RTP/SAVPF 96",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "m=video 9 UDP/TLS/RTP/SAVPF 96 96 96", "m=", "m=text 9 RTP/AVP 0",
    "m=bogus 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 300", "c=IN IP4 ", "c=IN IP6 zzz", "c=IN IP4 0.0.0.0/127",
    "b=AS:-5", "b=TIAS:abc", "a=rtcp:abc", "a=rtcp:9 IN IP4", "o=- abc 2 IN IP4 127.0.0.1", "s=", "t=abc", "v=1",
    "a=recvonly", "a=inactive", "a=sendrecv", "a=sendonly", "a=extmap-allow-mixed", "a=", "=", "\x00", "a=rtcp-mux-only",
    "a=rtcp-rsize", "a=x-google-flag:conference", "a=" + "x" * 3000, "a=rtpmap:96 " + "V" * 2000 + "/90000",
    "a=framerate:1e309", "a=imageattr:96 send [x=[0-99999999]]", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x",
)
SEPARATORS = ("\r\n", "\n", "\r", "\x85", "\u2028", "\r\r\n")


@dataclass(frozen=True)
class Offer:
    """A seed offer and the edits made to it; `sdp()` builds the text (Hypothesis shows this short form)."""

    seed: str
    edits: tuple[tuple[str, int, int], ...] = ()
    separator: str = "\r\n"

    def sdp(self, seeds: dict[str, str]) -> str:
        """The edited offer."""
        lines = seeds[self.seed].replace("\r\n", "\n").rstrip("\n").split("\n")
        for how, at, value in self.edits:
            at %= len(lines) or 1
            if how == "drop" and lines:
                del lines[at]
            elif how == "dup" and lines:
                lines.insert(at, lines[at])
            elif how == "swap" and lines:
                other = value % len(lines)
                lines[at], lines[other] = lines[other], lines[at]
            elif how == "hostile" and lines:
                lines[at] = HOSTILE_LINES[value % len(HOSTILE_LINES)]
            elif how == "insert":
                lines.insert(at, HOSTILE_LINES[value % len(HOSTILE_LINES)])
            elif how == "garble" and lines:
                name, _, _ = lines[at].partition(":")
                lines[at] = f"{name}:{_GARBAGE[value % len(_GARBAGE)]}"
            elif how == "sections":
                lines = _more_sections(lines, value % 64)
        text = self.separator.join(lines) + self.separator
        for how, at, _ in self.edits:
            if how == "truncate":
                text = text[: at % (len(text) + 1)]
        return text


_GARBAGE = ("", " ", "-1", "0", "4294967296", "1e999", "NaN", "abc def", ":::", "x" * 300, "\t", "96 VP8/90000 extra",
            "é", "\ufffd", "0x10", "99999999999999999999")


def _more_sections(lines: list[str], copies: int) -> list[str]:
    """The last m-section repeated `copies` times with fresh mids, up to a little over the byte limit."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if not starts:
        return lines
    section = lines[starts[-1]:]
    size = sum(len(line) + 2 for line in lines)
    for n in range(copies):
        if size > MAX_SDP_BYTES + 4096:
            break
        lines = lines + [f"a=mid:x{n}" if line.startswith("a=mid:") else line for line in section]
        size += sum(len(line) + 2 for line in section)
    return lines


EDIT = st.tuples(
    st.sampled_from(["drop", "dup", "swap", "hostile", "insert", "garble", "truncate", "sections"]),
    st.integers(0, 10_000), st.integers(0, 10_000),
)


def offers(seeds: list[str]) -> st.SearchStrategy[Offer]:
    """Seed offers with up to 6 edits and a line separator."""
    return st.builds(
        Offer, st.sampled_from(seeds), st.lists(EDIT, max_size=6).map(tuple),
        st.sampled_from(SEPARATORS) | st.just("\r\n"),
    )


# --- the server ----------------------------------------------------------------------------------


class FuzzServer:
    """The whole server in this process, a client session, and the offers to start from."""

    def __init__(self, url: str, services: Services, http: aiohttp.ClientSession, seeds: dict[str, str]) -> None:
        self.url = url
        self.services = services
        self.http = http
        self.seeds = seeds
        self.tasks = asyncio.all_tasks()

    def __repr__(self) -> str:
        return f"FuzzServer({self.url})"

    def token(self, identity: str) -> str:
        """A device token that may publish in ROOM."""
        return self.services.tokens.issue_device_token(identity=identity, site="mobile01", room=ROOM, grants=("publish",), ttl=600)

    async def settled(self) -> None:
        """Wait until every session has ended, then check nothing is left behind."""
        await self.services.sessions.wait_empty(10)
        leftover = self.leftover_tasks()
        if leftover:
            await asyncio.wait(leftover, timeout=LINGER)
        rooms = self.services.rooms.rooms.values()
        assert sum(room.router.peer_count for room in rooms) == 0
        assert sum(len(room.router.publications) for room in rooms) == 0
        assert sum(len(room.participants) for room in rooms) == 0
        assert not self.leftover_tasks(), sorted(t.get_name() for t in self.leftover_tasks())

    def publications(self) -> int:
        """Publications in every room now."""
        return sum(len(room.router.publications) for room in self.services.rooms.rooms.values())

    def leftover_tasks(self) -> set[asyncio.Task[object]]:
        """Tasks started since the server started, but the test's own and the HTTP connections' (keep-alive)."""
        return {
            task for task in asyncio.all_tasks() - self.tasks
            if task is not asyncio.current_task() and task.get_coro().__qualname__ != "RequestHandler.start"  # type: ignore[union-attr]
        }


async def _aiortc_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture
async def fuzz_server(aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: object) -> AsyncIterator[FuzzServer]:
    """The server over the demo configuration, without rate limits (the fuzzer is one fast client)."""
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    server = msgspec.structs.replace(config.server, data_dir=str(tmp_path),
                                     rate_limits=msgspec.structs.replace(config.server.rate_limits, enabled=False))
    services = build_services(msgspec.structs.replace(config, server=server), secret=SECRET, store=MemoryStore(node_id="fuzz"))
    assert services.limits.max_sdp_bytes == MAX_SDP_BYTES
    test_server = await aiohttp_server(create_app(services))
    seeds = {path.name: path.read_text() for path in sorted(CORPUS.glob("*.sdp"))}
    seeds["aiortc-1.16.0"] = await _aiortc_offer()
    async with aiohttp.ClientSession() as http:
        yield FuzzServer(str(test_server.make_url("")).rstrip("/"), services, http, seeds)


SEEDS = sorted([path.name for path in CORPUS.glob("*.sdp")] + ["aiortc-1.16.0"])


# --- /ws publish_offer -----------------------------------------------------------------------------


async def _publish_over_ws(fuzz: FuzzServer, sdp: str) -> PublishAnswer | Error:
    async with fuzz.http.ws_connect(fuzz.url + "/ws") as ws:
        await ws.send_str(encode(Hello(id="h", room=ROOM, token=fuzz.token("fuzz-ws"))))
        await _reply(ws, "h")
        await ws.send_str(encode(PublishOffer(id="p", sdp=sdp)))
        reply = await _reply(ws, "p")
        assert isinstance(reply, PublishAnswer | Error), reply
        assert fuzz.publications() <= fuzz.services.limits.max_media_lines
        await ws.send_str(encode(Ping(id="still-there")))
        assert isinstance(await _reply(ws, "still-there"), Pong)  # a bad offer does not end the session
        await ws.send_str(encode(Leave()))  # gone for good: no grace period holding its connections
        return reply


async def _reply(ws: aiohttp.ClientWebSocketResponse, request_id: str) -> object:
    async def wait() -> object:
        async for raw in ws:
            message = parse_server(raw.data)
            # A message too large to parse is refused without its id.
            if message.id == request_id or (isinstance(message, Error) and message.id is None):
                return message
        raise AssertionError(f"socket closed before the reply to {request_id}")

    return await asyncio.wait_for(wait(), PER_OFFER)


@fuzz_settings(300, deadline_ms=None)
@given(offer=offers(SEEDS))
@example(offer=Offer("chromium-156-publish-simulcast.sdp"))
@example(offer=Offer("ffmpeg-9.0.2-whip.sdp"))
@example(offer=Offer("aiortc-1.16.0", (("hostile", 9, HOSTILE_LINES.index("c=IN IP6 zzz")),)))
# The two findings of this suite: m-lines behind CR or Unicode line breaks escaped the track limit,
# and a BUNDLE group naming a mid no m-section has left that m-section without a transport.
@example(offer=Offer("aiortc-1.16.0", (("sections", 0, 20),), separator="\r"))
@example(offer=Offer("aiortc-1.16.0", (("insert", 3, HOSTILE_LINES.index("a=group:BUNDLE 0 0 9 9")),)))
# ...and in the longer runs: without its m-line, a section's mid falls to the session level, and
# without a=setup the DTLS role is unknown; both answered "internal" and left the connection behind.
@example(offer=Offer("ffmpeg-9.0.2-whip.sdp", (("drop", 7, 0),)))
@example(offer=Offer("ffmpeg-9.0.2-whip.sdp", (("drop", 12, 0),)))
async def test_a_publish_offer_over_ws_is_answered_or_refused_cleanly(fuzz_server: FuzzServer, offer: Offer) -> None:
    sdp = offer.sdp(fuzz_server.seeds)
    started = time.perf_counter()
    reply = await _publish_over_ws(fuzz_server, sdp)
    assert time.perf_counter() - started < PER_OFFER
    event(f"ws: {reply.code if isinstance(reply, Error) else 'answered'}")
    if isinstance(reply, Error):
        assert reply.code != "internal" and reply.message, reply
    await fuzz_server.settled()


# --- WHIP ----------------------------------------------------------------------------------------


@fuzz_settings(300, deadline_ms=None)
@given(offer=offers(SEEDS))
@example(offer=Offer("ffmpeg-9.0.2-whip.sdp"))
@example(offer=Offer("chromium-156-publish-simulcast.sdp", separator="\n"))
@example(offer=Offer("aiortc-1.16.0", (("sections", 0, 20),), separator="\u2028"))
@example(offer=Offer("aiortc-1.16.0", (("insert", 3, HOSTILE_LINES.index("a=group:BUNDLE 0 0 9 9")),)))
async def test_a_whip_offer_is_answered_or_refused_with_a_4xx(fuzz_server: FuzzServer, offer: Offer) -> None:
    sdp = offer.sdp(fuzz_server.seeds)
    body = sdp.encode("utf-8", "surrogatepass")
    headers = {"Authorization": f"Bearer {fuzz_server.token('fuzz-whip')}", "Content-Type": "application/sdp"}
    started = time.perf_counter()
    async with fuzz_server.http.post(f"{fuzz_server.url}/whip/{ROOM}", data=body, headers=headers) as response:
        text = await response.text()
        location = response.headers.get("Location")
    assert time.perf_counter() - started < PER_OFFER
    event(f"whip: {response.status} {text.split(':')[0] if response.status != 201 else 'answered'}")
    assert response.status == 201 or 400 <= response.status < 500, (response.status, text)
    if response.status == 201:
        assert location is not None and text.startswith("v=0")
        assert fuzz_server.publications() <= fuzz_server.services.limits.max_media_lines
        async with fuzz_server.http.delete(fuzz_server.url + location, headers=headers) as deleted:
            assert deleted.status == 200
    else:
        assert text.split(":")[0] not in ("internal", "500"), text
    await fuzz_server.settled()
