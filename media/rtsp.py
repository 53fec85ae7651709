"""`CameraFeed`: an IP camera pulled over RTSP and forwarded as one publication, never transcoded.

PyAV's demuxer (FFmpeg's RTSP client, TCP interleaved or UDP) runs in a thread of its own so the
event loop never blocks on the camera. Each access unit it hands over is split into NAL units and
packed as RTP (RFC 6184: single NAL, STAP-A, FU-A; aiortc's packer) on that thread, then fed to a
`Publication` on the loop, which forwards it like any publisher's packets. The camera's SPS and PPS
(usually only in its SDP, `sprop-parameter-sets`) go before every IDR frame, so any subscriber can
start decoding at any keyframe. An RTSP camera cannot be asked for a keyframe: a new subscriber is
sent the frames since the camera's last IDR at once (kept up to 4 s), and a subscriber's PLI is
answered by the camera's next IDR (cameras send one every GOP, typically 1-4 s).

The feed reconnects with exponential back-off while it is wanted; its publication lives as long as
the feed, so subscribers keep their track across reconnects and the picture resumes on the next
keyframe. H.265 is detected and flagged (`unsupported`): no subscriber connection here negotiates
it. The camera's URL carries its credentials: only `redact_url` / `redact` forms of it, and of any
error message that may quote it, ever leave this module.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import av
from aiortc.codecs.h264 import H264Encoder

from media.counters import RelayCounters
from media.packets import Inbound
from media.publication import CodecInfo, Publication
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)

CameraState = Literal["idle", "connecting", "live", "failed", "unsupported"]
Transport = Literal["tcp", "udp"]

H264_CODEC = CodecInfo(
    mime_type="video/H264",
    clock_rate=90000,
    parameters={"packetization-mode": "1", "level-asymmetry-allowed": "1", "profile-level-id": "42e01f"},
)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
OPEN_TIMEOUT = 10.0  # seconds to connect and read the camera's description
READ_TIMEOUT = 5.0  # seconds without a packet before the camera counts as gone
GOP_CACHE_SECONDS = 4.0  # cameras send a keyframe every 1-4 s
GOP_CACHE_PACKETS = 3000  # 4 s of a 6 Mbps main stream
_RTP_CLOCK = Fraction(1, 90000)
_AUD = 9
_SPS, _PPS, _IDR = 7, 8, 5
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]*@")


def redact_url(url: str) -> str:
    """The URL without its user name and password (`rtsp://***@host:554/path`), safe to show and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact(text: str, *secrets: str) -> str:
    """`text` (an error message, a log line) with any URL's credentials and each of `secrets` masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _CREDENTIALS.sub(r"\1***@", text)


@dataclass(frozen=True)
class CameraSource:
    """Where to pull a camera from; `url` may carry credentials and is never shown as it is."""

    url: str
    transport: Transport = "tcp"

    def __repr__(self) -> str:
        return f"CameraSource(url={redact_url(self.url)!r}, transport={self.transport!r})"


class Unsupported(Exception):
    """The camera sends a codec that cannot be forwarded here (H.265, MJPEG ...)."""


class _Stopped(Exception):
    """The feed was stopped while its thread was reading."""


class CameraFeed:
    """One camera as one video publication of `owner`; pulled while started, reconnecting with back-off."""

    def __init__(
        self,
        name: str,
        source: CameraSource,
        *,
        owner: str,
        counters: RelayCounters,
        on_state: Callable[[CameraFeed], None] = lambda feed: None,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.name = name
        self.source = source
        self.state: CameraState = "idle"
        self.reason = ""  # why it failed, redacted
        self.reconnects = 0
        self.frames = 0
        self.codec = ""  # what the camera sends ("h264", "hevc" ...), once known
        self._on_state = on_state
        self._backoff_max = backoff_max
        self._tasks = TaskGroup(f"camera:{name}")
        self.publication = Publication(
            owner=owner, kind="video", source="rtsp", codec=H264_CODEC, receiver=None, counters=counters, tasks=self._tasks,
        )
        # A camera cannot be asked for a keyframe: a new subscriber starts at once on the frames
        # since the last one, replayed (up to GOP_CACHE seconds), instead of waiting for the next.
        self.publication.gop_replay_age, self.publication.gop_replay_packets = GOP_CACHE_SECONDS, GOP_CACHE_PACKETS
        self._packer = H264Encoder()  # its `pack` packetizes without encoding
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._stop = threading.Event()
        self._idle = threading.Event()  # no thread holds the camera
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False

    @property
    def url(self) -> str:
        """The camera's URL as it may be shown: without credentials."""
        return redact_url(self.source.url)

    def start(self) -> None:
        """Start pulling (idempotent); runs until `close()`."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._tasks.spawn(self._run(), name="pull")

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stop.is_set():
            self._set_state("connecting", "")
            began = time.monotonic()
            try:
                await self._pull_in_thread()
                reason = "the camera ended the stream"
            except _Stopped:
                return
            except Unsupported as exc:
                self._set_state("unsupported", str(exc))
                reason = ""
            except Exception as exc:  # noqa: BLE001 - FFmpeg raises many kinds; each is a reason to retry
                reason = redact(f"{type(exc).__name__}: {exc}", self.source.url)
            if self._stop.is_set():
                return
            if reason:
                self._set_state("failed", reason)
            if time.monotonic() - began > 2 * delay and self.state != "unsupported":
                delay = BACKOFF_FIRST  # it was up for a while: this is a new outage, retry soon
            logger.warning("camera down name=%s url=%s state=%s reason=%s retry_in=%.0fs",
                           self.name, self.url, self.state, self.reason, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._backoff_max)
            self.reconnects += 1

    async def _pull_in_thread(self) -> None:
        """`_pull` in a thread of its own: never the loop's default executor, whose few workers
        (cores + 4) a handful of cameras would hold for good, starving the others and everything
        else that runs there."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish(error: BaseException | None) -> None:
            if done.done():  # the feed stopped waiting (closed)
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def target() -> None:
            error: BaseException | None = None
            try:
                self._pull()
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
                error = exc
            try:
                loop.call_soon_threadsafe(finish, error)
            except RuntimeError:  # the loop is gone (shutdown): nobody waits
                pass

        threading.Thread(target=target, name=f"camera:{self.name}", daemon=True).start()
        await done

    def _pull(self) -> None:
        """Open the camera and forward its access units until it fails or the feed stops (a thread)."""
        options = {"rtsp_transport": self.source.transport, "fflags": "nobuffer", "analyzeduration": "500000"}
        self._idle.clear()
        try:
            container = av.open(self.source.url, options=options, timeout=(OPEN_TIMEOUT, READ_TIMEOUT))
        except BaseException:
            self._idle.set()
            raise
        try:
            if not container.streams.video:
                raise Unsupported("no video stream")
            stream = container.streams.video[0]
            self.codec = stream.codec_context.name
            if self.codec == "hevc":
                raise Unsupported("H.265 unsupported: no subscriber here can take H.265 (set the camera to H.264)")
            if self.codec != "h264":
                raise Unsupported(f"{self.codec} unsupported: only H.264 is forwarded")
            parameter_sets = _parameter_sets(stream.codec_context.extradata or b"")
            loop = self._loop
            assert loop is not None
            last_pts = 0
            for packet in container.demux(stream):
                if self._stop.is_set():
                    raise _Stopped()
                if packet.size == 0:
                    continue
                if packet.pts is not None and packet.time_base is not None:
                    last_pts = int(packet.pts * packet.time_base / _RTP_CLOCK)
                nals = [n for n in _split(bytes(packet)) if n and n[0] & 0x1F != _AUD]
                types = {n[0] & 0x1F for n in nals}
                if _SPS in types:
                    parameter_sets = [n for n in nals if n[0] & 0x1F in (_SPS, _PPS)]
                elif _IDR in types:
                    nals = parameter_sets + nals  # the decoder's start: SPS and PPS right before the IDR
                payloads = self._pack(nals)
                try:
                    loop.call_soon_threadsafe(self._deliver, payloads, last_pts & 0xFFFFFFFF)
                except RuntimeError:  # the loop is gone (shutdown)
                    raise _Stopped() from None
        finally:
            container.close()
            self._idle.set()

    def _pack(self, nals: list[bytes]) -> list[bytes]:
        """RTP payloads (RFC 6184) for one access unit, with aiortc's public packer."""
        unit = av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in nals))
        unit.pts, unit.time_base = 0, _RTP_CLOCK  # the timestamp it derives is not used
        return self._packer.pack(unit)[0]

    def _deliver(self, payloads: list[bytes], timestamp: int) -> None:
        if self._stop.is_set():
            return
        if self.state != "live":
            self.publication.restart()  # a new RTSP session starts a new timeline
            self._set_state("live", "")
        self.frames += 1
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            self._seq = (self._seq + 1) & 0xFFFF
            inbound = Inbound(sequence_number=self._seq, timestamp=timestamp, marker=int(index == last), payload=payload, keyframe=False)
            self.publication.feed(self._ssrc, inbound)

    def _set_state(self, state: CameraState, reason: str) -> None:
        if state == self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        logger.info("camera %s name=%s url=%s transport=%s reason=%s", state, self.name, self.url, self.source.transport, reason or "-")
        self._on_state(self)

    async def close(self) -> None:
        """Stop pulling, wait for the thread to let go of the camera, end the publication (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        await self._tasks.close()
        # The thread notices the flag at its next packet (or after READ_TIMEOUT of silence).
        deadline = time.monotonic() + OPEN_TIMEOUT + READ_TIMEOUT
        while not self._idle.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.publication.close()
        self.state, self.reason = "idle", ""


def _split(buf: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes, 3 or 4 bytes, removed)."""
    nals: list[bytes] = []
    start = buf.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = buf.find(b"\x00\x00\x01", start)
        if end == -1:
            nals.append(buf[start:])
            break
        nals.append(buf[start:end - 1] if buf[end - 1] == 0 else buf[start:end])
        start = end
    return nals


def _parameter_sets(extradata: bytes) -> list[bytes]:
    """SPS and PPS from the stream's extradata: Annex B, or avcC (ISO 14496-15) as some demuxers give."""
    if extradata[:1] == b"\x01" and len(extradata) > 7:
        sets: list[bytes] = []
        pos, count = 6, extradata[5] & 0x1F
        for section in range(2):
            for _ in range(count):
                size = int.from_bytes(extradata[pos:pos + 2], "big")
                sets.append(extradata[pos + 2:pos + 2 + size])
                pos += 2 + size
            if section == 0 and pos < len(extradata):
                count, pos = extradata[pos], pos + 1
        return [s for s in sets if s]
    return [n for n in _split(extradata) if n and n[0] & 0x1F in (_SPS, _PPS)]
