"""RTSP ingest: server CPU per camera, against the same H.264 stream arriving from a WebRTC (WHIP-like)
publisher, measured in the same run.

One test camera (GStreamer's RTSP server, tests/cameras/rtsp_camera.py; one shared encoder, so N
clients get the same stream) serves 640x360 at 25 fps, 1 Mbps (a noise pattern, so the encoder
spends its whole bitrate, ~100 packets/s), a keyframe a second. For each N in
1, 4, 8, two runs, each in a fresh process whose CPU is read from /proc:
- `cameras`: N `CameraFeed`s pull the camera (PyAV's RTSP demuxer over TCP, in threads, packetized
  as RTP) into a `RoomRouter`: the ingest path as the server runs it.
- `webrtc` (the baseline): `bench.server`'s relay answers N publishers that send the same stream,
  received as it is (aiortc's MediaPlayer with decode=False, in a separate process): ICE, DTLS, SRTP
  and the relay's lean receive path, the path every WHIP encoder and browser takes.
Neither run has subscribers: what is measured is getting one stream into a publication.

    .venv/bin/python -m bench.rtsp_ingest            # 1, 4, 8 cameras, 20 s each, ~4 minutes
    .venv/bin/python -m bench.rtsp_ingest --quick    # 1 and 4, 8 s each
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.forwarding import free_port, wait_up

REPO = Path(__file__).resolve().parent.parent
CAMERA_SCRIPT = REPO / "tests" / "cameras" / "rtsp_camera.py"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(pid: int, warmup: float, seconds: float) -> float:
    """CPU percent of one core used by `pid` over `seconds`, after `warmup`."""
    time.sleep(warmup)  # the streams settle (RTSP setup, ICE, the first keyframes): nothing to wait on
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


# --- the measured processes ---------------------------------------------------------------------------


async def run_cameras(url: str, count: int, report: str) -> None:
    """N CameraFeeds of one camera into a router, until killed; writes frames per feed to `report`."""
    from media.router import RoomRouter
    from media.counters import RelayCounters
    from media.rtsp import CameraFeed, CameraSource

    router = RoomRouter("bench", counters=RelayCounters())
    feeds = [CameraFeed(f"cam{i}", CameraSource(url, "tcp"), owner=f"cam{i}", counters=router.counters) for i in range(count)]
    for feed in feeds:
        feed.start()
    while True:
        await asyncio.sleep(1)
        Path(report).write_text(json.dumps({"frames": [f.frames for f in feeds], "states": [f.state for f in feeds],
                                            "packets": router.counters.packets_received}))


async def run_publishers(camera_url: str, server_url: str, count: int) -> None:
    """N WebRTC publishers relaying the camera's H.264 as it is (no decode) to bench.server, until killed."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    peers = []
    async with aiohttp.ClientSession() as http:
        for i in range(count):
            player = MediaPlayer(camera_url, decode=False, options={"rtsp_transport": "tcp"})
            pc = RTCPeerConnection()
            assert player.video is not None
            transceiver = pc.addTransceiver(player.video, direction="sendonly")
            transceiver.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/H264", "video/rtx")]
            )
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"{server_url}/publish", json={"name": f"pub{i}", "sdp": pc.localDescription.sdp}) as response:
                answer = await response.json()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            peers.append((pc, player))
    await asyncio.Event().wait()


# --- the runs -------------------------------------------------------------------------------------------


def camera_run(url: str, count: int, warmup: float, seconds: float) -> dict[str, Any]:
    report = Path(f"/tmp/rtsp-ingest-{os.getpid()}.json")
    child = subprocess.Popen([sys.executable, "-m", "bench.rtsp_ingest", "_cameras", url, str(count), str(report)], cwd=REPO)
    try:
        before = _frames(report, warmup)
        cpu = measure(child.pid, 0, seconds)
        after = _frames(report, 0)
    finally:
        child.kill()
        child.wait()
        report.unlink(missing_ok=True)
    return {"cpu_percent": cpu, "fps_per_stream": (after - before) / count / seconds if count and before >= 0 else 0.0}


def _frames(report: Path, wait: float) -> int:
    time.sleep(wait)
    try:
        return sum(json.loads(report.read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return -1


def webrtc_run(url: str, count: int, warmup: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "bench.server", "--mode", "relay", "--port", str(port)], cwd=REPO)
    publishers: subprocess.Popen[bytes] | None = None
    try:
        wait_up(server_url, server, "benchmark server")
        if count:
            publishers = subprocess.Popen([sys.executable, "-m", "bench.rtsp_ingest", "_publish", url, server_url, str(count)], cwd=REPO)
        time.sleep(warmup)
        before = _received(server_url)
        cpu = measure(server.pid, 0, seconds)
        packets = _received(server_url) - before
    finally:
        if publishers is not None:
            publishers.kill()
            publishers.wait()
        server.kill()
        server.wait()
    return {"cpu_percent": cpu, "packets_per_stream_s": packets / count / seconds if count else 0.0}


def _received(server_url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{server_url}/stats", timeout=5) as response:
        return int(json.loads(response.read())["packets_received"])


def main() -> None:
    """Run the scenarios and print a table and a JSON summary."""
    if len(sys.argv) > 1 and sys.argv[1] == "_cameras":
        asyncio.run(run_cameras(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_publish":
        asyncio.run(run_publishers(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    counts, seconds, warmup = ((1, 4), 8.0, 4.0) if args.quick else ((1, 4, 8), args.seconds, 6.0)
    port = free_port()
    camera = subprocess.Popen(["/usr/bin/python3", str(CAMERA_SCRIPT), str(port), "--size", "640x360", "--fps", "25", "--kbps", "1000",
                               "--pattern", "snow"],
                              stdout=subprocess.PIPE)
    url = f"rtsp://127.0.0.1:{port}/stream"
    results: list[dict[str, Any]] = []
    try:
        assert camera.stdout is not None and camera.stdout.readline().startswith(b"ready"), "the test camera did not start"
        idle_cams = camera_run(url, 0, warmup, seconds)["cpu_percent"]
        idle_rtc = webrtc_run(url, 0, warmup, seconds)["cpu_percent"]
        print(json.dumps({"idle_rtsp_process_cpu_percent": round(idle_cams, 2), "idle_webrtc_server_cpu_percent": round(idle_rtc, 2)}))
        for count in counts:
            cams = camera_run(url, count, warmup, seconds)
            rtc = webrtc_run(url, count, warmup, seconds)
            marginal_cams, marginal_rtc = (cams["cpu_percent"] - idle_cams) / count, (rtc["cpu_percent"] - idle_rtc) / count
            row = {
                "cameras": count,
                "rtsp_cpu_percent": round(cams["cpu_percent"], 2),
                "rtsp_cpu_percent_per_camera": round(cams["cpu_percent"] / count, 2),
                "rtsp_fps_per_camera": round(cams["fps_per_stream"], 1),
                "webrtc_cpu_percent": round(rtc["cpu_percent"], 2),
                "webrtc_cpu_percent_per_stream": round(rtc["cpu_percent"] / count, 2),
                "webrtc_packets_per_stream_s": round(rtc["packets_per_stream_s"], 1),
                "rtsp_marginal_per_camera": round(marginal_cams, 2),
                "webrtc_marginal_per_stream": round(marginal_rtc, 2),
                "ratio_rtsp_to_webrtc": round(marginal_cams / marginal_rtc, 2) if marginal_rtc > 0 else None,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        camera.kill()
        camera.wait()
    print("%CPU of one core per stream, minus the idle process (marginal); RTSP/WebRTC is their ratio")
    print(f"{'cameras':>8} {'RTSP %CPU/cam':>14} {'fps/cam':>8} {'WebRTC %CPU/stream':>19} {'pkts/s':>7} {'RTSP/WebRTC':>12}")
    for r in results:
        print(f"{r['cameras']:>8} {r['rtsp_marginal_per_camera']:>14} {r['rtsp_fps_per_camera']:>8} "
              f"{r['webrtc_marginal_per_stream']:>19} {r['webrtc_packets_per_stream_s']:>7} {r['ratio_rtsp_to_webrtc']!s:>12}")
    print("SUMMARY " + json.dumps(results))


if __name__ == "__main__":
    main()
