"""An in-process server on a manual clock, and Python sites that publish pre-encoded video."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from media.publication import Publication
from server.app import build_services, create_app
from server.config import Config
from server.rollcall.keys import ROLLCALLS
from server.rollcall.service import RollCallService
from server.scheduler import ManualClock
from server.services import Services
from server.store import MemoryStore, Store
from signaling.messages import ServerMessage
from synthetic.client import RoomClient
from synthetic.encoded import encode_video_loop, video_loop_track

SECRET = b"rollcall-test-secret-" + b"0" * 40
# 2027-01-15 17:29:00 in Asia/Shanghai
START = 1_800_000_000.0 + 89 * 60


@dataclass
class Site:
    """A connected Python participant and every server message it received."""

    client: RoomClient
    messages: list[ServerMessage] = field(default_factory=list)

    async def wait_message(self, kind: type, timeout: float = 10.0, **match: object) -> ServerMessage:
        """The first received message of `kind` whose fields match."""
        def found() -> ServerMessage | None:
            return next((m for m in self.messages if isinstance(m, kind)
                         and all(getattr(m, k) == v for k, v in match.items())), None)
        await self.client.wait_for(lambda _: found() is not None, timeout)
        result = found()
        assert result is not None
        return result


@dataclass
class RollCallPlatform:
    """The running server, its clock and roll-call service, and a way to connect sites."""

    url: str
    services: Services
    clock: ManualClock
    app: object
    sites: list[Site] = field(default_factory=list)

    @property
    def rollcalls(self) -> RollCallService:
        """The roll-call service of the app."""
        return self.app[ROLLCALLS]  # type: ignore[index]

    async def connect(self, identity: str, site: str, *, grants: Iterable[str] = ("publish", "subscribe"),
                      video: bool = False, room: str = "consultation") -> Site:
        """Join as a site; with `video`, publish a 160x90 pre-encoded loop and wait until it arrives."""
        token = self.services.tokens.issue_device_token(identity=identity, site=site, room=room, grants=grants, ttl=600)
        client = RoomClient(self.url, room, token, name=identity)
        entry = Site(client)
        client.on_message = entry.messages.append
        await client.connect()
        self.sites.append(entry)
        if video:
            await client.publish({"camera": video_loop_track(VIDEO, fps=5)})
            await client.wait_for(lambda c: any(p.identity == identity and p.kind == "video"
                                                for p in c.publications.values()), 10)
            await asyncio.wait_for(self.publication_of(identity, room).next_keyframe(), 10)
        return entry

    def publication_of(self, identity: str, room: str = "consultation") -> Publication:
        """The identity's video publication on the server."""
        router = self.services.rooms.rooms[room].router
        return next(p for p in router.publications.values() if p.owner == identity and p.kind == "video")


VIDEO = encode_video_loop("VP8", width=160, height=90, fps=5, seconds=2, bitrate=150_000)


def with_data_dir(config: Config, data_dir: Path) -> Config:
    """The configuration with its data directory moved."""
    return msgspec.structs.replace(config, server=msgspec.structs.replace(config.server, data_dir=str(data_dir)))


@pytest.fixture
async def make_platform(aiohttp_server: Callable[..., TestServer], demo_config: Config, tmp_path: Path
                        ) -> AsyncIterator[Callable[..., object]]:
    """Build the platform (optionally from another configuration); sites are closed afterwards."""
    built: list[RollCallPlatform] = []

    async def _make(config: Config | None = None, start: float = START, store: Store | None = None,
                    store_factory: Callable[[ManualClock], Store] | None = None, port: int | None = None) -> RollCallPlatform:
        """`store` (already holding records) or `store_factory(clock)` instead of an empty MemoryStore;
        `port` (with the configuration's node_url naming it) for nodes that call each other."""
        clock = ManualClock(start)
        if store is None:
            store = store_factory(clock) if store_factory else MemoryStore(node_id="test", clock=clock.now)
        services = build_services(with_data_dir(config or demo_config, tmp_path), secret=SECRET, store=store, clock=clock)
        app = create_app(services)
        server = await aiohttp_server(app, port=port) if port else await aiohttp_server(app)
        platform = RollCallPlatform(str(server.make_url("")).rstrip("/"), services, clock, app)
        built.append(platform)
        return platform

    yield _make
    for platform in built:
        for site in platform.sites:
            await site.client.close()
