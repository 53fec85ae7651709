"""The aiohttp application: build it from configuration, run it."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from media.aiortc.guard import check_hooks
from media.counters import RelayCounters
from media.tasks import TaskGroup
from server import access, accountability, cascade_http, command, duty, rate_limits, search, stats
from server import error_pages, http_media, metrics, pages, rollcall, web_security, whip
from server import camera_pages, cameras
from server.recording import install as recording
from server.auth import PasswordVerifier, TokenService
from server.cascade_http import NodeLinks
from server.config import Config
from server.connection import CloseReason, LifecycleCounters
from server.control import install as control
from server.directory import Directory
from server.keys import load_previous_secrets, load_secret
from server.memory import MemoryReleaser
from server.nodes import Nodes
from server.rate_limits import RateLimits
from server.registry import RoomRegistry
from server.relay import Relays
from server.revocations import RevocationList
from server.scheduler import Clock, Scheduler, SystemClock
from server.services import SERVICES, Limits, Services
from server.session import websocket_handler
from server.span import Span
from server.store import Store, open_store
from server.tls import server_ssl_context

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 10.0


def build_services(
    config: Config,
    *,
    secret: bytes,
    store: Store | None = None,
    clock: Clock | None = None,
    previous_secrets: tuple[bytes, ...] = (),
) -> Services:
    """Everything the handlers share, from configuration (the store is started by the app)."""
    # By default a node is its host and port: no two live processes share them, and a node
    # restarted in place (after a crash) takes its own rooms back at once instead of waiting for
    # its former self to expire from the registry.
    node_id = os.environ.get("NODE_ID") or f"{socket.gethostname()}-{config.server.port}"
    store = store or open_store(config.server.redis_url, node_id=node_id)
    counters = RelayCounters()
    lifecycle = LifecycleCounters()
    background = TaskGroup("server")
    settings = config.server
    # Each room is created with its control (roles, locks, mutes): the session layer knows no domain.
    rooms = RoomRegistry(config, store, counters, lifecycle=lifecycle, control=control.control_factory(config, store, background))
    nodes = Nodes(store, rooms, settings, secret=secret, previous_secrets=previous_secrets)
    services = Services(
        config=config,
        store=store,
        # Revocations live in the store, users and sites in the configuration: every node refuses alike.
        tokens=TokenService(
            secret, directory=Directory(config), revocations=RevocationList(store), max_device_ttl=settings.device_token_max_ttl,
            previous_secrets=previous_secrets,
        ),
        passwords=PasswordVerifier(),
        rooms=rooms,
        counters=counters,
        limits=Limits(settings.max_sdp_bytes, settings.max_tracks),
        nodes=nodes,
        relays=Relays(nodes, max_message_bytes=settings.max_message_bytes),
        lifecycle=lifecycle,
        scheduler=Scheduler(clock or SystemClock()),
        background=background,
        rate_limits=RateLimits(settings.rate_limits),
    )
    if settings.room_node_limit:  # rooms span nodes: each room's part here, media relayed once between nodes
        links = NodeLinks(nodes, services.relays)
        rooms.spans = lambda room: Span(
            room, store=store, tail=services.tail, links=links, node_id=nodes.node_id, url=nodes.url,
            ttl=settings.node_ttl, refresh=settings.node_heartbeat,
        )
    return services


def create_app(services: Services) -> web.Application:
    """The application with every route; the store starts and stops with it."""
    check_hooks()
    app = web.Application(client_max_size=max(services.config.server.max_sdp_bytes * 2, 1024 * 1024))
    app[SERVICES] = services
    web_security.install(app, services.config.server)  # origins, JSON bodies, CSP and headers, device links
    error_pages.install(app)  # a browser's refused page: bilingual, styled, what to do next
    pages.add_routes(app)
    metrics.add_routes(app, services)
    whip.add_routes(app)
    cascade_http.add_routes(app)
    http_media.install(app, services.config.server, os.environ)  # CORS, Link ice-server, WWW-Authenticate
    app.router.add_get("/ws", websocket_handler)
    control.install(app, services)
    app.cleanup_ctx.append(_folding)
    app.cleanup_ctx.append(_lifecycle)
    rollcall.install(app, services)  # after _lifecycle: it resumes roll-calls from the started store
    command.install(app, services)  # after _lifecycle: it folds the command log from the started store
    duty.install(app, services)  # after command: a duty report links the site's incident reports
    recording.install(app, services)  # after roll-call: its policy records a roll-call's room
    accountability.install(app)  # after command, roll-call and duty: it reads their folds
    search.install(app)  # likewise
    stats.install(app)  # after accountability: it reads through it
    rate_limits.install(services)  # after command: it wraps the directive handler
    access.install(app, services)  # after _lifecycle: revocations from the store, live sessions rechecked
    cameras.install(app, services)  # after _lifecycle and metrics: the cameras' log, their pulls and states
    camera_pages.add_routes(app)
    app.on_startup.append(_folded)  # after every cleanup context has started (aiohttp runs them first)
    return app


async def _folding(_: web.Application) -> AsyncIterator[None]:
    """The logs are folded at start-up with the cyclic garbage collector paused: the fold allocates
    millions of objects that all stay (a province's year of records), and each collection would walk
    all of those made so far, a third of the start-up for nothing."""
    gc.disable()
    yield
    gc.enable()  # on a failed start-up too


async def _folded(_: web.Application) -> None:
    """Once folded: the collector back."""
    gc.enable()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.store.start()
    await services.rooms.start()
    services.scheduler.start()
    services.tail.start()  # the domains say what they follow as they fold their logs, after this
    # Pages may reconnect through the other live nodes: their origins are this node's peers.
    policy = app[web_security.WEB_SECURITY].policy
    services.nodes.on_change(lambda live: policy.set_peers((n.public_url for n in live.values()), time.monotonic()))
    await services.relays.start()
    await services.nodes.start()
    refresher = asyncio.get_running_loop().create_task(_refresh(services), name="presence-refresh")
    yield
    refresher.cancel()
    await asyncio.gather(refresher, return_exceptions=True)
    await services.tail.close()
    await services.nodes.close()  # out of the registry first: new clients go to the other nodes
    await services.relays.close()
    await services.rooms.close()  # every connection of every room: sessions, encoders, players
    for session in list(services.sessions):  # sessions that never joined a room
        await session.close(CloseReason.SHUTDOWN)
    await services.scheduler.close()
    await services.background.close()
    await services.store.close()


async def _refresh(services: Services) -> None:
    memory = MemoryReleaser()
    while True:
        await asyncio.sleep(REFRESH_INTERVAL)
        memory.after(services.lifecycle.ended)
        try:
            await services.rooms.refresh()
        except Exception:  # noqa: BLE001 - media keeps flowing while the store is away
            logger.warning("presence refresh failed; will retry", exc_info=True)


def _banner(config: Config, scheme: str) -> str:
    settings = config.server
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"{scheme}://{host}:{settings.port}/"
    lines = [
        "",
        f"  {config.city.name_zh} {config.city.name_en} — 视频会商与指挥平台 / video command platform",
        f"  Open 打开: {url}",
    ]
    if not config.server.redis_url:
        lines.append("  Store 存储: embedded memory store — records live only as long as this process")
    demo_users = [u.username for u in config.users]
    if demo_users:
        lines.append("  Demo logins 演示账号 (password 密码 = 'demo' + user name 用户名):")
        lines.append("    " + ", ".join(demo_users[:6]) + (" …" if len(demo_users) > 6 else ""))
        lines.append("    e.g. mayor / demomayor")
    rooms = ", ".join(f"{r.id}" for r in config.rooms)
    lines.append(f"  Rooms 会商室: {rooms}")
    return "\n".join(lines) + "\n"


def run_server(config: Config, config_path: Path | None = None, *, worker_port: int | None = None) -> None:
    """Run the server in the foreground until interrupted; SIGHUP reloads the users from `config_path`.

    A worker (server/workers.py) shares the public port with its siblings and listens for them on
    127.0.0.1:`worker_port` as well (plain HTTP: the loopback never leaves the machine)."""
    data_dir = Path(config.server.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = load_secret(data_dir, os.environ)
    services = build_services(config, secret=secret, previous_secrets=load_previous_secrets(os.environ))
    ssl_context = server_ssl_context(config.server, data_dir)
    app = create_app(services)
    if config_path is not None:
        access.reload_on_hangup(app, config_path)
    if worker_port is None:
        print(_banner(config, "https" if ssl_context else "http"), flush=True)
        web.run_app(app, host=config.server.host, port=config.server.port, ssl_context=ssl_context, print=None, access_log=None)
        return
    if os.environ.get("WORKER_INDEX", "0") == "0":
        print(_banner(config, "https" if ssl_context else "http"), flush=True)
    asyncio.run(_serve_worker(app, config, ssl_context, worker_port))


async def _serve_worker(app: web.Application, config: Config, ssl_context: ssl.SSLContext | None, worker_port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, config.server.host, config.server.port, ssl_context=ssl_context, reuse_port=True).start()
        await web.TCPSite(runner, "127.0.0.1", worker_port).start()
        await stop.wait()
    finally:
        await runner.cleanup()
