"""A real RTSP camera (GStreamer's RTSP server, tests/cameras/rtsp_camera.py) started as a process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("rtsp_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Camera:
    """One test camera process; `stop()` kills it (a camera going away), `start()` brings it back."""

    def __init__(self, port: int, codec: str, user: str, password: str, extra: tuple[str, ...] = ()) -> None:
        self.extra = extra
        self.port = port
        self.codec = codec
        self.user = user
        self.password = password
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The camera's URL with its credentials, as configured."""
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/stream"

    async def start(self) -> None:
        """Start serving and wait until it listens."""
        args = [str(SCRIPT), str(self.port), "--codec", self.codec, *self.extra]
        if self.user:
            args += ["--user", self.user, "--password", self.password]
        self.process = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, *args, stdout=asyncio.subprocess.PIPE, stderr=sys.stderr,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        assert line.startswith(b"ready"), f"the test camera did not start: {line!r}"

    async def stop(self) -> None:
        """Kill the camera (as a power cut would)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


def gstreamer_rtsp_available() -> bool:
    """Whether /usr/bin/python3 can load GStreamer's RTSP server and x264 (scripts/ensure-gstreamer.sh)."""
    probe = ("import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def rtsp_server_present() -> None:
    """Fail (not skip) when the RTSP server is missing: `make test` installs it."""
    assert gstreamer_rtsp_available(), "GStreamer's RTSP server is missing: run `bash scripts/ensure-gstreamer.sh` as root"


@pytest.fixture
async def start_camera(rtsp_server_present: None) -> AsyncIterator[Callable[..., Awaitable[Camera]]]:
    """Start test cameras; each is killed at the end of the test."""
    cameras: list[Camera] = []

    async def start(codec: str = "h264", user: str = "", password: str = "", *extra: str) -> Camera:
        camera = Camera(free_port(), codec, user, password, extra)
        await camera.start()
        cameras.append(camera)
        return camera

    yield start
    for camera in cameras:
        await camera.stop()
