"""Redis under Sentinel: the primary is killed while directives are issued and acknowledged; Sentinel
promotes a replica, the node follows it by itself, and nothing it confirmed is lost.

A primary, two replicas and one sentinel, all our own processes; the node's URL names the sentinel
and asks every event to be on one replica before it is confirmed (`wait_replicas=1`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.command.keys import COMMAND
from server.command.service import STREAM
from server.config import Config
from server.scheduler import ManualClock
from server.store import RedisStore, StoreUnavailable
from signaling.command import DirectiveAcknowledge, DirectiveIssue
from tests.redis_processes import RedisProcess, SentinelProcess
from tests.server.command.conftest import SECRET, CommandPlatform, Refused

pytestmark = pytest.mark.redis
NAME = "cp-primary"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[RedisProcess, list[RedisProcess], SentinelProcess]]:
    primary = RedisProcess(tmp_path / "primary")
    primary.start()
    replicas = [RedisProcess(tmp_path / f"replica{n}", "--replicaof", "127.0.0.1", str(primary.port)) for n in (1, 2)]
    for replica in replicas:
        replica.start()
    sentinel = SentinelProcess(tmp_path / "sentinel", NAME, primary)
    sentinel.start()
    try:
        await _until_replicated(primary, 2)
        yield primary, replicas, sentinel
    finally:
        sentinel.stop()
        for process in (primary, *replicas):
            process.stop()


async def _until_replicated(primary: RedisProcess, replicas: int, timeout: float = 15) -> None:
    client = aioredis.from_url(primary.url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            info = await client.info("replication")
            online = [info[key] for key in info if key.startswith("slave") and isinstance(info[key], dict)
                      and info[key].get("state") == "online"]
            if len(online) >= replicas:
                return
            assert time.monotonic() < deadline, "the replicas did not connect"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def _read_after_failover(url: str, stream: str, timeout: float = 20) -> list:
    """The whole stream, read as a node would: on a busy machine Sentinel may still be settling (a
    second failover when the new primary answered a ping late), when it names no primary for a moment."""
    reader = RedisStore(url, node_id="reader", key_prefix="cp:")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return await reader.read_events(stream, limit=100_000)
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await reader.close()


def _sentinel_url(sentinel: SentinelProcess, **query: str) -> str:
    return f"redis+sentinel://127.0.0.1:{sentinel.port}/{NAME}" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


async def test_a_write_waits_for_a_replica_and_is_refused_when_none_takes_it(cluster, tmp_path: Path) -> None:
    primary, replicas, sentinel = cluster
    store = RedisStore(_sentinel_url(sentinel, wait_replicas="2"), node_id="n", key_prefix="w:", wait_timeout=0.5)
    try:
        event = await store.append_event("log", actor="a", kind="k", data={"n": 1})
        for replica in replicas:  # both replicas hold it when it is confirmed
            client = aioredis.from_url(replica.url)
            assert len(await client.xrange("w:events:log")) == 1
            await client.aclose()
        replicas[1].kill()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="replicas"):
            await store.append_event("log", actor="a", kind="k", data={"n": 2})
        assert time.monotonic() - started < 2.0
        assert [e.id for e in await store.read_events("log")][:1] == [event.id]
    finally:
        await store.close()


async def test_the_primary_killed_while_directives_are_acknowledged_loses_nothing_confirmed(
    cluster, aiohttp_server: Callable[..., TestServer], demo_config: Config, tmp_path: Path,
) -> None:
    primary, replicas, sentinel = cluster
    config = msgspec.structs.replace(demo_config, server=msgspec.structs.replace(demo_config.server, data_dir=str(tmp_path / "data")))
    clock = ManualClock(time.time())
    store = RedisStore(_sentinel_url(sentinel, wait_replicas="1"), node_id="node-1", key_prefix="cp:", clock=clock.now,
                       command_timeout=1.0, connect_timeout=0.5)
    services = build_services(config, secret=SECRET, store=store, clock=clock)
    app = create_app(services)
    server = await aiohttp_server(app)
    confirmed: list[tuple[str, str]] = []  # (kind, directive id) the clients were told were stored
    refused: list[str] = []
    async with aiohttp.ClientSession() as session:
        platform = CommandPlatform(str(server.make_url("")).rstrip("/"), services, clock, app[COMMAND], session)
        issuer = await platform.console("mayor", "office")
        county = await platform.client("duty-qingshan", "qingshan")

        async def round_trip() -> None:
            try:
                ok = await issuer.request(DirectiveIssue(cls="guidance", title="核查", sites=["qingshan"]))
                confirmed.append(("issued", ok.directive_id))
                await county.wait_for(lambda c: any(m.directive and m.directive.id == ok.directive_id for m in c.of_kind("issued")), 10)
                while True:
                    try:
                        await county.request(DirectiveAcknowledge(directive_id=ok.directive_id))
                        confirmed.append(("acknowledged", ok.directive_id))
                        return
                    except Refused as exc:
                        if exc.code == "already_acknowledged":
                            return  # an earlier try was stored though its reply said unavailable
                        refused.append(exc.code)
                        await asyncio.sleep(0.2)
            except Refused as exc:
                refused.append(exc.code)
                await asyncio.sleep(0.2)

        for _ in range(5):
            await round_trip()
        before = len(confirmed)
        primary.kill()
        killed = time.monotonic()
        back_at = None
        while time.monotonic() - killed < 30 and (back_at is None or len(confirmed) < before + 10):
            count = len(confirmed)
            await round_trip()
            if back_at is None and len(confirmed) > count:
                back_at = time.monotonic() - killed
        for client in platform.clients:
            await client.close()
    assert back_at is not None and back_at < 15, f"writes did not come back after the failover ({back_at})"
    assert set(refused) <= {"store_unavailable", "busy"}, refused
    events = await _read_after_failover(_sentinel_url(sentinel), STREAM)
    stored = {(e.kind, str(e.data.get("directive_id"))) for e in events}
    lost = [item for item in confirmed if item not in stored]
    assert not lost, f"confirmed but lost after the failover: {lost}"
    assert len(confirmed) >= before + 10
    print(f"failover: writes back {back_at:.1f} s after the primary was killed; {len(confirmed)} confirmed, "
          f"{len(refused)} refused meanwhile, none lost")
