"""Pre-encoded media loops: publishers that send real VP8/H.264/Opus without encoding per frame.

Encoding happens once, up front; the tracks then hand `av.Packet`s to aiortc's sender, which only
packetizes them. Load tools and the relay's own tests use these so that the sending side costs
almost nothing and never calls an encoder while media flows.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Sequence
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from av.stream import Stream

VIDEO_CODECS = {"VP8": "libvpx", "H264": "libx264"}


def _pattern_frame(width: int, height: int, index: int) -> av.VideoFrame:
    """A moving gradient with a bright block: cheap to make, never uniform, visibly in motion."""
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (x + index * 4) % 256
    image[..., 1] = (y * 2 + index) % 256
    image[..., 2] = ((x + y) // 2) % 256
    size = max(8, height // 4)
    left = (index * 7) % max(1, width - size)
    top = (index * 3) % max(1, height - size)
    image[top : top + size, left : left + size] = 255
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def encode_video_loop(
    codec: str = "VP8", *, width: int = 640, height: int = 360, fps: int = 30, seconds: float = 2.0, bitrate: int = 1_000_000
) -> list[bytes]:
    """Encode `seconds` of test pattern once; the first frame is a keyframe, one every second after."""
    # The codec name is looked up at run time, so av's overloads cannot tell it is a video codec.
    context = cast(av.VideoCodecContext, av.CodecContext.create(VIDEO_CODECS[codec], "w"))
    context.width = width
    context.height = height
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, fps)
    context.framerate = fractions.Fraction(fps, 1)
    context.bit_rate = bitrate
    context.gop_size = fps
    if codec == "H264":
        context.profile = "Baseline"
        context.options = {"tune": "zerolatency", "preset": "ultrafast", "level": "31"}
    else:
        context.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[bytes] = []
    count = int(seconds * fps)
    for index in range(count):
        frame = _pattern_frame(width, height, index).reformat(format="yuv420p")
        frame.pts = index
        frame.time_base = context.time_base
        packets.extend(bytes(p) for p in context.encode(frame))
    packets.extend(bytes(p) for p in context.encode(None))
    return packets[:count]


def encode_opus_loop(*, seconds: float = 1.0, frequency: float = 440.0) -> list[bytes]:
    """Encode a tone as 20 ms Opus packets at 48 kHz."""
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate = 48000
    context.layout = "stereo"
    context.format = "s16"
    context.bit_rate = 32000
    samples = 960
    packets: list[bytes] = []
    for index in range(int(seconds * 50)):
        t = (np.arange(samples) + index * samples) / 48000
        tone = (np.sin(2 * math.pi * frequency * t) * 3000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone[None, :], 2, axis=0).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = index * samples
        frame.time_base = fractions.Fraction(1, 48000)
        packets.extend(bytes(p) for p in context.encode(frame))
    return packets


class EncodedLoopTrack(MediaStreamTrack):
    """Replays pre-encoded packets in real time, forever, as `av.Packet`s for aiortc's sender."""

    def __init__(self, kind: str, packets: Sequence[bytes], *, rate: int, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = list(packets)
        self._interval = 1 / rate
        self._step = clock_rate // rate
        self._time_base = fractions.Fraction(1, clock_rate)
        self._index = 0
        self._start: float | None = None
        self.sent = 0

    async def recv(self) -> av.Packet[Stream]:
        """The next packet, at its due time."""
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * self._interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts = self._index * self._step
        packet.time_base = self._time_base
        self._index += 1
        self.sent += 1
        return packet


def video_loop_track(packets: Sequence[bytes], fps: int = 30) -> EncodedLoopTrack:
    """A video track replaying `packets` at `fps`."""
    return EncodedLoopTrack("video", packets, rate=fps, clock_rate=90000)


def audio_loop_track(packets: Sequence[bytes]) -> EncodedLoopTrack:
    """An audio track replaying 20 ms Opus packets."""
    return EncodedLoopTrack("audio", packets, rate=50, clock_rate=48000)
