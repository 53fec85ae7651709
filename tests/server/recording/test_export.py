"""The composite export of a recorded session: two publishers, the second joining late, come out as
one MP4 in a 2x1 grid on the session's clock, made by a worker process with a progress that grows to
100, hashed beside the recording; a bad session is a clear 404, a second export while one runs a 409,
a failed one says why."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import av
import numpy as np
from aiohttp import ClientSession
from aiortc import VideoStreamTrack
from av.frame import Frame

from media.composite import TILE_H, TILE_W
from server.recording.export import ExportJob
from signaling.recording import RecordingStart, RecordingStop
from synthetic.encoded import audio_loop_track, encode_opus_loop
from tests.server.recording.test_recording import CHAIR, RecordingPlatform, _client, platform  # noqa: F401 - a fixture

RED, GREEN = (220, 40, 40), (40, 200, 40)


class ColourTrack(VideoStreamTrack):
    """A camera showing one colour."""

    def __init__(self, colour: tuple[int, int, int]) -> None:
        super().__init__()
        self.picture = np.tile(np.array(colour, np.uint8), (120, 160, 1))

    async def recv(self) -> Frame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def _tiles(path: Path, at: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean colour of the left and right tiles of the frame nearest `at` seconds into the export."""
    with av.open(str(path)) as container:
        frame = min(container.decode(video=0), key=lambda f: abs(float(f.time) - at))
        pixels = frame.to_ndarray(format="rgb24")[TILE_H // 4: TILE_H // 2]  # the middle, above the burned-in name
    middle = slice(TILE_W // 4, 3 * TILE_W // 4)
    return pixels[:, middle].reshape(-1, 3).mean(axis=0), pixels[:, TILE_W:][:, middle].reshape(-1, 3).mean(axis=0)


async def test_a_session_of_two_publishers_exports_as_one_grid_on_its_clock(platform: RecordingPlatform) -> None:  # noqa: F811
    chair = _client(platform, "mayor-laptop", "office", CHAIR)
    one, two = _client(platform, "county01", "jiangbei"), _client(platform, "county02", "jiangnan")
    try:
        for client in (chair, one, two):
            await client.connect()
        await one.publish({"camera": ColourTrack(RED), "microphone": audio_loop_track(encode_opus_loop())})
        await chair.wait_for(lambda c: len(c.publications) == 2, 15)
        await chair.request(RecordingStart())
        await asyncio.sleep(1.5)
        await two.publish({"camera": ColourTrack(GREEN)})
        await chair.wait_for(lambda c: len(c.publications) == 3, 15)
        joined = time.time()
        await asyncio.sleep(2.5)
        await chair.request(RecordingStop())
    finally:
        for client in (chair, one, two):
            await client.close()
    (session,) = await platform.recordings.sessions(room="consultation")
    token = platform.token("viewer", site="office", grants=("subscribe",))
    base = f"{platform.url}/recordings/{session.id}"
    async with ClientSession() as http:
        async with http.post(f"{base}/export?token={token}") as response:
            assert response.status == 202, await response.text()
        percents = []
        for _ in range(300):
            async with http.get(f"{base}/export.json?token={token}") as response:
                status = await response.json()
            percents.append(status["percent"])
            if status["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert status["state"] == "done", status
        assert percents == sorted(percents) and percents[0] < 100 and percents[-1] == 100
        async with http.get(f"{platform.url}{status['download']}?token={token}") as response:
            assert response.status == 200 and response.content_type == "video/mp4"
            body = await response.read()
        assert hashlib.sha256(body).hexdigest() == status["sha256"]
        async with http.post(f"{platform.url}/recordings/0123456789ab/export?token={token}") as response:
            assert response.status == 404 and "unknown_recording" in await response.text()
        async with http.get(f"{platform.url}/recordings/0123456789ab/export.json?token={token}") as response:
            assert response.status == 404
        outsider = platform.token("outsider", site="office", grants=("subscribe",), room="command")
        for method, path in (("POST", "/export"), ("GET", "/export.json"), ("GET", "/export/download")):
            async with http.request(method, f"{base}{path}?token={outsider}") as response:
                assert response.status == 403, (method, path)  # as the player: only those who may see the room
        platform.recordings.exporter.running = ExportJob("0123456789ab", "running", percent=42)
        async with http.post(f"{base}/export?token={token}") as response:
            assert response.status == 409 and "export_busy" in await response.text()
        platform.recordings.exporter.running = None

    out = platform.recordings.exporter.file(session)
    assert out is not None and out.parent.parent.name == session.id  # beside the recording's tracks
    with av.open(str(out)) as container:
        assert container.duration is not None
        assert abs(container.duration / 1e6 - (session.ended_at - session.started_at)) < 0.5
        video = container.streams.video[0]
        assert (video.width, video.height) == (2 * TILE_W, TILE_H)
        assert container.streams.audio, "the publisher's microphone is mixed in"
    late = min(t.whole[0].start for t in session.tracks.values() if t.kind == "video" and t.name == "county02")
    assert late > joined - 0.5, "the second camera is on record from when it joined"
    left, right = _tiles(out, late + 0.5 - session.started_at)  # both live
    assert left[0] > 150 and left[1] < 100, f"the first tile shows its red camera: {left}"
    assert right[1] > 150 and right[0] < 100, f"the second tile shows its green camera: {right}"
    _, before = _tiles(out, 0.5)  # the second had not joined
    assert before.max() < 40, f"a track not yet started is black: {before}"

    async with ClientSession() as http:
        # an export that fails says why, in both languages (here: its output cannot be written)
        exported = platform.recordings.exporter.directory(session)
        (exported / "composite.mp4").unlink()
        (exported / "composite.mp4.part").mkdir()
        async with http.post(f"{base}/export?token={token}") as response:
            assert response.status == 202
        for _ in range(200):
            async with http.get(f"{base}/export.json?token={token}") as response:
                failed = await response.json()
            if failed["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert failed["state"] == "failed" and failed["error_zh"] and "directory" in failed["error_en"], failed
        assert failed["download"] is None
