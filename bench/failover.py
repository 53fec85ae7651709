"""Node failover time: how long after the node a camera's room lives on dies a wall sees it again.

Three `python -m server run` nodes over one `redis-server` of the bench's own. A field unit
publishes on node 3 (the room is placed there, or, with `--span`, the room spans nodes and the
unit's part is there); a wall watches through node 2. Node 3 is killed (SIGKILL) or frozen
(SIGSTOP: a hung process, a machine gone); both clients do what a page does: reconnect through the
live nodes the welcome named, the unit publishes again, and the time from the signal to the wall's
first decoded frame of the unit is taken. Each case is run `--rounds` times on fresh nodes.

    .venv/bin/python -m bench.failover               # SIGKILL and SIGSTOP, one node per room and spanning
    .venv/bin/python -m bench.failover --rounds 1    # once each
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.forwarding import free_port, wait_up
from server.auth import TokenService
from synthetic.client import FrameCounter, RoomClient, join_somewhere
from synthetic.pattern import TestPatternTrack

ROOM = "command"
BUDGET = 20.0  # give up on a round after this long


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A redis-server of the bench's own (no persistence: nothing here outlives the run)."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextmanager
def node(directory: Path, redis_url: str, node_id: str, secret: str, span: bool) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """One server node until the block ends (killed then, whatever state it is in)."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "NODE_ID": node_id, "SERVER_SECRET": secret, "DATA_DIR": str(directory),
           "ROOM_NODE_LIMIT": "1" if span else "0", "PYTHONUNBUFFERED": "1"}
    with open(directory / f"{node_id}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "server", "run", "--config", "config/demo.toml", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, process, f"node {node_id}", path="/healthz")
        yield url, process
    finally:
        process.kill()
        process.wait()


async def frames_from(client: RoomClient, identity: str, deadline: float, before: frozenset[str] = frozenset()) -> str:
    """Until `client` decodes a frame of `identity`'s camera (not one of the publications `before`);
    the publication's id."""
    def fresh(c: RoomClient) -> list[str]:
        return [p.publication_id for p in c.publications.values()
                if p.identity == identity and p.kind == "video" and p.publication_id in c.received and p.publication_id not in before]

    await client.wait_for(lambda c: bool(fresh(c)), timeout=max(0.1, deadline - time.monotonic()))
    publication_id = fresh(client)[0]
    track = client.received[publication_id]
    async with FrameCounter(track) as counter:
        await counter.wait_frames(1, timeout=max(0.1, deadline - time.monotonic()))
    return publication_id


async def one_round(how: signal.Signals, span: bool) -> float:
    """Seconds from the signal to the wall's first frame of the unit again."""
    secret = secrets.token_hex(32)
    tokens = TokenService(secret.encode())

    def token(identity: str, site: str) -> str:
        return tokens.issue_device_token(identity=identity, site=site, room=ROOM, grants=("publish", "subscribe"), ttl=600)

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(Path(tmp)))
        (url1, _), (url2, _), (url3, victim) = (
            stack.enter_context(node(Path(tmp), redis_url, f"node-{i}", secret, span)) for i in (1, 2, 3)
        )
        await asyncio.sleep(1.5)  # a heartbeat: every node sees the others (what placement reads)
        unit = RoomClient(url3, ROOM, token("unit", "mobile01"), name="unit")
        wall = RoomClient(url2, ROOM, token("wall", "command_centre"), name="wall")
        clients = [unit, wall]
        try:
            await unit.connect()
            await unit.publish({"camera": TestPatternTrack("Unit", width=320, height=180, fps=15)})
            await wall.connect()
            assert unit.welcome is not None
            identity = unit.welcome.you.identity
            seen = frozenset({await frames_from(wall, identity, time.monotonic() + 15)})
            victim.send_signal(how)
            dead = time.monotonic()
            deadline = dead + BUDGET
            await unit.drop()  # its node is gone: a page's own checks (ICE, ping) notice as much
            if not span:
                await asyncio.wait_for(wall.wait_disconnected(), timeout=BUDGET)  # relayed through node 2: cut
            unit = await join_somewhere([url1, url2], ROOM, token("unit", "mobile01"), "unit-again", deadline)
            clients.append(unit)
            await unit.publish({"camera": TestPatternTrack("Unit", width=320, height=180, fps=15)})
            if not span:
                wall = await join_somewhere([url2, url1], ROOM, token("wall", "command_centre"), "wall-again", deadline)
                clients.append(wall)
            await frames_from(wall, identity, deadline, before=seen)
            return time.monotonic() - dead
        finally:
            for client in clients:
                await client.close()
            if how is signal.SIGSTOP:
                victim.kill()


def main() -> None:
    """Run every case and print the medians and maxima."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':<34}{'median s':>10}{'max s':>8}  rounds")
    for span in (False, True):
        for how in (signal.SIGKILL, signal.SIGSTOP):
            times = [asyncio.run(one_round(how, span)) for _ in range(args.rounds)]
            label = f"{'room across nodes' if span else 'room on one node'}, {how.name}"
            print(f"{label:<34}{statistics.median(times):>10.2f}{max(times):>8.2f}  "
                  + " ".join(f"{t:.2f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
