"""Writing a recorded track: RTP packets put back in order, depacketized into frames (aiortc's
depayloaders) and muxed, never decoded nor encoded, by PyAV: VP8 and Opus into WebM, H.264 into
Matroska. Runs in the recording worker process (media/recording_worker.py), never on the relay's loop.

A video track that lost packets (dropped on the way here, or never repaired upstream) skips to the
next keyframe, which it asks the publisher for. Each track is cut into segments of `segment_seconds`
(a video segment starts at a keyframe: the publisher is asked for one when a segment is due). A
segment is written as `NNNN.<ext>.part`; when it is done it is closed, hashed (sha256), synced and
renamed to `NNNN.<ext>`, so a crash loses at most the segment being written, and the name says which
segments are whole.

Times: a segment's `start` is the wall-clock time of its pts 0, put where the frame that arrived
quickest after its RTP timestamp says; its frames' timestamps are their RTP timestamps from there.
Tracks are put side by side by `start`.
"""

from __future__ import annotations

import errno
import fractions
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import av
from aiortc.codecs import depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.picture import picture_size

logger = logging.getLogger(__name__)

# Codec (CodecInfo.name, upper case) -> (file extension, FFmpeg muxer, stream codec).
CONTAINERS: Final[dict[str, tuple[str, str, str]]] = {
    "VP8": ("webm", "webm", "vp8"),
    "OPUS": ("webm", "webm", "opus"),
    "H264": ("mkv", "matroska", "h264"),
}
REORDER_PACKETS: Final[int] = 200  # held out of order before the missing ones count as lost
REORDER_SECONDS: Final[float] = 0.5
DISCONTINUITY: Final[int] = 1000  # a sequence jump this large is a new source (a publication rebound)
TIME_JUMP: Final[float] = 5.0  # RTP time moving this much more (or less) than arrival time, frame to frame: a jump
KEYFRAME_ASK_EVERY: Final[float] = 1.0


def recordable(codec_name: str) -> bool:
    """Whether a publication's codec can be recorded."""
    return codec_name.upper() in CONTAINERS


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed because the disk (or the quota) is full."""
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)


class Packet(NamedTuple):
    """One RTP packet of a recorded track, as the relay parsed it (`arrival`: perf_counter time)."""

    sequence_number: int
    timestamp: int
    marker: int
    keyframe: bool
    arrival: float
    payload: bytes


# --- an event from the writer ---------------------------------------------------------------


@dataclass(frozen=True)
class RecordingEvent:
    """What the writer tells the recording's owner (on the event loop): a segment started or is done,
    a track ended or failed. `data` is what goes into the session's manifest."""

    kind: str  # "segment_started", "segment", "track_ended", "track_failed"
    track: str
    data: dict[str, object]


EventHandler = Callable[[RecordingEvent], None]


# --- one segment file ---------------------------------------------------------------------------------


class _Segment:
    """One open segment file of a track: PyAV muxing already-encoded frames."""

    def __init__(self, directory: Path, index: int, codec: str, clock_rate: int, size: tuple[int, int] | None,
                 start: float, first_ts: int) -> None:
        ext, muxer, stream_codec = CONTAINERS[codec]
        self.index = index
        self.name = f"{index:04d}.{ext}"
        self.final = directory / self.name
        self.part = directory / f"{self.name}.part"
        self.start = start  # the wall time of pts 0: the first frame's arrival, then refined as frames come
        self.first_ts = first_ts
        self.last_pts = -1
        self.frames = 0
        self.end = start
        self.time_base = fractions.Fraction(1, clock_rate)
        self.container: Any = av.open(str(self.part), "w", format=muxer)
        self.stream: Any
        if codec == "OPUS":
            # an encoder context only for its OpusHead (the WebM CodecPrivate players need); never fed
            self.stream = self.container.add_stream("libopus", rate=48000, layout="stereo")
        else:
            width, height = size or (0, 0)
            self.stream = self.container.add_mux_stream(stream_codec, width=width, height=height)
            self.stream.time_base = self.time_base

    def write(self, data: bytes, pts: int, keyframe: bool, wall: float) -> None:
        if pts <= self.last_pts:
            return  # a repeated timestamp: the muxer wants them increasing
        packet = av.Packet(data)
        packet.stream = self.stream
        packet.pts = packet.dts = pts
        packet.time_base = self.time_base
        packet.is_keyframe = keyframe
        self.container.mux(packet)
        self.last_pts = pts
        self.frames += 1
        # The wall time of pts 0 is put where the frame that came quickest says (the least delay
        # from capture to here: a keyframe, slower to encode and to send, would put it late).
        self.start = min(self.start, wall - pts * self.time_base)
        self.end = self.start + float(pts * self.time_base)

    def finish(self) -> dict[str, object]:
        """Close, hash, sync and rename to its final name; what the manifest keeps of it."""
        self.container.close()
        digest = hashlib.sha256()
        with open(self.part, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
            os.fsync(f.fileno())
        size = self.part.stat().st_size
        os.replace(self.part, self.final)
        _sync_directory(self.final.parent)
        return {"index": self.index, "file": self.name, "start": round(self.start, 6), "end": round(self.end, 6),
                "frames": self.frames, "bytes": size, "sha256": digest.hexdigest()}

    def abandon(self) -> None:
        """Close what can be closed after a failure; the `.part` file stays, unlisted as whole."""
        try:
            self.container.close()
        except (OSError, av.FFmpegError):
            pass


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- one track --------------------------------------------------------------------------------------


class TrackWriter:
    """One recorded track: reordering, frame assembly and its segments."""

    def __init__(self, track_id: str, directory: Path, *, kind: str, mime_type: str, clock_rate: int, segment_seconds: float,
                 wall_offset: float, emit: EventHandler, ask_keyframe: Callable[[], None]) -> None:
        self.id = track_id
        self.directory = directory
        self.kind = kind
        self.codec = mime_type.split("/", 1)[-1].upper()
        self.clock_rate = clock_rate
        self.segment_seconds = segment_seconds
        self.wall_offset = wall_offset  # wall-clock time minus perf_counter time (Packet.arrival)
        self._emit = emit
        self._ask = ask_keyframe
        self._params = RTCRtpCodecParameters(mimeType=mime_type, clockRate=clock_rate, payloadType=96)
        self.dropped = 0  # packets dropped before they reached the writer (told by the relay's side)
        self.lost = 0  # gaps the writer skipped (never repaired, or dropped here)
        self.frames = 0
        self.bytes_written = 0
        self.failed = False
        self._video = self.kind == "video"
        self._next: int | None = None
        self._held: dict[int, Packet] = {}
        self._held_since = 0.0
        self._broken = self._video  # video waits for a keyframe to start (and after a loss)
        self._parts: list[bytes] = []
        self._frame_ts: int | None = None
        self._frame_arrival = 0.0
        self._frame_key = False
        self._last_ts: int | None = None
        self._last_wall = 0.0
        self._ext = 0  # the unwrapped RTP timestamp of the last frame
        self._segment: _Segment | None = None
        self._index = 0
        self._restart = False
        self._keyframe_asked = 0.0

    def packet(self, inbound: Packet) -> None:
        """Take one packet (in arrival order)."""
        seq = inbound.sequence_number
        expected = self._next
        if expected is None or seq == expected:
            self._consume(inbound)
            self._release_held()
            return
        ahead = (seq - expected) & 0xFFFF
        if ahead < DISCONTINUITY:
            if not self._held:
                self._held_since = inbound.arrival
            self._held[seq] = inbound
            if len(self._held) > REORDER_PACKETS or inbound.arrival - self._held_since > REORDER_SECONDS:
                self._skip_gap()
        elif ahead > 0x10000 - DISCONTINUITY:
            return  # behind: a duplicate, or a repair of what was skipped already
        else:  # a new source continues the publication (a participant back on a new connection)
            self._held.clear()
            self._lose(restart=True)
            self._next = None
            self._consume(inbound)

    def _skip_gap(self) -> None:
        """Give the missing packets up for lost: carry on from the first one held."""
        assert self._next is not None
        expected = self._next
        first = min(self._held, key=lambda s: (s - expected) & 0xFFFF)
        self._lose(restart=False)
        self._next = first
        self._release_held()

    def _release_held(self) -> None:
        held = self._held
        while held and self._next in held:
            self._consume(held.pop(self._next))
        if held:
            self._held_since = min(p.arrival for p in held.values())

    def _lose(self, *, restart: bool) -> None:
        self.lost += 1
        self._parts, self._frame_ts = [], None
        if restart:
            self._restart = True
        if self._video:
            self._broken = True
            self._ask_keyframe(time.monotonic(), force=True)

    def _consume(self, inbound: Packet) -> None:
        self._next = (inbound.sequence_number + 1) & 0xFFFF
        payload = inbound.payload
        if not payload:
            return  # padding
        if not self._video:
            self._frame(depayload(self._params, payload), inbound.timestamp, inbound.arrival, True)
            return
        if self._frame_ts is not None and inbound.timestamp != self._frame_ts:
            self._emit_video()  # the previous frame had no marker; it is whole (no gap came between)
        if self._broken:
            if not inbound.keyframe:
                # keep asking (at most once a second): the first ask may have gone before the
                # publisher's media flowed, and a track joining late would then never start
                self._ask_keyframe(time.monotonic(), force=False)
                return
            self._broken = False
        if self._frame_ts is None:
            self._frame_ts, self._frame_arrival, self._frame_key = inbound.timestamp, inbound.arrival, False
        self._parts.append(payload)
        self._frame_key |= inbound.keyframe
        if inbound.marker:
            self._emit_video()

    def _emit_video(self) -> None:
        parts, ts = self._parts, self._frame_ts
        self._parts, self._frame_ts = [], None
        if ts is None or not parts:
            return
        try:
            data = b"".join(depayload(self._params, part) for part in parts)
        except (ValueError, IndexError):
            self._lose(restart=False)
            return
        if data:
            self._frame(data, ts, self._frame_arrival, self._frame_key)

    def _frame(self, data: bytes, ts: int, arrival: float, keyframe: bool) -> None:
        wall = arrival + self.wall_offset
        if self._last_ts is None:
            self._ext = ts
        else:
            delta = (ts - self._last_ts) & 0xFFFFFFFF
            delta = delta - (1 << 32) if delta >= 1 << 31 else delta
            self._ext += delta
            # the source's clock jumped (not a late frame: lateness grows slowly, frame by frame)
            if abs(delta / self.clock_rate - (wall - self._last_wall)) > TIME_JUMP:
                self._restart = True
        self._last_ts, self._last_wall = ts, wall
        segment = self._segment
        if segment is not None:
            due = self._restart or wall - segment.start >= self.segment_seconds
            if due and (keyframe or not self._video):
                self._close_segment()
                segment = None
            elif due:
                if self._restart:
                    self._broken = True  # its timestamps no longer fit this segment: wait for the keyframe
                    self._ask_keyframe(time.monotonic(), force=False)
                    return
                self._ask_keyframe(time.monotonic(), force=False)
        if segment is None:
            if self._video and not keyframe:
                self._broken = True
                self._ask_keyframe(time.monotonic(), force=False)
                return
            segment = self._open_segment(data, wall)
            if segment is None:
                return
        try:
            segment.write(data, self._ext - segment.first_ts, keyframe, wall)
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
            return
        self.frames += 1
        self.bytes_written += len(data)

    def _open_segment(self, keyframe: bytes, wall: float) -> _Segment | None:
        self._restart = False
        size = picture_size(self.codec, keyframe)
        if size is None and self.codec == "H264":  # Matroska needs the picture size: wait for a keyframe that says it
            self._broken = True
            return None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            segment = _Segment(self.directory, self._index, self.codec, self.clock_rate, size, wall, self._ext)
        except (OSError, av.FFmpegError) as exc:
            self._fail(exc)
            return None
        self._segment = segment
        self._index += 1
        self._emit(RecordingEvent("segment_started", self.id, {
            "index": segment.index, "file": segment.name, "start": round(wall, 6),
            **({"width": size[0], "height": size[1]} if size else {})}))
        return segment

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            done = segment.finish()
        except (OSError, av.FFmpegError) as exc:
            segment.abandon()
            self._fail(exc)
            return
        done["lost"], done["dropped"] = self.lost, self.dropped
        self._emit(RecordingEvent("segment", self.id, done))

    def _ask_keyframe(self, now: float, *, force: bool) -> None:
        if not self._video or (not force and now - self._keyframe_asked < KEYFRAME_ASK_EVERY):
            return
        self._keyframe_asked = now
        self._ask()

    def _fail(self, exc: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        full = is_disk_full(exc)
        logger.error("recording track failed track=%s disk_full=%s error=%s", self.id, full, exc)
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.abandon()
        self._emit(RecordingEvent("track_failed", self.id, {"error": str(exc)[:300], "disk_full": full}))

    def tick(self, now: float) -> None:
        """Time passing with no packet: a video segment that is due keeps asking for its keyframe."""
        segment = self._segment
        if self._video and segment is not None and time.time() - segment.start >= self.segment_seconds:
            self._ask_keyframe(now, force=False)

    def finish(self, reason: str) -> None:
        """Close the open segment (whole, hashed) and say the track ended."""
        if not self.failed:
            self._close_segment()
        self._emit(RecordingEvent("track_ended", self.id, {
            "reason": reason, "frames": self.frames, "dropped": self.dropped, "lost": self.lost}))


# --- a track's segments as one file ---------------------------------------------------------------------


def concatenate(segments: list[tuple[Path, float]], out: Path) -> None:
    """Remux segment files (each with its start, seconds from the first's) into one file, gaps kept
    as gaps in time; the container is the segments' own (by `out`'s suffix). Runs in a worker thread."""
    muxer = "matroska" if out.suffix == ".mkv" else "webm"
    with av.open(str(out), "w", format=muxer) as output:
        stream: Any = None
        last = -1
        for path, offset in segments:
            with av.open(str(path)) as source:
                template = source.streams[0]
                if stream is None:
                    stream = output.add_stream_from_template(template)
                time_base = template.time_base or fractions.Fraction(1, 1000)
                shift = int(round(offset / time_base))
                for packet in source.demux(template):
                    if packet.pts is None:
                        continue
                    packet.pts += shift
                    packet.dts = packet.pts if packet.dts is None else packet.dts + shift
                    if packet.dts <= last:
                        continue
                    last = packet.dts
                    packet.stream = stream
                    output.mux(packet)


def probe(path: Path) -> tuple[float, int]:
    """A whole segment file's duration in seconds (from its container) and its frames (packets, not decoded)."""
    with av.open(str(path)) as container:
        frames = sum(1 for packet in container.demux(container.streams[0]) if packet.size)
        return (container.duration / av.time_base if container.duration else 0.0), frames
