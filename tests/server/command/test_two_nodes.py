"""Two nodes on one Redis fold one command log: what one node records, the other's sessions get.

Both nodes run in this process (two apps, two stores with one key prefix, one manual clock). The
sites' sockets are `/command/ws` ones, which stay on the node they reach (a room's `/ws` sessions
all live on the room's node), so every site is on the node the test chooses; tests/server/test_nodes.py
runs nodes as processes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.command.keys import COMMAND
from server.command.service import STREAM
from server.config import Config
from server.scheduler import ManualClock
from server.store import RedisStore
from signaling.command import DirectiveAcknowledge, DirectiveIssue, DirectiveRead

from tests.e2e.conftest import _free_port
from tests.server.test_store_contract import _delete_keys

from .conftest import SECRET, CommandClient, CommandPlatform, Refused

pytestmark = pytest.mark.redis


@pytest.fixture
async def nodes(aiohttp_server: Callable[..., TestServer], demo_config: Config, redis_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[CommandPlatform]]:
    prefix = f"test-nodes-{uuid.uuid4().hex[:8]}:"
    clock = ManualClock(time.time())
    platforms: list[CommandPlatform] = []
    async with aiohttp.ClientSession() as session:
        for n in (1, 2):
            port = _free_port()
            server_settings = msgspec.structs.replace(demo_config.server, data_dir=str(tmp_path_factory.mktemp(f"node{n}")),
                                                      port=port, node_url=f"http://127.0.0.1:{port}")
            config = msgspec.structs.replace(demo_config, server=server_settings)
            store = RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now)
            services = build_services(config, secret=SECRET, store=store, clock=clock)
            app = create_app(services)
            server = await aiohttp_server(app, port=port)
            platforms.append(CommandPlatform(str(server.make_url("")).rstrip("/"), services, clock, app[COMMAND], session))
        yield platforms
        for platform in platforms:
            for client in platform.clients:
                await client.close()
    await _delete_keys(redis_url, prefix)


async def test_a_directive_issued_on_one_node_reaches_a_site_on_the_other_within_a_second(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    issuer = await node1.console("mayor", "office")
    county = await node2.console("duty-qingshan", "qingshan", grants=("publish",))
    started = time.monotonic()
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="转移群众", sites=["qingshan"]))
    await county.wait_for(lambda c: bool(c.of_kind("issued")), timeout=5)
    took = time.monotonic() - started
    assert took < 1.0, f"the directive took {took:.2f} s to reach the other node's site"
    # the site's node hands it over and records it delivered; the issuer on the first node hears of it
    await issuer.wait_for(lambda c: any(m.event.kind == "delivered" for m in c.events.values()), timeout=5)
    await county.request(DirectiveRead(directive_id=ok.directive_id))
    await county.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    await issuer.wait_for(lambda c: bool(c.of_kind("acknowledged")), timeout=5)
    for node in nodes:
        directive = node.command.service.ledger.directives[ok.directive_id]
        assert directive.recipients["qingshan"].stage == "acknowledged"


async def test_a_console_on_the_other_node_replays_and_follows_the_same_directives(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    issuer = await node1.console("mayor", "office")
    before = await issuer.request(DirectiveIssue(cls="reference", title="通报一", sites=["qingshan"]))
    watcher = await node2.console("mayor", "office")  # the same person's console open on the other node
    await watcher.wait_for(lambda c: any(m.directive and m.directive.id == before.directive_id for m in c.of_kind("issued")), timeout=5)
    after = await issuer.request(DirectiveIssue(cls="reference", title="通报二", sites=["qingshan"]))
    await watcher.wait_for(lambda c: any(m.directive and m.directive.id == after.directive_id for m in c.of_kind("issued")), timeout=5)
    async with node2.session.get(f"{node2.url}/command/directives/{after.directive_id}",
                                 headers={"Cookie": f"cp_session={node2.services.tokens.issue_session(node2.services.config.user('mayor'), 600)}"}) as page:
        assert page.status == 200
        assert "通报二" in await page.text()


async def test_the_same_site_acknowledging_on_both_nodes_at_once_is_recorded_once(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    issuer = await node1.console("mayor", "office")
    on1 = await node1.console("duty-qingshan-1", "qingshan", grants=("publish",))
    on2 = await node2.console("duty-qingshan-2", "qingshan", grants=("publish",))
    for _ in range(5):
        ok = await issuer.request(DirectiveIssue(cls="guidance", title="核查", sites=["qingshan"]))
        await on1.wait_for(lambda c: any(m.directive and m.directive.id == ok.directive_id for m in c.of_kind("issued")), timeout=5)
        await on2.wait_for(lambda c: any(m.directive and m.directive.id == ok.directive_id for m in c.of_kind("issued")), timeout=5)
        results = await asyncio.gather(
            on1.request(DirectiveAcknowledge(directive_id=ok.directive_id)),
            on2.request(DirectiveAcknowledge(directive_id=ok.directive_id)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, Refused)]
        assert len(refused) == 1 and refused[0].code in ("already_acknowledged", "in_progress"), results
        events = await node1.services.store.read_events(STREAM, limit=10_000)
        acks = [e for e in events if e.kind == "acknowledged" and e.data.get("directive_id") == ok.directive_id]
        assert len(acks) == 1


async def test_a_deadline_both_nodes_watch_is_marked_overdue_once(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    clock = node1.clock
    issuer = await node1.console("mayor", "office")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="限时回复", sites=["qingshan", "linjiang"], ack_by=clock.now() + 60))
    for node in nodes:
        await _until(lambda node=node: ok.directive_id in node.command.service.ledger.directives)
    clock.advance(61)
    await asyncio.gather(node1.services.scheduler.run_due(), node2.services.scheduler.run_due())
    await issuer.wait_for(lambda c: len(c.of_kind("overdue")) >= 2, timeout=5)
    events = await node1.services.store.read_events(STREAM, limit=10_000)
    overdue = sorted(e.data["site"] for e in events if e.kind == "overdue" and e.data.get("directive_id") == ok.directive_id)
    assert overdue == ["linjiang", "qingshan"]
    for node in nodes:
        assert node.command.service.ledger.directives[ok.directive_id].recipients["qingshan"].overdue == ("acknowledge",)


async def test_the_automatic_reminder_before_a_deadline_both_nodes_watch_is_recorded_once(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    clock = node1.clock
    issuer = await node1.console("mayor", "office")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="限时签收", sites=["qingshan"], ack_by=clock.now() + 3600))
    for node in nodes:
        await _until(lambda node=node: ok.directive_id in node.command.service.ledger.directives)
    clock.advance(3600 - 15 * 60)
    await asyncio.gather(node1.services.scheduler.run_due(), node2.services.scheduler.run_due())
    await issuer.wait_for(lambda c: bool(c.of_kind("reminded")), timeout=5)
    events = await node1.services.store.read_events(STREAM, limit=10_000)
    assert len([e for e in events if e.kind == "reminded" and e.data.get("directive_id") == ok.directive_id]) == 1


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_logout_on_one_node_ends_the_same_sign_in_on_the_other(nodes: list[CommandPlatform]) -> None:
    node1, node2 = nodes
    cookie = node1.services.tokens.issue_session(node1.services.config.user("mayor"), 600)
    headers = {"Cookie": f"cp_session={cookie}"}
    ws = await node2.session.ws_connect(f"{node2.url}/command/ws", headers={**headers, "Origin": node2.url})
    console = CommandClient(ws)
    node2.clients.append(console)
    await console.start(None)
    async with node1.session.post(f"{node1.url}/logout", headers={**headers, "Origin": node1.url}, allow_redirects=False) as out:
        assert out.status in (200, 303)
    started = time.monotonic()
    await asyncio.wait_for(console._reader, 10)  # type: ignore[arg-type]  # the other node closes the socket
    took = time.monotonic() - started
    assert took < node2.services.config.server.revocation_poll + 2.0, took
    async with node2.session.get(f"{node2.url}/command", headers=headers, allow_redirects=False) as page:
        assert page.status in (302, 303, 401), "the other node no longer takes the cookie"
