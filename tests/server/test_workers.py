"""`python -m server run --workers 2`: two worker nodes share the port and Redis, rooms spread over
them, a client reaching either sees the others, a worker killed comes back, and all stop together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth import TokenService
from server.store import RedisStore
from server.workers import WorkersError, worker_count
from synthetic.client import RoomClient
from tests.e2e.conftest import REPO
from tests.redis_processes import RedisProcess
from tests.server.test_nodes import camera, frames_from

pytestmark = pytest.mark.redis
SECRET = "workers-test-secret-" + "0" * 44


def test_the_worker_count_is_a_number_or_one_per_core() -> None:
    assert worker_count("auto", cores=2) == 2
    assert worker_count("3") == 3
    for bad in ("0", "many", "-1"):
        with pytest.raises(WorkersError):
            worker_count(bad)


def test_several_workers_without_redis_are_refused_clearly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run([sys.executable, "-m", "server", "run", "--workers", "2", "--config", "config/demo.toml"],
                          cwd=REPO, env={**env, "DATA_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "REDIS_URL" in done.stderr


def _ports(count: int) -> int:
    """A port with the `count` ports after it free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count < 65536 and all(_free(base + i) for i in range(1, count + 1)):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _health(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return dict(json.load(response))
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    port = _ports(2)
    env = {**os.environ, "REDIS_URL": redis.url, "SERVER_SECRET": SECRET, "DATA_DIR": str(tmp_path / "data"),
           "RATE_LIMITS": "off", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "workers.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server", "run", "--workers", "2", "--config", "config/demo.toml",
                             "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            health = _health(url)
            if health is not None and len(health["nodes"]) == 2:  # type: ignore[arg-type]
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "workers.log").read_text()[-3000:]
            time.sleep(0.2)  # process start-up: nothing to wait on but the port
        yield proc, url, redis.url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()


def _token(identity: str, room: str) -> str:
    return TokenService(SECRET.encode()).issue_device_token(identity=identity, site="police110", room=room,
                                                            grants=("publish", "subscribe"), ttl=600)


async def test_two_workers_share_the_port_spread_the_rooms_and_come_back_when_killed(supervisor) -> None:
    proc, url, redis_url = supervisor
    workers = _children(proc.pid)
    assert len(workers) == 2
    # Rooms spread: each room's first client lands on some worker; placement puts rooms on the least loaded.
    clients = []
    try:
        for room in ("consultation", "command"):
            for name in ("a", "b"):
                client = RoomClient(url, room, _token(f"{room}-{name}", room), name=f"{room}-{name}")
                await client.connect()
                clients.append(client)
        await clients[0].publish(camera("A"))
        await clients[2].publish(camera("C"))
        await asyncio.gather(frames_from(clients[1], "consultation-a"), frames_from(clients[3], "command-a"))
        store = RedisStore(redis_url, node_id="probe")
        owners = {await store.room_owner(room) for room in ("consultation", "command")}
        await store.close()
        assert len(owners) == 2, f"both rooms on one worker: {owners}"
    finally:
        for client in clients:
            await client.close()

    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while True:
        now = _children(proc.pid)
        if len(now) == 2 and workers[0] not in now and len((_health(url) or {}).get("nodes", [])) == 2:  # type: ignore[arg-type]
            break
        assert time.monotonic() < deadline, f"the killed worker was not started again: {now}"
        await asyncio.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not _children(proc.pid)
