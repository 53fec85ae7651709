"""SIGKILL of the server while it records loses at most the segment being written, and the manifest
(in Redis) says so when the server comes back: every segment it lists whole is whole."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import pytest

from signaling.recording import RecordingStart, RecordingState
from synthetic.client import RoomClient
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.e2e.test_command_restart import REPO, ServerProcess, durable_redis  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis

SEGMENT = 1.0
VIDEO = encode_video_loop("VP8", width=160, height=90, fps=15, seconds=1, bitrate=150_000)


def _cli_verify(server: ServerProcess, session: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "verify-recording", session], cwd=REPO, env=server.env,
                          capture_output=True, text=True, timeout=60)


def _get(server: ServerProcess, path: str, token: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}?format=json&token={token}", timeout=10) as response:
        return json.loads(response.read())


async def test_a_sigkill_while_recording_loses_at_most_the_current_segment(durable_redis: str, tmp_path: Path) -> None:  # noqa: F811
    server = ServerProcess(durable_redis, tmp_path)
    server.env.update(RECORDING_SEGMENT_SECONDS=str(SEGMENT), RECORDING_MIN_FREE_GB="0")
    server.start()
    token = server.token("viewer", "office", ("subscribe",))
    url = f"http://127.0.0.1:{server.port}"
    chair = RoomClient(url, "consultation", server.token("mayor-laptop", "office", ("subscribe", "moderate")), name="chair")
    unit = RoomClient(url, "consultation", server.token("county01", "jiangbei", ("publish",)), name="county01")
    try:
        await chair.connect()
        await unit.connect()
        await unit.publish({"camera": video_loop_track(VIDEO, fps=15)})
        await chair.wait_for(lambda c: len(c.publications) == 1, 15)
        state = await chair.request(RecordingStart())
        assert isinstance(state, RecordingState) and state.session
        session = state.session
        async with asyncio.timeout(15):
            while True:  # another process: its HTTP view is all there is to watch
                manifest = _get(server, f"/recordings/{session}.json", token)
                whole = [s for t in manifest["tracks"] for s in t["segments"] if s["state"] == "whole"]
                if len(whole) >= 3:
                    break
                await asyncio.sleep(0.2)
        server.kill()
        killed = time.time()
    finally:
        await chair.close()
        await unit.close()

    server.start()  # the same node (host and port): it closes the session it left open
    try:
        manifest = _get(server, f"/recordings/{session}.json", token)
        assert not manifest["open"] and manifest["stop_reason"] == "interrupted" and manifest["interrupted_at"]
        (track,) = manifest["tracks"]
        whole = [s for s in track["segments"] if s["state"] == "whole"]
        lost = [s for s in track["segments"] if s["state"] == "lost"]
        assert len(lost) <= 1 and manifest["lost"] == [{k: s[k] for k in ("index", "file", "start", "bytes")} | {"track": track["id"]}
                                                          for s in lost]
        assert not [s for s in track["segments"] if s["state"] == "writing"]
        # the segment under way is either lost (its file a `.part`) or was closed whole by the recording
        # worker, which outlives the server, and is listed `recovered` with its hash: the manifest says which
        assert len(lost) + len([s for s in whole if s["recovered"]]) == 1
        # what was lost is at most the segment under way: the whole ones reach to within one segment of the kill
        assert killed - max(s["end"] for s in whole) < SEGMENT + 1.5
        verdict = _get(server, f"/recordings/{session}/verify", token)
        assert verdict["verdict"] == "verified"
        assert {s["status"] for s in verdict["segments"]} <= {"verified", "lost"}
        for segment in whole:
            path = tmp_path / "recordings" / "consultation" / session / track["id"] / segment["file"]
            with av.open(str(path)) as container:
                assert sum(1 for _ in container.decode(video=0)) == segment["frames"]
        checked = _cli_verify(server, session)
        assert checked.returncode == 0 and "verified" in checked.stdout, checked.stdout + checked.stderr
        # one byte changed in a file the manifest lists whole: the page and the command line both say so
        path = tmp_path / "recordings" / "consultation" / session / track["id"] / whole[0]["file"]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        assert _get(server, f"/recordings/{session}/verify", token)["verdict"] == "tampered"
        checked = _cli_verify(server, session)
        assert checked.returncode == 1 and "TAMPERED" in checked.stdout and f"tampered  {track['id']}/{whole[0]['file']}" in checked.stdout
    finally:
        server.kill()
