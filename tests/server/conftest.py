"""An in-process server over the demo configuration, and device tokens for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import argon2
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import DEFAULT_CONFIG_PATH, Config, load_config
from server.scheduler import ManualClock
from server.services import Services
from server.store import MemoryStore

SECRET = b"test-secret-" + b"0" * 40


@dataclass
class Platform:
    """A running server: its base URL, its live state, and a token minter."""

    url: str
    services: Services

    def token(
        self,
        identity: str,
        *,
        site: str = "jiangbei",
        room: str = "consultation",
        grants: Iterable[str] = ("publish", "subscribe"),
        ttl: int = 600,
    ) -> str:
        """A device token signed with the server's secret."""
        return self.services.tokens.issue_device_token(identity=identity, site=site, room=room, grants=grants, ttl=ttl)


@pytest.fixture
def demo_config() -> Config:
    """The demo configuration, untouched by the environment."""
    return load_config(DEFAULT_CONFIG_PATH, env={})


@pytest.fixture
async def platform(aiohttp_server: Callable[..., TestServer], demo_config: Config) -> Platform:
    """The whole server in this process on an ephemeral port, with the embedded store."""
    services = build_services(demo_config, secret=SECRET, store=MemoryStore(node_id="test"))
    server = await aiohttp_server(create_app(services))
    return Platform(url=str(server.make_url("")).rstrip("/"), services=services)


PlatformFactory = Callable[..., Awaitable[Platform]]


@pytest.fixture
def make_platform(aiohttp_server: Callable[..., TestServer], demo_config: Config) -> PlatformFactory:
    """Like `platform`, with `[server]` settings changed: `await make_platform(reconnect_grace=3)`."""

    async def make(**settings: object) -> Platform:
        config = msgspec.structs.replace(demo_config, server=msgspec.structs.replace(demo_config.server, **settings))
        services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test"))
        server = await aiohttp_server(create_app(services))
        return Platform(url=str(server.make_url("")).rstrip("/"), services=services)

    return make


@dataclass
class WebPlatform(Platform):
    """A platform for the browser-facing rules: a clock the test moves, cheap password hashes, cookies."""

    clock: ManualClock
    app: web.Application

    def cookie(self, username: str = "mayor") -> dict[str, str]:
        """A `Cookie` header with a logged-in user's session, as the browser would send it."""
        user = self.services.config.user(username)
        assert user is not None
        return {"Cookie": f"cp_session={self.services.tokens.issue_session(user, 3600)}"}


WebPlatformFactory = Callable[..., Awaitable[WebPlatform]]


@pytest.fixture
def make_web_platform(aiohttp_server: Callable[..., TestServer], demo_config: Config, tmp_path: Path) -> WebPlatformFactory:
    """The demo server with `[server]` settings changed; every password is still "demo" + the user name,
    hashed with small argon2 parameters (the tests check behaviour, not cost)."""

    async def make(**settings: object) -> WebPlatform:
        cheap = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        users = tuple(msgspec.structs.replace(u, password_hash=cheap.hash("demo" + u.username)) for u in demo_config.users)
        server_settings = msgspec.structs.replace(demo_config.server, data_dir=str(tmp_path), **settings)
        config = msgspec.structs.replace(demo_config, users=users, server=server_settings)
        clock = ManualClock()
        services = build_services(config, secret=SECRET, store=MemoryStore(node_id="test", clock=clock.now), clock=clock)
        server = await aiohttp_server(create_app(services))
        return WebPlatform(url=str(server.make_url("")).rstrip("/"), services=services, clock=clock, app=server.app)

    return make
