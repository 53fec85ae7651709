"""The recording worker: a process of its own that writes the tracks of one recording.

It reads length-prefixed msgpack messages on stdin (`add`, `packets`, `remove`, `stop`) and answers
on stdout (`event`, `keyframe`, `stats`, `stopped`). Being a process, its muxing, hashing and disk
writes never take the relay's interpreter lock: a thread doing the same starves the event loop
(each write releases and retakes the lock, and every switch can cost the relay a few milliseconds).
When its parent dies (stdin closed), it closes every segment whole and exits.

    python -m media.recording_worker     # started by media/recording.py, never by hand
"""

from __future__ import annotations

import logging
import os
import select
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec

from media.segments import Packet, RecordingEvent, TrackWriter

logger = logging.getLogger(__name__)

TICK: Final[float] = 0.1
STATS_EVERY: Final[float] = 1.0
_LENGTH = 4


def frame(message: list[Any]) -> bytes:
    """One message as it goes over the pipe: its length, then its msgpack."""
    body = msgspec.msgpack.encode(message)
    return len(body).to_bytes(_LENGTH, "big") + body


def unframe(buffer: bytearray) -> list[list[Any]]:
    """Take every whole message off the front of `buffer`."""
    messages = []
    while len(buffer) >= _LENGTH:
        size = int.from_bytes(buffer[:_LENGTH], "big")
        if len(buffer) < _LENGTH + size:
            break
        messages.append(msgspec.msgpack.decode(bytes(buffer[_LENGTH:_LENGTH + size])))
        del buffer[:_LENGTH + size]
    return messages


class Worker:
    """The tracks of one recording and what they tell the parent."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.tracks: dict[int, TrackWriter] = {}
        self.ids: dict[int, str] = {}
        self.stopped = False

    def send(self, message: list[Any]) -> None:
        """Tell the parent (it reads as it goes: a full pipe only slows this process)."""
        try:
            self.out.write(frame(message))
            self.out.flush()
        except (BrokenPipeError, OSError):
            pass  # the parent is gone: the segments are still closed whole

    def handle(self, message: list[Any]) -> None:
        """Carry out one message of the parent."""
        kind = message[0]
        if kind == "packets":
            for index, seq, ts, marker, keyframe, arrival, payload in message[1]:
                track = self.tracks.get(index)
                if track is not None and not track.failed:
                    track.packet(Packet(seq, ts, marker, keyframe, arrival, payload))
        elif kind == "add":
            _, index, track_id, directory, track_kind, mime, clock_rate, segment_seconds, wall_offset = message
            self.ids[index] = track_id
            self.tracks[index] = TrackWriter(
                track_id, Path(directory), kind=track_kind, mime_type=mime, clock_rate=clock_rate,
                segment_seconds=segment_seconds, wall_offset=wall_offset, emit=self._emit,
                ask_keyframe=lambda: self.send(["keyframe", track_id]))
        elif kind == "remove":
            track = self.tracks.pop(message[1], None)
            if track is not None:
                track.finish(message[2])
        elif kind == "stop":
            self.finish(message[1])

    def _emit(self, event: RecordingEvent) -> None:
        self.send(["event", event.kind, event.track, event.data])

    def finish(self, reason: str) -> None:
        """Close every track (each open segment whole and hashed) and say so."""
        for index in list(self.tracks):
            self.tracks.pop(index).finish(reason)
        self.stopped = True
        self.send(["stopped"])

    def stats(self) -> None:
        """Frames and bytes written so far, per track (the parent shows and benchmarks them)."""
        self.send(["stats", {t.id: [t.frames, t.bytes_written, t.lost] for t in self.tracks.values()}])


def run(stdin: int, out: BinaryIO) -> None:
    """Read the parent's messages until `stop` or the end of stdin."""
    worker = Worker(out)
    buffer = bytearray()
    last_stats = time.monotonic()
    while not worker.stopped:
        ready, _, _ = select.select([stdin], [], [], TICK)
        if ready:
            chunk = os.read(stdin, 1 << 20)
            if not chunk:
                logger.warning("recording worker: the server went away; closing every segment whole")
                worker.finish("interrupted")
                break
            buffer += chunk
            for message in unframe(buffer):
                try:
                    worker.handle(message)
                except Exception:  # noqa: BLE001 - one bad message must not end the recording
                    logger.exception("recording worker: message not handled kind=%s", message[0] if message else None)
        now = time.monotonic()
        for track in list(worker.tracks.values()):
            if not track.failed:
                track.tick(now)
        if now - last_stats >= STATS_EVERY:
            last_stats = now
            worker.stats()


def main() -> None:
    """Entry point of the worker process."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run(sys.stdin.buffer.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    main()
