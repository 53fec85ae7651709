"""A real RTSP camera (GStreamer's RTSP server) in a room, seen in Chromium: its H.264 decodes, the
roster shows it live, and the administrator's page lists it without its password."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cameras.conftest import SCRIPT, SYSTEM_PYTHON, free_port
from tests.e2e.conftest import REPO, Server, running_server, wait_until
from tests.e2e.screens import DESKTOP, shoot

pytestmark = pytest.mark.browser

PASSWORD = "Br0wser:cam@"
FRAMES = """async ([identity, above]) => {
  const r = window.__room;
  if (!r || !r.subscriber) return false;
  const s = (await r.inboundVideoStats()).find((x) => x.identity === identity);
  return !!s && s.framesDecoded > above;
}"""


@pytest.fixture(scope="module")
def camera_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A test camera with a password, and the server configured with it (password from the environment)."""
    port = free_port()
    camera = subprocess.Popen([SYSTEM_PYTHON, str(SCRIPT), str(port), "--user", "admin", "--password", PASSWORD],
                              stdout=subprocess.PIPE)
    try:
        assert camera.stdout is not None and camera.stdout.readline().startswith(b"ready")
        data = tmp_path_factory.mktemp("camera")
        config = data / "cameras.toml"
        config.write_text((REPO / "config" / "demo.toml").read_text() + f"""
[[cameras]]
id = "gate"
site = "jiangbei"
name_zh = "江北大门"
name_en = "Jiangbei gate"
url = "rtsp://127.0.0.1:{port}/stream"
username = "admin"
password_env = "GATE_CAMERA_PASSWORD"
rooms = ["consultation"]
""")
        with running_server(data, config=str(config), GATE_CAMERA_PASSWORD=PASSWORD) as server:
            yield server
    finally:
        camera.kill()
        camera.wait()


def test_a_camera_decodes_in_chromium_and_shows_live_on_the_roster(camera_server: Server, open_page: Callable[..., object]) -> None:
    token = camera_server.device_token("viewer-1", "office", grants=("subscribe",))
    page = open_page(camera_server.room_url(token), **DESKTOP)
    wait_until(page, FRAMES, ["camera:gate", 15], timeout_ms=30_000)
    chip = page.locator('[data-camera="camera:gate"]')  # type: ignore[attr-defined]
    chip.wait_for(timeout=10_000)
    assert "chip-camera-live" in (chip.get_attribute("class") or "")
    assert page.evaluate("() => window.__room.sampleTile('camera:gate').width") == 320  # type: ignore[attr-defined]
    shoot(page, "camera-room")
    admin = camera_server.device_token("ops", "command_centre", grants=("admin",))
    cameras = open_page(f"{camera_server.base_url}/cameras?token={admin}", **DESKTOP)
    cameras.locator('[data-camera="gate"] [data-state="live"]').wait_for(timeout=10_000)  # type: ignore[attr-defined]
    html = cameras.content()  # type: ignore[attr-defined]
    assert PASSWORD not in html and "rtsp://127.0.0.1" in html
    shoot(cameras, "cameras-page")
    assert PASSWORD not in camera_server.log()
