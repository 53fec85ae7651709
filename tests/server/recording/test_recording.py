"""Recording a room: the chair starts it, every screen is told, two publishers are recorded per track,
and the tracks play back decodable and in sync; a roll-call records its room; a disk below the
configured minimum refuses to record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import msgspec
import numpy as np
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from aiortc import VideoStreamTrack
from av.frame import Frame

from aiohttp import web

from server.accountability.keys import ACCOUNTABILITY
from server.app import build_services, create_app
from server.config import Config
from server.recording.keys import RECORDINGS
from server.recording.service import RecordingService
from server.store import MemoryStore
from signaling.recording import RecordingStart, RecordingState, RecordingStop
from signaling.rollcall import RollCallClose, RollCallStart
from synthetic.client import ClientError, RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop
from tests.server.conftest import SECRET, Platform

CHAIR = ("publish", "subscribe", "moderate")
FLASH = 0.25  # each publisher shows white for the first quarter of every wall-clock second


class FlashTrack(VideoStreamTrack):
    """A camera whose picture says the wall-clock time of its capture (its timestamp, as a camera's):
    white at the start of every second, else black."""

    def __init__(self) -> None:
        super().__init__()
        self._epoch: float | None = None  # the wall-clock time of pts 0

    async def recv(self) -> Frame:
        pts, time_base = await self.next_timestamp()
        if self._epoch is None:
            self._epoch = time.time() - float(pts * time_base)
        level = 255 if (self._epoch + float(pts * time_base)) % 1.0 < FLASH else 0
        frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), level, dtype=np.uint8), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class RecordingPlatform(Platform):
    """The server and its recording service."""

    recordings: RecordingService
    app: web.Application


@pytest.fixture
async def platform(aiohttp_server: Callable[..., TestServer], demo_config: Config, tmp_path: Path) -> RecordingPlatform:
    """The demo server recording under tmp_path, in 2-second segments."""
    recording = msgspec.structs.replace(demo_config.recording, segment_seconds=2.0, min_free_gb=0.0)
    config = msgspec.structs.replace(demo_config, recording=recording,
                                     server=msgspec.structs.replace(demo_config.server, data_dir=str(tmp_path)))
    services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test"))
    server = await aiohttp_server(create_app(services))
    return RecordingPlatform(url=str(server.make_url("")).rstrip("/"), services=services, recordings=server.app[RECORDINGS],
                             app=server.app)


def _client(platform: Platform, identity: str, site: str, grants: tuple[str, ...] = ("publish", "subscribe")) -> RoomClient:
    return RoomClient(platform.url, "consultation", platform.token(identity, site=site, grants=grants), name=identity)


def _rising_edges(path: Path, start: float) -> list[float]:
    """Wall-clock times at which the picture turns white."""
    edges, bright = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            level = bool(frame.to_ndarray(format="gray").mean() > 128)
            if level and bright is False:
                edges.append(start + float(frame.time))
            bright = level
    return edges


async def test_two_publishers_recorded_play_back_decodable_and_in_sync(platform: RecordingPlatform) -> None:
    chair = _client(platform, "mayor-laptop", "office", CHAIR)
    wall = _client(platform, "wall-1", "command_centre", ("subscribe",))
    one, two = _client(platform, "county01", "jiangbei"), _client(platform, "county02", "jiangnan")
    told: list[object] = []
    wall.on_message = told.append
    try:
        for client in (chair, wall, one, two):
            await client.connect()
        await one.publish({"camera": FlashTrack(), "microphone": audio_loop_track(encode_opus_loop())})
        await two.publish({"camera": FlashTrack()})
        await chair.wait_for(lambda c: len(c.publications) == 3, 15)
        state = await chair.request(RecordingStart())
        assert isinstance(state, RecordingState) and state.recording and state.reasons == ["chair"]
        await wall.wait_for(lambda _: any(isinstance(m, RecordingState) and m.recording for m in told), 5)
        await asyncio.sleep(5.5)
        stopped = await chair.request(RecordingStop())
        assert isinstance(stopped, RecordingState) and not stopped.recording
        await wall.wait_for(lambda _: isinstance(told[-1], RecordingState) and not told[-1].recording, 5)  # type: ignore[attr-defined]
    finally:
        for client in (chair, wall, one, two):
            await client.close()

    service = platform.recordings
    (session,) = await service.sessions(room="consultation")
    assert not session.open and session.stop_reason == "chair"
    tracks = {(t.name, t.kind): t for t in session.tracks.values()}
    assert set(tracks) == {("county01", "video"), ("county01", "audio"), ("county02", "video")}
    assert tracks[("county01", "video")].site == "jiangbei" and tracks[("county01", "video")].codec == "VP8"
    assert all(s.state == "whole" for s in session.segments)
    assert all(v.status == "verified" for v in await service.verify_async(session))
    with av.open(str(service.path_of(session, tracks[("county01", "audio")].id, tracks[("county01", "audio")].whole[0].file))) as audio:
        assert sum(1 for _ in audio.decode(audio=0)) > 50, "the audio decodes"
    edges: dict[str, list[float]] = {}
    for owner in ("county01", "county02"):
        track = tracks[(owner, "video")]
        assert len(track.whole) >= 2, "cut into 2-second segments"
        edges[owner] = [t for s in track.whole for t in _rising_edges(service.path_of(session, track.id, s.file), s.start)]
    pairs = 0
    for t in edges["county01"]:
        nearest = min(edges["county02"], key=lambda u: abs(u - t)) if edges["county02"] else t + 1
        if abs(nearest - t) < 0.5:  # the same flash, seen by both
            pairs += 1
            assert abs(nearest - t) < 0.1, f"the tracks are {abs(nearest - t) * 1000:.0f} ms apart"
        assert (t + 0.1) % 1.0 < 0.2, f"a flash at {t % 1.0:.3f} s past the second, not at the second"
    assert pairs >= 2, f"flashes seen by both: {edges}"

    async with ClientSession() as http:
        token = platform.token("viewer", site="office", grants=("subscribe",))
        track = tracks[("county02", "video")]
        url = f"{platform.url}/recordings/{session.id}/files/{track.id}/{track.whole[0].file}?token={token}"
        async with http.get(url, headers={"Range": "bytes=0-99"}) as response:
            assert response.status == 206 and len(await response.read()) == 100
        async with http.get(f"{platform.url}/recordings/{session.id}/tracks/{track.id}/download?token={token}") as response:
            assert response.status == 200 and "attachment" in response.headers["Content-Disposition"]
            download = service.root / "download.webm"
            download.write_bytes(await response.read())
        with av.open(str(download)) as whole:  # the track's segments remuxed into one file
            assert sum(1 for _ in whole.decode(video=0)) == sum(s.frames for s in track.whole)
        async with http.get(f"{platform.url}/recordings/{session.id}/verify?format=json&token={token}") as response:
            assert (await response.json())["verdict"] == "verified"
        async with http.get(f"{platform.url}/recordings/{session.id}?token={token}") as response:
            assert response.status == 200 and session.id in await response.text()
        other = platform.token("outsider", site="office", grants=("subscribe",), room="command")
        async with http.get(f"{platform.url}/recordings/{session.id}?token={other}") as response:
            assert response.status == 403, "only who may see the room sees its recordings"


async def test_a_participant_may_not_record_and_policy_recording_cannot_be_stopped(platform: RecordingPlatform) -> None:
    chair = _client(platform, "mayor-laptop", "office", CHAIR)
    unit = _client(platform, "county01", "jiangbei")
    told: list[object] = []
    chair.on_message = told.append
    try:
        await chair.connect()
        await unit.connect()
        with pytest.raises(ClientError) as refused:
            await unit.request(RecordingStart())
        assert refused.value.code == "forbidden"
        started = await chair.request(RollCallStart(sites=["jiangbei"], window=30, room="consultation"))
        service = platform.recordings
        async with asyncio.timeout(5):
            while "consultation" not in service.live:  # the policy's watcher takes it up within a tick
                await asyncio.sleep(0.05)
        assert service.live["consultation"].session.reasons == [f"rollcall:{started.rollcall_id}"]  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as required:
            await chair.request(RecordingStop())
        assert required.value.code == "recording_required"
        await chair.request(RollCallClose(rollcall_id=started.rollcall_id))  # type: ignore[attr-defined]
        # the room is told once the session is stopped and its manifest written
        await chair.wait_for(lambda _: any(isinstance(m, RecordingState) and not m.recording for m in told), 10)
        (session,) = await service.sessions(room="consultation")
        assert session.stop_reason == "policy_ended"
        # the evidence: the absent site's accountability item and the roll-call's report point at the recording
        review = platform.app[ACCOUNTABILITY]
        (item,) = [i for i in await review.items([review.duty.today()]) if i.kind == "rollcall_absent"]
        assert item.site == "jiangbei" and item.recording is not None and item.recording.startswith(f"/recordings/{session.id}?t=")
        token = platform.token("viewer", site="office", grants=("subscribe", "moderate"))
        async with ClientSession() as http:
            async with http.get(f"{platform.url}/rollcalls/{started.rollcall_id}/report?token={token}") as response:  # type: ignore[attr-defined]
                assert f"/recordings/{session.id}?t=" in await response.text()
    finally:
        await chair.close()
        await unit.close()


async def test_recording_is_refused_when_the_disk_has_less_free_space_than_configured(platform: RecordingPlatform) -> None:
    service = platform.recordings
    service.settings = msgspec.structs.replace(service.settings, min_free_gb=1_000_000.0)  # a petabyte: more than this disk
    chair = _client(platform, "mayor-laptop", "office", CHAIR)
    try:
        await chair.connect()
        with pytest.raises(ClientError) as refused:
            await chair.request(RecordingStart())
        assert refused.value.code == "disk_full"
        assert "磁盘空间不足" in str(refused.value) and "Not enough free disk" in str(refused.value)
        assert "consultation" not in service.live
    finally:
        await chair.close()


async def test_sessions_past_their_retention_are_deleted_and_their_manifest_says_so(platform: RecordingPlatform) -> None:
    chair = _client(platform, "mayor-laptop", "office", CHAIR)
    unit = _client(platform, "county01", "jiangbei")
    try:
        await chair.connect()
        await unit.connect()
        await unit.publish({"microphone": audio_loop_track(encode_opus_loop())})
        await chair.wait_for(lambda c: len(c.publications) == 1, 15)
        state = await chair.request(RecordingStart())
        service = platform.recordings
        async with asyncio.timeout(10):
            while not service.live["consultation"].session.segments:  # server state: no message says it
                await asyncio.sleep(0.05)
        await chair.request(RecordingStop())
    finally:
        await chair.close()
        await unit.close()
    directory = service.root / "consultation" / str(state.session)  # type: ignore[attr-defined]
    assert any(directory.rglob("*.webm"))
    assert await service.sweep() == [], "kept for retention_days (90)"
    service.settings = msgspec.structs.replace(service.settings, retention_days=1e-9)
    assert await service.sweep() == [state.session]  # type: ignore[attr-defined]
    assert not directory.exists()
    session = await service.get(str(state.session))  # type: ignore[attr-defined]
    assert session.purged_at is not None and session.purge_reason == "retention"
