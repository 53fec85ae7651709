"""Benchmark: one directive to 5,000 recipient sites, 1,000 of them connected over `/ws`; then 5,000 acks.

Run: `.venv/bin/python bench/directive_fanout.py` (needs `redis-server` on PATH). It starts its own
redis-server (AOF, `appendfsync always` unless --fsync everysec), generates a site tree of 5,000
recipients (a city, 50 counties, 99 townships each) and 50 rooms, runs `python -m server run` over
it, connects lean clients (plain aiohttp websockets, no WebRTC) and prints:
delivery p50/p99 of the fan-out, acknowledgements stored per second, server RSS, Redis used_memory.

`--nodes 2` runs two nodes on the one Redis and connects the clients to them in turn, the issuer to
the first; placement spreads the 50 rooms over both, a client that reached the other node is
relayed to its room's. Half the sessions live on the node that did not issue the directive: it
reaches them through the log every node follows. Delivery is also given per node connected to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from server.auth import TokenService  # noqa: E402
from signaling.codec import encode, parse_server  # noqa: E402
from signaling.command import CommandEvent, CommandOk, CommandSubscribe, DirectiveAcknowledge, DirectiveIssue  # noqa: E402
from signaling.messages import Error, Hello, Welcome  # noqa: E402

COUNTIES, TOWNSHIPS, ROOMS = 50, 99, 50


def free_port() -> int:
    """An unused TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Block until something listens on `port` (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def write_config(path: Path) -> list[str]:
    """A generated city of 5,000 sites (plus the office) and 50 rooms; returns the township ids."""
    lines = ['[city]\nname_zh = "基准市"\nname_en = "Bench City"\n',
             '[[sites]]\nid = "office"\nname_zh = "市应急局"\nname_en = "City office"\nkind = "office"\n']
    towns = []
    for c in range(COUNTIES):
        lines.append(f'[[sites]]\nid = "c{c:02d}"\nname_zh = "县{c}"\nname_en = "County {c}"\nkind = "county"\nparent = "office"\n')
        for t in range(TOWNSHIPS):
            towns.append(f"c{c:02d}-t{t:02d}")
            lines.append(f'[[sites]]\nid = "{towns[-1]}"\nname_zh = "镇{c}-{t}"\nname_en = "Town {c}-{t}"\n'
                         f'kind = "township"\nparent = "c{c:02d}"\n')
    for r in range(ROOMS):
        lines.append(f'[[rooms]]\nid = "r{r:02d}"\nname_zh = "会商{r}"\nname_en = "Room {r}"\n')
    path.write_text("\n".join(lines), encoding="utf-8")
    return towns


class Client:
    """One lean site client: joined to a room, subscribed, timing the directives it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, site: str) -> None:
        self.ws, self.site = ws, site
        self.received: dict[str, float] = {}  # directive id -> arrival (perf_counter)
        self.acked: list[float] = []
        self.got = asyncio.Event()
        self.synced = asyncio.Event()
        self.errors: list[str] = []

    async def read(self) -> None:
        async for raw in self.ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                continue
            message = parse_server(raw.data)
            if isinstance(message, CommandEvent) and message.event.kind == "issued" and message.directive:
                self.received.setdefault(message.directive.id, time.perf_counter())
                self.got.set()
            elif isinstance(message, CommandOk) and message.id and message.id.startswith("a"):
                self.acked.append(time.perf_counter())
            elif isinstance(message, Error):
                self.errors.append(message.code)
            elif message.id == "sub":
                self.synced.set()


async def join(session: aiohttp.ClientSession, base: str, tokens: TokenService, identity: str, site: str,
               room: str, grants: tuple[str, ...], readers: list[asyncio.Task[None]]) -> Client:
    """Connect, say hello, subscribe; start the reader."""
    ws = await session.ws_connect(base + "/ws", max_msg_size=16 * 1024 * 1024)
    token = tokens.issue_device_token(identity=identity, site=site, room=room, grants=grants, ttl=3600)
    await ws.send_str(encode(Hello(id="h", room=room, token=token)))
    while True:
        message = parse_server((await ws.receive()).data)
        if isinstance(message, Welcome):
            break
        if isinstance(message, Error):
            raise SystemExit(f"join refused: {message.code} {message.message}")
    client = Client(ws, site)
    readers.append(asyncio.get_running_loop().create_task(client.read()))
    await ws.send_str(encode(CommandSubscribe(id="sub")))
    await client.synced.wait()
    return client


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(bases: list[str], secret: str, towns: list[str], connected: int, redis_url: str, pids: list[int]) -> None:
    tokens = TokenService(secret.encode())
    readers: list[asyncio.Task[None]] = []
    base, pid = bases[0], pids[0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        issuer = await join(session, base, tokens, "bench-issuer", "office", "r00", ("issue",), readers)
        step = len(towns) // connected
        chosen = towns[::step][:connected]
        t = time.perf_counter()
        clients: list[Client] = []
        node_of: dict[int, int] = {}  # id(client) -> the node it connected to
        for i in range(0, len(chosen), 50):
            batch = await asyncio.gather(*(join(session, bases[n % len(bases)], tokens, f"duty-{s}", s, f"r{n % ROOMS:02d}", ("publish",), readers)
                                           for n, s in enumerate(chosen[i:i + 50], start=i)))
            for n, client in enumerate(batch, start=i):
                node_of[id(client)] = n % len(bases)
            clients += batch
        print(f"connected {len(clients)} clients in {time.perf_counter() - t:.1f} s over {len(bases)} node(s); "
              f"server RSS {', '.join(f'{rss_mb(p):.0f}' for p in pids)} MB")

        directive_ids = []
        for n in range(5):
            for c in clients:
                c.got.clear()
            t0 = time.perf_counter()
            await issuer.ws.send_str(encode(DirectiveIssue(id=f"i{n}", cls="guidance", title=f"bench {n}", subtrees=["office"])))
            await asyncio.wait_for(asyncio.gather(*(c.got.wait() for c in clients)), 60)
            did = next(iter(clients[0].received.keys() - set(directive_ids)))
            directive_ids.append(did)
            delays = sorted(c.received[did] - t0 for c in clients)
            p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99) - 1]
            label = "fan-out" if n == 0 else f"fan-out #{n + 1}"
            print(f"{label}: 1 directive to {len(towns) + COUNTIES + 1} recipients, {len(clients)} connected: "
                  f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
            if len(bases) > 1:
                for node in range(len(bases)):
                    on = sorted(c.received[did] - t0 for c in clients if node_of[id(c)] == node)
                    print(f"    clients on node {node + 1}{' (the issuer’s)' if node == 0 else ''}: {len(on)}, "
                          f"p50 {on[len(on) // 2] * 1000:.0f} ms, p99 {on[int(len(on) * 0.99) - 1] * 1000:.0f} ms")
            if n == 0:
                first = (p50, p99)

        total = len(clients) * len(directive_ids)
        t0 = time.perf_counter()
        for c in clients:
            for k, did in enumerate(directive_ids):
                await c.ws.send_str(encode(DirectiveAcknowledge(id=f"a{k}", directive_id=did)))
        sent = time.perf_counter() - t0
        while sum(len(c.acked) for c in clients) + sum(len(c.errors) for c in clients) < total:
            await asyncio.sleep(0.01)  # a benchmark's progress poll, not a test
        elapsed = max(t for c in clients for t in c.acked) - t0
        errors = sum(len(c.errors) for c in clients)
        if errors:
            from collections import Counter
            print("error codes:", dict(Counter(code for c in clients for code in c.errors)))
        connection = aioredis.from_url(redis_url)
        info = await connection.info("memory")
        stored = await connection.xlen("cp:events:command")
        await connection.aclose()
        print(f"acknowledgements: {total} sent in {sent:.2f} s, all confirmed after {elapsed:.2f} s: "
              f"{total / elapsed:.0f} acks/s stored ({errors} errors)")
        print(f"server RSS {', '.join(f'{rss_mb(p):.0f}' for p in pids)} MB; Redis used_memory {info['used_memory'] / 1e6:.1f} MB; "
              f"events in the command stream {stored}")
        print(f"SUMMARY p50={first[0] * 1000:.0f}ms p99={first[1] * 1000:.0f}ms acks_per_s={total / elapsed:.0f} "
              f"rss_mb={rss_mb(pid):.0f} redis_mb={info['used_memory'] / 1e6:.1f}")
        for c in [issuer, *clients]:
            await c.ws.close()
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connected", type=int, default=1000)
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always")
    parser.add_argument("--nodes", type=int, default=1, help="server nodes sharing the one Redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        towns = write_config(tmpdir / "bench.toml")
        redis_port = free_port()
        ports = [free_port() for _ in range(args.nodes)]
        redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--appendonly", "yes", "--appendfsync", args.fsync, "--dir", tmp, "--save", ""],
                                      stdout=subprocess.DEVNULL)
        servers: list[subprocess.Popen[bytes]] = []
        try:
            wait_port(redis_port, redis_proc)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            secret = secrets.token_hex(32)
            for n, port in enumerate(ports, start=1):
                # Hundreds of clients from one address are the load measured here, not an attack: no rate limits.
                env = {**os.environ, "REDIS_URL": redis_url, "PORT": str(port), "DATA_DIR": tmp, "SERVER_SECRET": secret,
                       "RATE_LIMITS": "off", "NODE_ID": f"bench-{n}"}
                log = open(tmpdir / f"server{n}.log", "wb")
                servers.append(subprocess.Popen([sys.executable, "-m", "server", "run", "--config", str(tmpdir / "bench.toml")],
                                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
            for port, server in zip(ports, servers):
                wait_port(port, server)
            print(f"redis appendfsync={args.fsync}; {args.nodes} node(s), pids {', '.join(str(s.pid) for s in servers)}")
            asyncio.run(run([f"http://127.0.0.1:{port}" for port in ports], secret, towns, args.connected, redis_url,
                            [s.pid for s in servers]))
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=30)
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
