"""Recording off the relay path: tracks remuxed into segments that decode, each starting at a
keyframe, hashed; a worker that falls behind costs dropped packets, counted, never the relay's time."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import av
import pytest

from media.recording import Recorder, RecordingEvent
from media.picture import h264_size, vp8_size
from media.segments import sha256_file
from media.router import RoomRouter
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.media.test_encoded_forwarding import _publish_preferring


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_recorded_track_is_cut_into_whole_segments_that_decode(router: RoomRouter, tmp_path: Path, codec: str) -> None:
    video = encode_video_loop(codec, width=320, height=180, fps=15, seconds=1)
    client, publications = await _publish_preferring(router, [video_loop_track(video, fps=15), audio_loop_track(encode_opus_loop())], codec)
    events: list[RecordingEvent] = []
    recorder = await Recorder.start(tmp_path, on_event=events.append, segment_seconds=0.8)  # the loop has a keyframe a second
    for publication in publications:
        recorder.add(publication, f"{publication.kind}")
    await asyncio.sleep(3.5)
    await recorder.stop("done")
    await client.close()

    segments = [e for e in events if e.kind == "segment"]
    assert {e.track for e in segments} == {"video", "audio"}
    assert [e.kind for e in events if e.track == "video"][-1] == "track_ended"
    ext = "webm" if codec == "VP8" else "mkv"
    for event in segments:
        path = tmp_path / event.track / str(event.data["file"])
        assert path.suffix == (f".{ext}" if event.track == "video" else ".webm")
        assert sha256_file(path) == event.data["sha256"] and path.stat().st_size == event.data["bytes"]
        with av.open(str(path)) as container:
            stream = container.streams[0]
            frames = list(container.decode(stream))
            assert len(frames) == event.data["frames"] > 0
            if event.track == "video":
                assert (frames[0].width, frames[0].height) == (320, 180)
                assert frames[0].key_frame, "every segment starts at a keyframe"
    video_segments = [e for e in segments if e.track == "video"]
    assert len(video_segments) >= 3, "cut about once a second"
    assert not list(tmp_path.rglob("*.part")), "every segment was closed"
    for earlier, later in zip(video_segments, video_segments[1:]):
        assert 0 <= float(later.data["start"]) - float(earlier.data["end"]) < 0.2


async def test_a_stalled_worker_costs_dropped_packets_not_the_relays_time_and_resumes_at_a_keyframe(
    router: RoomRouter, tmp_path: Path,
) -> None:
    video = encode_video_loop("VP8", width=640, height=360, fps=15, seconds=1, bitrate=1_500_000)
    client, (publication,) = await _publish_preferring(router, [video_loop_track(video, fps=15)], "VP8")
    events: list[RecordingEvent] = []
    # past the pipe's own buffer (64 KiB, a second of this camera), anything more waiting is dropped
    recorder = await Recorder.start(tmp_path, on_event=events.append, segment_seconds=60.0, queue_bytes=1)
    track = recorder.add(publication, "cam")
    async with asyncio.timeout(15):
        while track.frames < 10:  # the worker is up and writing (it says so once a second)
            await asyncio.sleep(0.1)
    os.kill(recorder.pid, signal.SIGSTOP)  # the worker stalls (a disk that hangs); the relay's loop does not
    before = publication.packets
    try:
        await asyncio.sleep(2.0)
    finally:
        os.kill(recorder.pid, signal.SIGCONT)
    assert publication.packets - before > 20, "the relay went on receiving while the worker was stuck"
    stalled_at = track.frames  # as the worker last said, before it stopped
    async with asyncio.timeout(15):
        while track.frames < stalled_at + 30:  # what was in the pipe, then a second and more after the gap
            await asyncio.sleep(0.1)
    await recorder.stop("done")
    await client.close()
    assert track.dropped > 0
    ended = next(e for e in events if e.kind == "track_ended")
    assert ended.data["dropped"] == track.dropped
    (segment,) = [e for e in events if e.kind == "segment"]
    with av.open(str(tmp_path / "cam" / str(segment.data["file"]))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == segment.data["frames"]
    times = [float(f.time) for f in frames]
    gaps = [i for i in range(1, len(times)) if times[i] - times[i - 1] > 0.5]
    assert all(frames[i].key_frame for i in gaps), "after a gap the track resumes at a keyframe"
    assert times[-1] - times[0] > 2.5, "the frames after the stall are written, in their time"


def test_picture_sizes_are_read_from_the_keyframes() -> None:
    assert vp8_size(encode_video_loop("VP8", width=320, height=176, seconds=0.1)[0]) == (320, 176)
    assert h264_size(encode_video_loop("H264", width=640, height=360, seconds=0.1)[0]) == (640, 360)
    assert h264_size(encode_video_loop("H264", width=200, height=120, seconds=0.1)[0]) == (200, 120)
