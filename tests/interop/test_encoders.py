"""The encoders and players operators really use, against the server process, for the whole run.

- The static FFmpeg CLI (9.0.2 on OpenSSL, from the imageio-ffmpeg wheel) publishes H.264 and Opus
  over WHIP. It answers the first STUN binding request only, ever: it stays up only because the
  relay counts its authenticated media as consent (aioice dropped it at ~32 s).
- PyAV's own WHIP muxer (FFmpeg 8.1 on GnuTLS): refused with its default P-224 certificate, which
  the relay's OpenSSL cannot accept (the failure is counted), publishing with a P-256 one.
- GStreamer's webrtcbin (Debian 12) with its default RSA certificate publishes and plays.

An aiortc WHEP player and a Chromium room page receive the encoder's video, and frames must
still be arriving at the end of the run, not only at its start.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.certificates import self_signed
from tests.conftest import soak_or
from tests.e2e.conftest import REPO, Server, wait_until

pytestmark = pytest.mark.browser

ROOM = "consultation"
FFMPEG_SECONDS = soak_or(45, 120)  # FFmpeg used to be dropped at ~32 s
PYAV_SECONDS = soak_or(36, 120)
SYSTEM_PYTHON = Path("/usr/bin/python3")
FRAMES_DECODED = """async ([identity]) => {
  const r = window.__room;
  if (!r || !r.subscriber) return 0;
  const s = (await r.inboundVideoStats()).find((x) => x.identity === identity);
  return s ? s.framesDecoded : 0;
}"""


def ffmpeg_command(url: str, token: str, seconds: float) -> list[str]:
    """The operator's command line: a test pattern and a tone, H.264 baseline and Opus, over WHIP."""
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-nostdin",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}",
        "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "60", "-tune", "zerolatency",
        "-preset", "veryfast", "-b:v", "800k",
        "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "64k",
        "-authorization", token, "-f", "whip", url,
    ]


def p256_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate and key (PEM), as README's openssl recipe makes them."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "whip", days=30)
    cert_file, key_file = directory / "whip-cert.pem", directory / "whip-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ))
    return cert_file, key_file


def connection_failures(server: Server) -> dict[str, float]:
    """`/metrics`: peer connections failed so far, by reason."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'^cp_connection_failures_total\{reason="([^"]+)"\} ([0-9.e+]+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """End an encoder as an operator would (its session is closed with DELETE), killing it if it hangs."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def summary(process: subprocess.Popen[bytes], log: Path, timeout: float) -> dict[str, object]:
    """Wait for a player or publisher script to end its run; its JSON summary (last line)."""
    process.wait(timeout=timeout)
    lines = log.read_text(errors="replace").strip().splitlines()
    try:
        result: dict[str, object] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"no summary from {process.args!r}:\n" + "\n".join(lines[-30:])) from None
    return result


def watch_run(server: Server, open_page: Callable[..., object], identity: str, seconds: float, tmp_path: Path) -> None:
    """A wall page and a WHEP player follow `identity` until `seconds` after now; both must still
    receive frames at the end."""
    ends = time.monotonic() + seconds
    wall = open_page(server.room_url(server.device_token(f"wall-{identity}", "command_centre", grants=("subscribe",))))
    wait_until(wall, FRAMES_DECODED, [identity], timeout_ms=30_000)
    player_log = tmp_path / "player.log"
    remaining = ends - time.monotonic()
    token = server.device_token(f"player-{identity}", "command_centre", grants=("subscribe",))
    player = start(
        [sys.executable, "-m", "tests.interop.whep_player", f"{server.base_url}/whep/{ROOM}/{identity}", token, f"{remaining:.1f}"],
        player_log,
    )
    played = summary(player, player_log, timeout=remaining + 45)
    assert played["status"] == 201, played
    assert played["size"] == [640, 360], played
    # 30 fps sent; a loaded 2-core machine decodes fewer, but they must keep coming to the end.
    assert int(played["frames"]) >= 10 * (remaining - 10), played
    assert int(played["recent"]) >= 25, played  # in the run's last 5 s
    decoded = float(wall.evaluate(FRAMES_DECODED, [identity]))  # type: ignore[attr-defined]
    wait_until(wall, f"async (a) => (await ({FRAMES_DECODED})(a)) > {decoded + 30}", [identity], timeout_ms=5_000)
    print(f"{identity}: WHEP player {played}; wall page decoded {decoded:.0f} frames, still decoding at the end")


@pytest.mark.soak
@pytest.mark.timeout(FFMPEG_SECONDS + 120)
def test_the_ffmpeg_cli_publishes_over_whip_to_the_end_of_the_run(
    server: Server, open_page: Callable[..., object], tmp_path: Path
) -> None:
    token = server.device_token("ffmpeg-cli", "mobile01", grants=("publish",))
    before = connection_failures(server)
    log = tmp_path / "ffmpeg.log"
    ffmpeg = start(ffmpeg_command(f"{server.base_url}/whip/{ROOM}", token, FFMPEG_SECONDS + 30), log)
    try:
        watch_run(server, open_page, "ffmpeg-cli", FFMPEG_SECONDS, tmp_path)
        assert ffmpeg.poll() is None, log.read_text(errors="replace")[-3000:]  # still publishing
    finally:
        stop(ffmpeg, signal.SIGINT)  # FFmpeg's own graceful stop: the WHIP session ends with DELETE
    assert connection_failures(server).get("consent_expired", 0) == before.get("consent_expired", 0)


@pytest.mark.soak
@pytest.mark.timeout(PYAV_SECONDS + 120)
def test_pyav_whip_with_a_p256_certificate_publishes_to_the_end_of_the_run(
    server: Server, open_page: Callable[..., object], tmp_path: Path
) -> None:
    token = server.device_token("pyav-whip", "mobile02", grants=("publish",))
    cert_file, key_file = p256_certificate(tmp_path)
    log = tmp_path / "pyav.log"
    command = [
        sys.executable, "-m", "tests.interop.pyav_whip", f"{server.base_url}/whip/{ROOM}", token, f"{PYAV_SECONDS + 30}",
        "--cert-file", str(cert_file), "--key-file", str(key_file),
    ]
    pyav = start(command, log)
    try:
        watch_run(server, open_page, "pyav-whip", PYAV_SECONDS, tmp_path)
        assert pyav.poll() is None, log.read_text(errors="replace")[-3000:]
    finally:
        stop(pyav)


def test_pyav_whip_with_its_own_p224_certificate_is_refused_and_the_reason_counted(server: Server) -> None:
    token = server.device_token("pyav-p224", "mobile02", grants=("publish",))
    before = connection_failures(server).get("dtls_failed", 0)
    result = subprocess.run(
        [sys.executable, "-m", "tests.interop.pyav_whip", f"{server.base_url}/whip/{ROOM}", token, "5"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "whip failed" in result.stderr, result.stderr[-2000:]
    deadline = time.monotonic() + 10
    while connection_failures(server).get("dtls_failed", 0) <= before:
        assert time.monotonic() < deadline, "the DTLS failure was not counted"
        time.sleep(0.2)  # polling /metrics of another process
    # The operator's one line: who, where from, and why in words.
    lines = [line for line in server.log().splitlines() if "peer connection failed" in line and "identity=pyav-p224" in line]
    assert len(lines) == 1, lines
    assert f"room={ROOM}" in lines[0] and "remote=127.0.0.1" in lines[0], lines[0]
    assert "reason=DTLS: peer certificate curve refused (P-224)" in lines[0], lines[0]


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system Python for GStreamer's bindings")
def test_gstreamer_webrtcbin_with_its_rsa_certificate_publishes_and_plays(server: Server, tmp_path: Path) -> None:
    script = str(REPO / "tests" / "interop" / "gst_webrtc.py")
    publish_token = server.device_token("gst-whip", "mobile03", grants=("publish",))
    play_token = server.device_token("gst-whep", "command_centre", grants=("subscribe",))
    publish_log, play_log = tmp_path / "gst-publish.log", tmp_path / "gst-play.log"
    publisher = start([str(SYSTEM_PYTHON), script, "publish", f"{server.base_url}/whip/{ROOM}", publish_token, "20"], publish_log)
    try:
        player = start([str(SYSTEM_PYTHON), script, "play", f"{server.base_url}/whep/{ROOM}/gst-whip", play_token, "14"], play_log)
        played = summary(player, play_log, timeout=60)
        published = summary(publisher, publish_log, timeout=30)
    finally:
        stop(publisher)
    assert published["status"] == 201 and published["connected"], published
    assert played["status"] == 201 and played["connected"], played
    assert int(played["frames"]) >= 50 and int(played["recent"]) >= 30, played  # 15 fps, to the end
    print(f"GStreamer: publisher {published}; player {played}")
