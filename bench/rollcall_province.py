"""Benchmark: a province-wide video check — 122 county-level sites answer one roll-call at once.

Each site is this project's synthetic client publishing a pre-encoded 160x90 VP8 loop at 5 fps (no
encoding while it runs). The server runs as its own process; we measure from `rollcall_start` until
every result is recorded and until every snapshot is stored, the snapshot times (press to stored
JPEG, from the log), and the server's CPU and memory.

    .venv/bin/python bench/rollcall_province.py [--sites 122] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.auth import TokenService  # noqa: E402
from signaling.rollcall import RollCallAnswer, RollCallCall, RollCallStart  # noqa: E402
from synthetic.client import RoomClient  # noqa: E402
from synthetic.encoded import encode_video_loop, video_loop_track  # noqa: E402

ROOM = "province"


def province_config(sites: int) -> str:
    """A TOML configuration: a provincial office and `sites` county-level units."""
    lines = ['[city]\nname_zh = "江东省"\nname_en = "Jiangdong Province"\n',
             '[[sites]]\nid = "province"\nname_zh = "省应急管理厅"\nname_en = "Provincial Emergency Department"\nkind = "office"\n']
    for n in range(1, sites + 1):
        lines.append(f'[[sites]]\nid = "county{n:03d}"\nname_zh = "第{n}县"\nname_en = "County {n}"\nkind = "county"\nparent = "province"\n')
    lines.append(f'[[rooms]]\nid = "{ROOM}"\nname_zh = "省级视频点名"\nname_en = "Province video check"\n')
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def main(sites: int, window: float) -> int:
    """Run the benchmark; returns the exit status (1 if the target was missed)."""
    work = Path(tempfile.mkdtemp(prefix="rollcall-bench-"))
    config = work / "province.toml"
    config.write_text(province_config(sites), encoding="utf-8")
    secret = secrets.token_hex(32)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A province's sites from one address are the load measured here, not an attack: no rate limits.
    env = {**os.environ, "DATA_DIR": str(work / "data"), "SERVER_SECRET": secret, "PYTHONUNBUFFERED": "1", "RATE_LIMITS": "off"}
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server", "run", "--config", str(config), "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    tokens = TokenService(secret.encode())
    clients: list[RoomClient] = []
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)  # server start-up: nothing to wait on but the port
        packets = encode_video_loop("VP8", width=160, height=90, fps=5, seconds=2, bitrate=120_000)
        calls: dict[str, asyncio.Future[None]] = {}
        answers: dict[str, float] = {}
        start_at = 0.0

        async def join(n: int) -> None:
            site = f"county{n:03d}"
            token = tokens.issue_device_token(identity=f"duty-{site}", site=site, room=ROOM, grants=("publish",), ttl=3600)
            client = RoomClient(base, ROOM, token, name=site)
            called: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            calls[site] = called

            def on_message(message: object) -> None:
                if isinstance(message, RollCallCall) and not called.done():
                    called.set_result(None)
            client.on_message = on_message
            await client.connect(timeout=60)
            await client.publish({"camera": video_loop_track(packets, fps=5)}, timeout=60)
            await client.wait_for(lambda c: c.publisher_state == "connected", 60)
            clients.append(client)

        t = time.monotonic()
        for batch in range(0, sites, 8):
            await asyncio.gather(*(join(n) for n in range(batch + 1, min(sites, batch + 8) + 1)))
        print(f"{sites} publishers connected in {time.monotonic() - t:.1f} s; warming up 3 s", flush=True)
        await asyncio.sleep(3)  # let every publisher's video settle before the call
        caller_token = tokens.issue_device_token(identity="provincial-desk", site="province", room=ROOM,
                                                 grants=("moderate",), ttl=3600)
        caller = RoomClient(base, ROOM, caller_token, name="caller")
        await caller.connect()
        clients.append(caller)

        async def answer(client: RoomClient) -> None:
            await calls[client.name]
            reply = await client.request(RollCallAnswer(rollcall_id=rid), timeout=window)
            assert reply.outcome == "answered", reply  # type: ignore[attr-defined]
            answers[client.name] = time.monotonic() - start_at

        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        start_at = time.monotonic()
        started = await caller.request(RollCallStart(sites=[f"county{n:03d}" for n in range(1, sites + 1)],
                                                     mode="all", window=window, grace=0, title="省级视频抽查 Province check"))
        rid = started.rollcall_id  # type: ignore[attr-defined]
        await asyncio.gather(*(answer(c) for c in clients if c.name != "caller"))
        all_results = time.monotonic() - start_at
        state: dict = {}
        while True:
            with urllib.request.urlopen(f"{base}/rollcalls/{rid}.json?token={caller_token}", timeout=10) as resp:
                state = json.loads(resp.read())
            if not state["open"]:
                break
            await asyncio.sleep(0.1)  # the server's view; polled over HTTP
        all_snapshots = time.monotonic() - start_at
        cpu = cpu_seconds(proc.pid) - cpu0
        wall = time.monotonic() - wall0
        took = [row["snapshot_took"] for row in state["sites"] if row["snapshot_took"] is not None]
        missing = [row["site"] for row in state["sites"] if not row["snapshot"]]
        outcomes = state["totals"]
        print(f"sites={sites} window={window:.0f}s  results: answered={outcomes['answered']} "
              f"no_video={outcomes['no_video']} absent={outcomes['absent']}")
        print(f"time to every result recorded: {all_results:.2f} s   (answer round trip p50={pct(list(answers.values()), 50):.2f} s)")
        print(f"time to every snapshot stored (roll-call closed): {all_snapshots:.2f} s   missing snapshots: {len(missing)}")
        if took:
            print(f"snapshot time (press -> JPEG stored): p50={pct(took, 50) * 1000:.0f} ms  p99={pct(took, 99) * 1000:.0f} ms  max={max(took) * 1000:.0f} ms")
        print(f"server CPU during the roll-call: {cpu:.2f} s over {wall:.2f} s = {100 * cpu / wall:.0f}% of one core;  RSS {rss_mb(proc.pid):.0f} MB")
        ok = all_snapshots < window and outcomes["answered"] == sites and not missing
        print("TARGET MET: every result and snapshot within the window" if ok else "TARGET MISSED")
        return 0 if ok else 1
    finally:
        for client in clients:
            await client.close()
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=122)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.sites, args.window)))
