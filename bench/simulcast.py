"""The simulcast benchmark: the wall scenario against one room, with and without simulcast.

16 publishers send three VP8 layers each as a browser does (240x135, 480x270, 960x540 from a
pre-encoded loop, one SSRC per layer: `synthetic.simulcast`); N lean subscribers (`bench.load`)
each show the 16 as tiles of `--tile` device pixels and one of them as the spotlight. In one run
against the same server and publishers:

1. simulcast: the subscribers report their tile sizes; each tile gets the layer that fills it;
2. full layers: the subscribers report every tile at spotlight size (today's forwarding: every
   stream at the top layer); bytes sent by the server and its CPU per subscriber, against 1;
3. a subscriber capped at 1 Mbit/s: its datagrams go through a 1 Mbit/s queue in the load tool
   (delayed, dropped past 250 ms of queue) and its REMB comes from aiortc's receive-side
   estimator on what leaves that queue, as a browser's does: the time until the server sends
   it no more than the cap, the spotlight's delivered frame rate under the cap, and the time
   back to the spotlight's top layer once the cap is lifted.

    .venv/bin/python -m bench.simulcast                  # 8 subscribers, ~2 minutes
    .venv/bin/python -m bench.simulcast --subscribers 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from bench.forwarding import free_port, stop_process, wait_up
from bench.load import LeanSubscriber, cpu_seconds, post
from media.aiortc.client import send_rtcp
from media.packets import parse_rtp

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SPOTLIGHT = (1280, 720)
MAX_QUEUE = 0.25  # seconds of queue a shaped link holds before it drops


class ShapedSubscriber(LeanSubscriber):
    """A lean subscriber behind a link of `cap` bits/s (None: unlimited), sending REMB from the
    receive-side estimator on what the link lets through."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.cap: float | None = None
        self._free_at = 0.0
        self._estimator = RemoteBitrateEstimator()
        self._abs_send_time_id = 0
        self.dropped = 0

    async def _apply(self, sdp: str) -> None:
        for line in sdp.splitlines():
            if line.startswith("a=extmap:") and line.endswith(ABS_SEND_TIME_URI):
                self._abs_send_time_id = int(line[9:].split(" ")[0].split("/")[0])
        await super()._apply(sdp)

    def _on_datagram(self, data: bytes) -> None:
        if self.cap is None:
            self._arrive(data)
            return
        now = time.monotonic()
        free_at = max(self._free_at, now) + len(data) * 8 / self.cap
        if free_at - now > MAX_QUEUE:
            self.dropped += 1
            return
        self._free_at = free_at
        asyncio.get_running_loop().call_at(free_at, self._arrive, data)

    def _arrive(self, data: bytes) -> None:
        parsed = parse_rtp(data, self._abs_send_time_id, 0)  # the header is plaintext in SRTP
        if parsed is not None and parsed[7] is not None:
            remb = self._estimator.add(
                abs_send_time=parsed[7], arrival_time_ms=int(time.time() * 1000), payload_size=len(data), ssrc=parsed[4]
            )
            if remb is not None:
                packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(*remb))
                send_rtcp(self.pc, bytes(packet))
        super()._on_datagram(data)


async def publish(args: argparse.Namespace) -> None:
    """Publisher role: the simulcast publishers; prints their publication ids, runs until stdin closes."""
    from synthetic.simulcast import SimulcastLoopPublisher, encode_layers

    layers = encode_layers(seconds=2.0)
    publishers = []
    async with aiohttp.ClientSession() as session:
        for index in range(args.publishers):
            publisher = SimulcastLoopPublisher(layers)
            reply = await post(session, f"{args.url}/publish", {"name": f"pub{index}", "sdp": await publisher.offer()})
            await publisher.accept(reply["sdp"])
            publishers.append((publisher, reply["publications"]))
    print(json.dumps({"pid": os.getpid(), "publications": [p for _pub, ids in publishers for p in ids]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for publisher, _ids in publishers:
        await publisher.close()


async def _sizes(session: aiohttp.ClientSession, url: str, name: str, publications: list[str], tile: tuple[int, int], full: bool) -> None:
    sizes = {pid: SPOTLIGHT if full or index == 0 else tile for index, pid in enumerate(publications)}
    await post(session, f"{url}/tile_sizes", {"name": name, "sizes": sizes})


async def _link(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, Any]:
    async with session.get(f"{url}/subscriber_link", params={"name": name}) as response:
        return await response.json()  # type: ignore[no-any-return]


async def _window(session: aiohttp.ClientSession, url: str, pid: int, subscribers: list[LeanSubscriber], seconds: float) -> dict[str, Any]:
    """Server bytes and CPU per subscriber over `seconds`, and the frames the subscribers completed."""
    async def forwarded() -> int:
        return int((await (await session.get(f"{url}/stats")).json())["bytes_forwarded"])

    def frames() -> tuple[int, int]:
        counted = [st for s in subscribers if s.counter for st in s.counter.streams.values()]
        return sum(st.frames_complete for st in counted), sum(st.frames_expected for st in counted)

    bytes0, cpu0, frames0, t0 = await forwarded(), cpu_seconds(pid), frames(), time.monotonic()
    await asyncio.sleep(seconds)
    bytes1, cpu1, frames1, t1 = await forwarded(), cpu_seconds(pid), frames(), time.monotonic()
    elapsed, count = t1 - t0, len(subscribers)
    return {
        "mbit_s_per_subscriber": round((bytes1 - bytes0) * 8 / elapsed / count / 1e6, 3),
        "server_cpu_percent": round((cpu1 - cpu0) * 100 / elapsed, 1),
        "server_cpu_ms_per_subscriber_s": round((cpu1 - cpu0) * 1000 / elapsed / count, 2),
        "frames_complete_ratio": round((frames1[0] - frames0[0]) / max(1, frames1[1] - frames0[1]), 4),
    }


async def _capped(session: aiohttp.ClientSession, url: str, publications: list[str], tile: tuple[int, int], cap: float, seconds: float) -> dict[str, Any]:
    """The 1 Mbit/s subscriber: time down, spotlight frame rate under the cap, time back up."""
    shaped = ShapedSubscriber("capped")
    await shaped.start(session, url, publications)
    await _sizes(session, url, "capped", publications, tile, full=False)
    spotlight = publications[0]
    # Uncapped first, until its own estimate (and the probes) have the spotlight on the top layer.
    started = time.monotonic()
    top_at = await _until_top(session, url, spotlight, 40)
    uncapped_top = None if top_at is None else round(top_at - started, 1)
    await asyncio.sleep(2)
    link = await _link(session, url, "capped")
    uncapped_rate = link["sent_rate"]
    shaped.cap = cap
    t0 = time.monotonic()
    down_at = None
    while time.monotonic() - t0 < 30:
        link = await _link(session, url, "capped")
        if link["steps_down"] and link["sent_rate"] <= cap:
            down_at = time.monotonic() - t0
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    ssrc = link["layers"][spotlight][2]
    counter = shaped.counter
    assert counter is not None
    stream = counter.streams.get(ssrc)
    frames0 = stream.frames_complete if stream else 0
    t1 = time.monotonic()
    await asyncio.sleep(seconds)
    stream = counter.streams.get(ssrc)
    spotlight_fps = ((stream.frames_complete if stream else 0) - frames0) / (time.monotonic() - t1)
    under_cap = await _link(session, url, "capped")
    under_cap["spotlight_fps"] = spotlight_fps
    shaped.cap = None
    t2 = time.monotonic()
    top_at = await _until_top(session, url, spotlight, 60)
    up_at = None if top_at is None else top_at - t2
    await shaped.close()
    layers = under_cap["layers"]
    return {
        "cap_mbit_s": cap / 1e6,
        "seconds_to_top_layer_uncapped": uncapped_top,
        "uncapped_sent_mbit_s": round(uncapped_rate / 1e6, 3),
        "seconds_to_step_down": None if down_at is None else round(down_at, 1),
        "under_cap_sent_mbit_s": round(under_cap["sent_rate"] / 1e6, 3),
        "under_cap_estimate_mbit_s": None if under_cap["estimate"] is None else round(under_cap["estimate"] / 1e6, 3),
        "under_cap_spotlight_layer": layers[spotlight][1],
        "under_cap_tile_layers": sorted({str(v[1]) for pid, v in layers.items() if pid != spotlight}),
        "under_cap_paused": len(under_cap["paused"]),
        "spotlight_fps_under_cap": round(spotlight_fps, 1),
        "seconds_back_to_top_layer": None if up_at is None else round(up_at, 1),
        "shaped_drops": shaped.dropped,
    }


async def _until_top(session: aiohttp.ClientSession, url: str, spotlight: str, limit: float) -> float | None:
    """When the capped subscriber's spotlight is sent at the top layer (None: not within `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        link = await _link(session, url, "capped")
        if link["estimate"] is not None and link["layers"][spotlight][:2] == [2, 2]:
            return time.monotonic()
        await asyncio.sleep(0.2)
    return None


async def measure(args: argparse.Namespace, url: str, publications: list[str], server_pid: int) -> dict[str, Any]:
    """The three phases against one server and one set of publishers."""
    tile = (args.tile_width, args.tile_height)
    async with aiohttp.ClientSession() as session:
        subscribers = [LeanSubscriber(f"sub{j}") for j in range(args.subscribers)]
        for subscriber in subscribers:
            await subscriber.start(session, url, publications)
        results: dict[str, Any] = {"publishers": len(publications), "subscribers": args.subscribers, "tile": list(tile)}
        for phase, full in (("simulcast", False), ("full_layers", True)):
            for subscriber in subscribers:
                await _sizes(session, url, subscriber.name, publications, tile, full)
            await asyncio.sleep(args.warmup)
            results[phase] = await _window(session, url, server_pid, subscribers, args.seconds)
        for subscriber in subscribers:
            await _sizes(session, url, subscriber.name, publications, tile, full=False)
        results["capped"] = await _capped(session, url, publications, tile, args.cap, args.seconds)
        for subscriber in subscribers:
            await subscriber.close()
    simulcast, full = results["simulcast"], results["full_layers"]
    results["bytes_ratio"] = round(simulcast["mbit_s_per_subscriber"] / full["mbit_s_per_subscriber"], 3)
    results["cpu_ratio"] = round(simulcast["server_cpu_ms_per_subscriber_s"] / full["server_cpu_ms_per_subscriber_s"], 3)
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server and the publishers, measure, stop them."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "bench.server", "--mode", "relay", "--port", str(port)])
    try:
        wait_up(url, server, "benchmark server")
        publishing = subprocess.Popen(
            [sys.executable, "-m", "bench.simulcast", "--role", "publish", "--url", url, "--publishers", str(args.publishers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            started = json.loads(publishing.stdout.readline())  # type: ignore[union-attr]
            return asyncio.run(measure(args, url, started["publications"], server.pid))
        finally:
            publishing.stdin.close()  # type: ignore[union-attr]
            try:
                publishing.wait(20)
            except subprocess.TimeoutExpired:
                publishing.kill()
    finally:
        stop_process(server)


def main() -> None:
    """Run the benchmark and print its figures (and JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="")
    parser.add_argument("--role", choices=("run", "publish"), default="run")
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--tile-width", type=int, default=240, help="device pixels of a wall tile")
    parser.add_argument("--tile-height", type=int, default=135)
    parser.add_argument("--cap", type=float, default=1_000_000, help="bits/s of the capped subscriber")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=4)
    args = parser.parse_args()
    if args.role == "publish":
        asyncio.run(publish(args))
        return
    results = run(args)
    s, f = results["simulcast"], results["full_layers"]
    print(f"wall: {results['publishers']} simulcast publishers, {results['subscribers']} subscribers, tiles {args.tile_width}x{args.tile_height} + spotlight {SPOTLIGHT[0]}x{SPOTLIGHT[1]}")
    print(f"  Mbit/s sent per subscriber:   simulcast {s['mbit_s_per_subscriber']}  full layers {f['mbit_s_per_subscriber']}  ratio {results['bytes_ratio']}")
    print(f"  server CPU ms/subscriber-s:   simulcast {s['server_cpu_ms_per_subscriber_s']}  full layers {f['server_cpu_ms_per_subscriber_s']}  ratio {results['cpu_ratio']}")
    print(f"  frames complete/expected:     simulcast {s['frames_complete_ratio']}  full layers {f['frames_complete_ratio']}")
    print(f"  capped subscriber: {json.dumps(results['capped'])}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
