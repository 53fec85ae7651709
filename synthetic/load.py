"""Lean load pieces: a pre-encoded publisher that honours keyframe requests, and frame counting
from plaintext RTP headers (SRTP leaves the header in the clear), with no jitter buffer,
depacketizing or decoding, so that a load tool costs far less than the server it measures."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import av
from av.stream import Stream

from synthetic.encoded import EncodedLoopTrack

_HEADER = struct.Struct("!BBHII")


class KeyframeLoopTrack(EncodedLoopTrack):
    """A pre-encoded video loop that answers a keyframe request by restarting at its keyframe.

    The loop's first frame is a keyframe, so restarting there is exact: every following frame
    decodes as encoded. Timestamps keep advancing; only the picture jumps back.
    """

    def __init__(self, packets: list[bytes], fps: int = 30) -> None:
        super().__init__("video", packets, rate=fps, clock_rate=90000)
        self._shift = 0
        self.keyframe_requests = 0
        self._resumed: asyncio.Event | None = None  # set while sending; None until first paused

    def restart(self) -> None:
        """Make the next frame the loop's keyframe."""
        self.keyframe_requests += 1
        self._shift = self._index

    def pause(self) -> None:
        """Send nothing until `resume()` (the connection stays up: to measure its idle cost)."""
        if self._resumed is None:
            self._resumed = asyncio.Event()
        self._resumed.clear()

    def resume(self) -> None:
        """Send again from where the loop paused; no burst to catch up, timestamps continue."""
        if self._resumed is not None and not self._resumed.is_set():
            self._resumed.set()
            self._start = time.monotonic() - self._index * self._interval

    async def recv(self) -> av.Packet[Stream]:
        """The next packet, at its due time."""
        if self._resumed is not None and not self._resumed.is_set():
            await self._resumed.wait()
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * self._interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[(self._index - self._shift) % len(self._packets)])
        packet.pts = self._index * self._step
        packet.time_base = self._time_base
        self._index += 1
        self.sent += 1
        return packet


@dataclass
class StreamCount:
    """Packets and frames of one received RTP stream, counted from headers."""

    ts_step: int = 3000
    packets: int = 0
    frames_complete: int = 0
    first_ts: int | None = None
    last_ts: int = 0
    first_at: float | None = None
    highest_seq: int | None = None
    lost_seqs: set[int] = field(default_factory=set)
    # ts -> (sequence numbers seen, [lowest seq, marker seq or -1])
    open_frames: dict[int, tuple[set[int], list[int]]] = field(default_factory=dict)
    last_marker_seq: int | None = None
    last_finished_ts: int | None = None

    @property
    def frames_expected(self) -> int:
        """Frames the sender produced between the first and last frame seen (steady frame rate)."""
        if self.first_ts is None:
            return 0
        return ((self.last_ts - self.first_ts) & 0xFFFFFFFF) // self.ts_step + 1


class LeanCounter:
    """Counts packets and complete frames per SSRC from SRTP datagrams, NACKs gaps.

    `on_gap(ssrc, seqs)` is called with newly missing sequence numbers (the caller sends NACKs);
    `unwrap(datagram)` decrypts a retransmission (RTX) datagram to recover its original number.
    """

    def __init__(
        self,
        *,
        rtx_payload_types: set[int],
        on_gap: Callable[[int, list[int]], None] | None = None,
        unwrap: Callable[[bytes], bytes | None] | None = None,
        rtx_map: Callable[[], dict[int, int]] | None = None,
    ) -> None:
        self.streams: dict[int, StreamCount] = {}
        self.rtx_payload_types = rtx_payload_types
        self.rtx_to_media: dict[int, int] = {}  # filled by the caller from the negotiated SSRC groups
        self.retransmissions = 0
        self._on_gap = on_gap
        self._unwrap = unwrap
        self._rtx_map = rtx_map

    def on_datagram(self, data: bytes) -> None:
        """One SRTP datagram carrying RTP."""
        _first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        payload_type = second & 0x7F
        if payload_type in self.rtx_payload_types:
            self._on_rtx(data)
            return
        self._count(ssrc, seq, ts, second & 0x80, repaired=False)

    def _on_rtx(self, data: bytes) -> None:
        plain = self._unwrap(data) if self._unwrap is not None else None
        if plain is None or len(plain) < 14:
            return
        first, second, _seq, ts, rtx_ssrc = _HEADER.unpack_from(plain)
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            offset += 4 + 4 * struct.unpack_from("!H", plain, offset + 2)[0]
        original = struct.unpack_from("!H", plain, offset)[0]
        ssrc = self.rtx_to_media.get(rtx_ssrc)
        if ssrc is None and self._rtx_map is not None:  # receivers learn their RTX SSRCs once started
            self.rtx_to_media.update(self._rtx_map())
            ssrc = self.rtx_to_media.get(rtx_ssrc)
        stream = self.streams.get(ssrc) if ssrc is not None else None
        if stream is not None and original in stream.lost_seqs:
            self.retransmissions += 1
            self._count(ssrc, original, ts, second & 0x80, repaired=True)  # type: ignore[arg-type]

    def _count(self, ssrc: int, seq: int, ts: int, marker: int, *, repaired: bool) -> None:
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = StreamCount(first_ts=ts, last_ts=ts, first_at=time.monotonic())
        if repaired:
            stream.lost_seqs.discard(seq)
        elif stream.highest_seq is not None:
            gap = (seq - stream.highest_seq) & 0xFFFF
            if 1 < gap < 0x8000:
                missing = [(stream.highest_seq + i) & 0xFFFF for i in range(1, min(gap, 64))]
                stream.lost_seqs.update(missing)
                if self._on_gap is not None:
                    self._on_gap(ssrc, missing)
            if gap < 0x8000:
                stream.highest_seq = seq
            else:
                stream.lost_seqs.discard(seq)  # reordered: it came after all
        else:
            stream.highest_seq = seq
        stream.packets += 1
        if ((ts - stream.last_ts) & 0xFFFFFFFF) < 0x80000000:
            stream.last_ts = ts
        frame = stream.open_frames.get(ts)
        if frame is None:
            frame = stream.open_frames[ts] = (set(), [seq, -1])
            self._settle(stream)  # once per new frame, not per packet
        frame[0].add(seq)  # a set: a packet that arrives twice (late original and RTX) counts once
        bounds = frame[1]
        if ((seq - bounds[0]) & 0xFFFF) > 0x8000:
            bounds[0] = seq
        if marker:
            bounds[1] = seq

    def _settle(self, stream: StreamCount) -> None:
        # Frames older than 30 frame intervals are final: count the complete ones, forget them.
        horizon = stream.ts_step * 30
        for ts in [t for t in stream.open_frames if ((stream.last_ts - t) & 0xFFFFFFFF) > horizon]:
            self._finish(stream, ts)

    def _finish(self, stream: StreamCount, ts: int) -> None:
        seqs, (low, marker) = stream.open_frames.pop(ts)
        seen = len(seqs)
        start = low
        if stream.last_finished_ts == (ts - stream.ts_step) & 0xFFFFFFFF and stream.last_marker_seq is not None:
            start = (stream.last_marker_seq + 1) & 0xFFFF  # the frame starts right after the previous one
        if marker >= 0 and seen == ((marker - start) & 0xFFFF) + 1:
            stream.frames_complete += 1
        stream.last_finished_ts = ts
        stream.last_marker_seq = marker if marker >= 0 else None

    def finish(self) -> None:
        """Count every frame still open (call once at the end of a run)."""
        for stream in self.streams.values():
            for ts in sorted(stream.open_frames, key=lambda t: (t - stream.first_ts) & 0xFFFFFFFF):  # type: ignore[operator]
                self._finish(stream, ts)
