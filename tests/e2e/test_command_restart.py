"""Nothing acknowledged is lost: SIGKILL the server mid-burst of acknowledgements, restart, count."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis

from server.auth import TokenService
from server.config import DEFAULT_CONFIG_PATH, load_config
from signaling.codec import encode, parse_server
from signaling.command import CommandOk, DirectiveAcknowledge, DirectiveIssue
from signaling.messages import Error, Hello, Welcome

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
DIRECTIVES = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # process start-up: nothing to wait on but the port
    raise RuntimeError(f"port {port} did not open")


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[str]:
    """Our own redis-server with AOF and fsync on every write."""
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
         "--appendfsync", "always", "--dir", str(tmp_path), "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class ServerProcess:
    """`python -m server run` over Redis, killable."""

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.port = _free_port()
        self.secret = secrets.token_hex(32)
        self.env = {**os.environ, "REDIS_URL": redis_url, "PORT": str(self.port), "DATA_DIR": str(data_dir),
                    "SERVER_SECRET": self.secret, "PYTHONUNBUFFERED": "1"}
        self.log = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "server", "run"], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def token(self, identity: str, site: str, grants: tuple[str, ...]) -> str:
        return TokenService(self.secret.encode()).issue_device_token(
            identity=identity, site=site, room="consultation", grants=grants, ttl=600)


async def _join(session: aiohttp.ClientSession, server: ServerProcess, identity: str, site: str,
                grants: tuple[str, ...]) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"http://127.0.0.1:{server.port}/ws")
    await ws.send_str(encode(Hello(id="h", room="consultation", token=server.token(identity, site, grants))))
    while True:
        message = parse_server((await ws.receive()).data)
        if isinstance(message, Welcome):
            return ws
        assert not isinstance(message, Error), message


async def _ack_all(ws: aiohttp.ClientWebSocketResponse, site: str, directives: list[str],
                   confirmed: list[tuple[str, str, str]], third: asyncio.Event, total: int) -> None:
    """Send every acknowledgement at once; keep the (directive, site, event id) of each confirmation."""
    for n, did in enumerate(directives):
        await ws.send_str(encode(DirectiveAcknowledge(id=f"{site}:{n}", directive_id=did)))
    try:
        async for raw in ws:
            if raw.type != aiohttp.WSMsgType.TEXT:
                break
            message = parse_server(raw.data)
            if isinstance(message, CommandOk) and message.event_id and message.id and ":" in message.id:
                confirmed.append((message.directive_id or "", site, message.event_id))
                if len(confirmed) >= total // 3:
                    third.set()
    except (aiohttp.ClientError, ConnectionError):
        pass


async def test_every_acknowledged_write_survives_a_sigkill_exactly_once(durable_redis: str, tmp_path: Path) -> None:
    server = ServerProcess(durable_redis, tmp_path)
    server.start()
    sites = [s.id for s in load_config(DEFAULT_CONFIG_PATH, env={}).sites if s.id != "office"]
    confirmed: list[tuple[str, str, str]] = []
    async with aiohttp.ClientSession() as session:
        issuer = await _join(session, server, "mayor", "office", ("issue",))
        directives = []
        for n in range(DIRECTIVES):
            await issuer.send_str(encode(DirectiveIssue(id=f"i{n}", cls="guidance", title=f"d{n}", sites=sites)))
            while True:
                message = parse_server((await issuer.receive()).data)
                if isinstance(message, CommandOk) and message.id == f"i{n}":
                    directives.append(message.directive_id)
                    break
        clients = [await _join(session, server, f"duty-{site}", site, ("publish",)) for site in sites]
        total = len(sites) * DIRECTIVES
        third = asyncio.Event()
        burst = [asyncio.create_task(_ack_all(ws, site, directives, confirmed, third, total))
                 for ws, site in zip(clients, sites)]
        await asyncio.wait_for(third.wait(), 20)
        server.kill()  # mid-burst: a third of the acknowledgements are confirmed
        await asyncio.wait_for(asyncio.gather(*burst), 10)
    assert 0 < len(confirmed) < total, "the kill should land in the middle of the burst"

    server.start()
    connection = aioredis.from_url(durable_redis)
    try:
        entries = await connection.xrange("cp:events:command")
    finally:
        await connection.aclose()
    acks = [(msgspec.json.decode(fields[b"e"]), raw_id.decode()) for raw_id, fields in entries
            if msgspec.json.decode(fields[b"e"])["kind"] == "acknowledged"]
    stored = {(body["data"]["directive_id"], body["data"]["site"]): event_id for body, event_id in acks}
    assert len(stored) == len(acks), "an acknowledgement was stored twice"
    for directive_id, site, event_id in confirmed:
        assert stored.get((directive_id, site)) == event_id
    async with aiohttp.ClientSession() as session:
        issuer = await _join(session, server, "mayor", "office", ("issue",))
        await issuer.send_str(encode(DirectiveAcknowledge(id="again", directive_id=confirmed[0][0])))
        message = parse_server((await issuer.receive()).data)
        while message.id != "again":
            message = parse_server((await issuer.receive()).data)
        assert isinstance(message, Error) and message.code == "not_recipient"
        again = await _join(session, server, f"duty-{confirmed[0][1]}", confirmed[0][1], ("publish",))
        await again.send_str(encode(DirectiveAcknowledge(id="again", directive_id=confirmed[0][0])))
        message = parse_server((await again.receive()).data)
        while message.id != "again":
            message = parse_server((await again.receive()).data)
        assert isinstance(message, Error) and message.code == "already_acknowledged"
    server.kill()
