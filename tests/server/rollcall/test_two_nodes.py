"""A roll-call on two nodes sharing one Redis: started on one, answered on the other, each step once.

Both nodes run in this process with their own manual clock (moved together). A room's sessions
live on the room's node, so the sites are put on a node through the room they join: the first
client of an unplaced room (with the loads equal or the other node busier) places it on the node
it reached.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from server.config import Config
from server.rollcall.keys import SCHEDULES
from server.rollcall.service import INDEX_STREAM, read_all, stream_of
from server.store import RedisStore
from signaling.rollcall import RollCallAnswer, RollCallCall, RollCallCallEnded, RollCallEscalation, RollCallStart
from tests.e2e.conftest import _free_port
from tests.server.test_store_contract import _delete_keys

from .conftest import START, RollCallPlatform

pytestmark = pytest.mark.redis
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"test-rc-nodes-{uuid.uuid4().hex[:8]}:"
    yield prefix
    await _delete_keys(redis_url, prefix)


async def test_a_roll_call_started_on_one_node_calls_and_hears_a_site_on_the_other_and_steps_once(
    make_platform: Callable[..., object], redis_url: str, prefix: str,
) -> None:
    nodes: list[RollCallPlatform] = [
        await make_platform(store_factory=lambda clock, n=n: RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now))
        for n in (1, 2)
    ]
    node1, node2 = nodes

    def advance(seconds: float) -> None:
        for node in nodes:
            node.clock.advance(seconds)

    caller = await node1.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    far = await node2.connect("desk-county01", "jiangbei", video=True, room="command")  # answers on the other node
    near = await node1.connect("desk-county03", "linjiang")  # never answers: absent, escalated
    parent = await node2.connect("desk-office", "office", room="command")
    assert set(node1.services.rooms.rooms) == {"consultation"} and set(node2.services.rooms.rooms) == {"command"}
    started = time.monotonic()
    reply = await caller.client.request(RollCallStart(sites=["jiangbei", "linjiang"], window=30, grace=10))
    rid = reply.rollcall_id
    await far.wait_message(RollCallCall, rollcall_id=rid, timeout=5)
    took = time.monotonic() - started
    assert took < 1.0, f"the call took {took:.2f} s to reach the other node's site"

    advance(2.5)
    answer = await far.client.request(RollCallAnswer(rollcall_id=rid))
    assert answer.outcome == "answered"
    await near.wait_message(RollCallCall, rollcall_id=rid, timeout=5)  # the next site, on the first node
    advance(31)
    await near.wait_message(RollCallCallEnded, rollcall_id=rid, timeout=5)
    advance(11)
    for node in nodes:
        await node.rollcalls.wait_for(lambda node=node: rid not in node.rollcalls.active, 10)
    escalation = await parent.wait_message(RollCallEscalation, rollcall_id=rid, timeout=5)
    assert escalation.sites == ["linjiang"]

    events = await read_all(node1.services, stream_of(rid))
    kinds = Counter(e.kind for e in events)
    assert kinds["called"] == 2 and kinds["window_ended"] == 2 and kinds["closed"] == 1 and kinds["escalated"] == 1, kinds
    assert kinds["pressed"] == 1 and kinds["snapshot"] == 1, kinds  # the snapshot taken where the video arrives
    index = [e for e in await read_all(node1.services, INDEX_STREAM) if e.data.get("id") == rid]
    assert [e.kind for e in index] == ["created", "closed"]
    for node in nodes:
        rollcall = await node.rollcalls.get(rid)
        assert {s: r.outcome for s, r in rollcall.results.items()} == {"jiangbei": "answered", "linjiang": "absent"}
        assert rollcall.results["jiangbei"].snapshot is not None


async def test_a_roll_call_calls_and_judges_a_site_on_the_other_node_of_a_room_across_nodes(
    make_platform: Callable[..., object], demo_config: Config, redis_url: str, prefix: str,
) -> None:
    nodes: list[RollCallPlatform] = []
    for n in (1, 2):  # one participant of a room per node, then the room spans to the other
        port = _free_port()
        settings = msgspec.structs.replace(demo_config.server, port=port, node_url=f"http://127.0.0.1:{port}", room_node_limit=1)
        nodes.append(await make_platform(
            config=msgspec.structs.replace(demo_config, server=settings), port=port,
            store_factory=lambda clock, n=n: RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now),
        ))
    node1, node2 = nodes
    caller = await node1.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    far = await node2.connect("desk-county01", "jiangbei", video=True)  # the same room, served on node 2
    near = await node1.connect("desk-county03", "linjiang")
    assert "desk-county01" in node2.services.rooms.rooms["consultation"].participants
    assert "desk-county03" in node1.services.rooms.rooms["consultation"].participants
    await caller.client.wait_for(lambda c: any(p.identity == "desk-county01" and p.publication_id in c.received
                                                for p in c.publications.values()), 15)  # its video crossed
    rid = (await caller.client.request(RollCallStart(sites=["jiangbei", "linjiang"], window=30, grace=10))).rollcall_id
    await far.wait_message(RollCallCall, rollcall_id=rid, timeout=5)
    for node in nodes:
        node.clock.advance(2.5)
    answer = await far.client.request(RollCallAnswer(rollcall_id=rid))
    assert answer.outcome == "answered"  # judged on node 2, where its camera arrives
    await near.wait_message(RollCallCall, rollcall_id=rid, timeout=5)
    for node in nodes:
        node.clock.advance(42)
    for node in nodes:
        await node.rollcalls.wait_for(lambda node=node: rid not in node.rollcalls.active, 10)
    for node in nodes:
        rollcall = await node.rollcalls.get(rid)
        assert {s: r.outcome for s, r in rollcall.results.items()} == {"jiangbei": "answered", "linjiang": "absent"}
        assert rollcall.results["jiangbei"].snapshot is not None


async def test_both_nodes_racing_every_step_of_a_roll_call_log_each_step_once(
    make_platform: Callable[..., object], redis_url: str, prefix: str,
) -> None:
    nodes: list[RollCallPlatform] = [
        await make_platform(start=START, store_factory=lambda clock, n=n: RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now))
        for n in (1, 2)
    ]
    caller = await nodes[0].connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    sites = ["jiangbei", "jiangnan", "linjiang"]
    reply = await caller.client.request(RollCallStart(sites=sites, window=10, grace=5))
    rid = reply.rollcall_id
    for _ in range(8):  # nobody answers: every window ends on both nodes' timers at the same moment
        for node in nodes:
            node.clock.advance(6)
        await asyncio.sleep(0.3)
    for node in nodes:
        await node.rollcalls.wait_for(lambda node=node: rid not in node.rollcalls.active, 10)
    kinds = Counter(e.kind for e in await read_all(nodes[0].services, stream_of(rid)))
    assert (kinds["called"], kinds["window_ended"], kinds["closed"]) == (3, 3, 1), kinds


async def test_a_schedule_both_nodes_arm_starts_one_roll_call_and_an_edit_on_one_node_rearms_the_other(
    make_platform: Callable[..., object], redis_url: str, prefix: str,
) -> None:
    nodes: list[RollCallPlatform] = [  # the clocks read 17:29:00 in Jiangzhou: the daily duty check is a minute away
        await make_platform(store_factory=lambda clock, n=n: RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now))
        for n in (1, 2)
    ]
    county = await nodes[1].connect("desk-county01", "jiangbei")
    for node in nodes:
        node.clock.advance(60)
    await asyncio.gather(*(node.services.scheduler.run_due() for node in nodes))
    call = await county.wait_message(RollCallCall, timeout=5)
    index = [e for e in await read_all(nodes[0].services, INDEX_STREAM) if e.kind == "created"]
    assert [e.data["id"] for e in index] == [call.rollcall_id], "one roll-call for one occurrence"
    for node in nodes:
        await node.rollcalls.wait_for(lambda node=node: call.rollcall_id in node.rollcalls.active, 5)

    runner1, runner2 = (node.app[SCHEDULES] for node in nodes)
    daily = next(s for s in await runner1.schedules() if s.id == "daily-duty")
    await runner1.save(msgspec.structs.replace(daily, cron="0 18 * * *"), actor="chief")
    deadline = time.monotonic() + 5
    while datetime.fromtimestamp(runner2.next_at.get("daily-duty", 0), SHANGHAI).hour != 18:
        assert time.monotonic() < deadline, "the other node did not re-arm the edited schedule"
        await asyncio.sleep(0.05)
    await runner1.delete("daily-duty", actor="chief")
    while "daily-duty" in runner2.next_at:
        assert time.monotonic() < deadline, "the other node did not disarm the deleted schedule"
        await asyncio.sleep(0.05)
