"""Recording: publications written to disk as they arrive, remuxed, never decoded nor encoded, off
the relay path.

A publication's tap (`Publication.taps`) only appends the packet the relay has already parsed to the
recording's batch (a tuple: no copy of the payload). Every `FLUSH` seconds the batch goes, as one
message, down a pipe to the recording's worker process (media/recording_worker.py), which puts the
packets in order, makes frames of them and writes the segments (media/segments.py). The pipe's
writes never block the event loop: asyncio buffers them, and when the worker falls behind by more
than `queue_bytes` the batch is dropped and counted per track (the worker then skips to the next
keyframe). The relay never waits for the disk, nor for the worker's interpreter lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from media.packets import Inbound
from media.recording_worker import frame, unframe
from media.publication import Publication
from media.segments import RecordingEvent, recordable

__all__ = ["Recorder", "RecordedTrack", "RecordingEvent", "recordable"]

logger = logging.getLogger(__name__)

FLUSH: Final[float] = 0.02
QUEUE_BYTES: Final[int] = 32 << 20  # written to the worker and not yet read by it
STOP_WAIT: Final[float] = 15.0
CLOCK_TICKS: Final[int] = os.sysconf("SC_CLK_TCK")

EventHandler = Callable[[RecordingEvent], None]
Batch = list[tuple[int, int, int, int, bool, float, bytes]]


class RecordedTrack:
    """One publication being recorded, as the relay's side sees it: its tap and its counts."""

    def __init__(self, recorder: Recorder, publication: Publication, track_id: str, index: int) -> None:
        self.recorder = recorder
        self.publication = publication
        self.id = track_id
        self.index = index
        self.dropped = 0  # packets that never reached the worker (it was too far behind)
        self.pending = 0  # packets in the batch not yet flushed
        self.frames = 0  # as the worker last told
        self.bytes_written = 0
        self.lost = 0

    def feed(self, inbound: Inbound) -> None:
        """The publication's tap: one tuple appended; never raises, never blocks."""
        self.pending += 1
        self.recorder.batch.append((self.index, inbound.sequence_number, inbound.timestamp, inbound.marker, inbound.keyframe,
                                    inbound.arrival, inbound.payload))


class Recorder:
    """The tracks being recorded into one directory, and the worker process that writes them.

    `add` and `remove` are called on the event loop; the events (`RecordingEvent`) come back on it
    through `on_event`, in the order the worker made them. Start one with `await Recorder.start(...)`."""

    def __init__(self, directory: Path, process: asyncio.subprocess.Process, *, on_event: EventHandler,
                 segment_seconds: float, queue_bytes: int) -> None:
        self.directory = directory
        self.segment_seconds = segment_seconds
        self.queue_bytes = queue_bytes
        self.wall_offset = time.time() - time.perf_counter()  # Inbound.arrival is perf_counter time
        self.tracks: dict[str, RecordedTrack] = {}
        self.batch: Batch = []
        self._on_event = on_event
        self._process = process
        self._indexes = 0
        self._stopped = asyncio.Event()
        self._closing = False
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read(), name=f"recorder-read:{directory.name}")
        self._flusher = loop.create_task(self._flush_every(), name=f"recorder-flush:{directory.name}")
        self._gone: dict[str, RecordedTrack] = {}  # tracks removed, until the worker says they ended

    @classmethod
    async def start(cls, directory: Path, *, on_event: EventHandler, segment_seconds: float = 300.0,
                    queue_bytes: int = QUEUE_BYTES) -> Recorder:
        """Start the worker process and return the recorder feeding it."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media.recording_worker", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(directory, process, on_event=on_event, segment_seconds=segment_seconds, queue_bytes=queue_bytes)

    @property
    def pid(self) -> int:
        """The worker process."""
        return self._process.pid

    @property
    def dropped(self) -> int:
        """Packets that never reached the worker, every track together."""
        return sum(t.dropped for t in (*self.tracks.values(), *self._gone.values()))

    @property
    def cpu_seconds(self) -> float:
        """The worker process's CPU time so far (0 once it has exited)."""
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def add(self, publication: Publication, track_id: str) -> RecordedTrack:
        """Start recording a publication (its tap feeds the worker from now on)."""
        self._indexes += 1
        track = RecordedTrack(self, publication, track_id, self._indexes)
        self.tracks[track_id] = track
        codec = publication.codec
        self._send(["add", track.index, track_id, str(self.directory / track_id), publication.kind, codec.mime_type,
                    codec.clock_rate, self.segment_seconds, self.wall_offset])
        publication.taps = (*publication.taps, track.feed)
        if publication.kind == "video":
            publication.request_keyframe()
        return track

    def remove(self, track_id: str, reason: str) -> None:
        """Stop recording a track: its tap goes at once, the worker closes its segment."""
        track = self.tracks.pop(track_id, None)
        if track is None:
            return
        self._untap(track)
        self._gone[track_id] = track
        self._flush()
        self._send(["remove", track.index, reason])

    @staticmethod
    def _untap(track: RecordedTrack) -> None:
        track.publication.taps = tuple(t for t in track.publication.taps if t != track.feed)

    async def stop(self, reason: str) -> None:
        """Stop every track (segments closed and hashed), end the worker; waits for it."""
        if not self._closing:
            self._closing = True
            for track in self.tracks.values():
                self._untap(track)
                self._gone[track.id] = track
            self.tracks.clear()
            self._flush()
            self._send(["stop", reason])
        try:
            await asyncio.wait_for(self._stopped.wait(), STOP_WAIT)
        except TimeoutError:
            logger.error("recording worker did not stop in time pid=%d", self._process.pid)
            self._process.kill()
        self._flusher.cancel()
        await asyncio.gather(self._reader, self._flusher, return_exceptions=True)
        if self._process.stdin is not None:
            self._process.stdin.close()
        await self._process.wait()

    # --- the pipe ---

    def _send(self, message: list[Any]) -> None:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return
        stdin.write(frame(message))

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            self._flush()

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        stdin = self._process.stdin
        if not batch or stdin is None:
            return
        behind = stdin.transport.get_write_buffer_size() > self.queue_bytes  # the worker is that far behind: drop
        for track in (*self.tracks.values(), *self._gone.values()):
            if behind:
                track.dropped += track.pending
            track.pending = 0
        if not behind:
            self._send(["packets", batch])

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        buffer = bytearray()
        while True:
            chunk = await stdout.read(1 << 16)
            if not chunk:
                break
            buffer += chunk
            for message in unframe(buffer):
                self._dispatch(message)
        if not self._stopped.is_set():  # the worker died under us: every track is lost from here
            code = await self._process.wait()
            logger.error("recording worker exited code=%s", code)
            for track in [*self.tracks.values(), *self._gone.values()]:
                self._untap(track)
                self._on_event(RecordingEvent("track_failed", track.id, {"error": f"recording worker exited ({code})",
                                                                           "disk_full": False, "fatal": True}))
            self.tracks.clear()
            self._stopped.set()

    def _dispatch(self, message: list[Any]) -> None:
        kind = message[0]
        if kind == "event":
            _, event_kind, track_id, data = message
            track = self.tracks.get(track_id) or self._gone.get(track_id)
            if track is not None and event_kind in ("segment", "track_ended"):
                data["dropped"] = track.dropped
            if event_kind == "track_ended":
                self._gone.pop(track_id, None)
            self._on_event(RecordingEvent(event_kind, track_id, data))
        elif kind == "keyframe":
            track = self.tracks.get(message[1])
            if track is not None:
                track.publication.request_keyframe()
        elif kind == "stats":
            for track_id, (frames, written, lost) in message[1].items():
                track = self.tracks.get(track_id)
                if track is not None:
                    track.frames, track.bytes_written, track.lost = frames, written, lost
        elif kind == "stopped":
            self._stopped.set()
