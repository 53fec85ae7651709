"""Two nodes on one Redis fold one duty log: a filing on one is on the other's board, the deadline is recorded once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from server.scheduler import ManualClock
from server.store import RedisStore

from tests.server.test_store_contract import _delete_keys

from .conftest import DAY, START, WELL_FORM, DutyPlatform, MakeDuty

pytestmark = pytest.mark.redis


@pytest.fixture
async def nodes(make_duty: MakeDuty, redis_url: str) -> AsyncIterator[list[DutyPlatform]]:
    prefix = f"test-duty-{uuid.uuid4().hex[:8]}:"
    clock = ManualClock(START)
    platforms = []
    for n in (1, 2):
        store = RedisStore(redis_url, node_id=f"node-{n}", key_prefix=prefix, clock=clock.now)
        platforms.append(await make_duty(store=store, clock=clock))
    yield platforms
    await _delete_keys(redis_url, prefix)


async def _caught_up(node: DutyPlatform, last: str) -> None:
    """Wait until the node has folded the log up to `last`."""
    async with asyncio.timeout(5):
        while node.duty.book.last_event_id != last:
            await node.duty.wait_change(node.duty.book.last_event_id, 5)


async def _board_after(node: DutyPlatform, after: str | None) -> dict[str, object]:
    """Node's board once its duty log has moved past `after` (a long poll that answers at the change)."""
    return await asyncio.wait_for(node.state("mayor", f"day={DAY}&after={after or ''}"), 5)


async def test_a_report_filed_on_one_node_is_on_the_other_nodes_board_at_once(nodes: list[DutyPlatform]) -> None:
    node1, node2 = nodes
    before = (await node1.state("mayor", f"day={DAY}"))["after"]
    await node2.post("leader03", "/duty/sites/linjiang/report", WELL_FORM)
    state = await _board_after(node1, before if isinstance(before, str) else None)
    rows = {r["site"]: r["status"] for r in state["rows"]}  # type: ignore[union-attr]
    assert rows["linjiang"] == "filed"


async def test_filings_racing_on_both_nodes_are_all_kept(nodes: list[DutyPlatform]) -> None:
    node1, node2 = nodes
    users = {"county01": "jiangbei", "county02": "jiangnan", "county03": "linjiang", "county04": "qingshan",
             "county05": "baishui", "county06": "yunxi"}
    await asyncio.gather(*(
        (node1 if n % 2 else node2).post(user, f"/duty/sites/{site}/report", WELL_FORM)
        for n, (user, site) in enumerate(users.items())))
    events = await node1.events()
    assert sorted(str(e.data["site"]) for e in events) == sorted(users.values())
    for node in nodes:
        await _caught_up(node, events[-1].id)
        assert {site for site, _ in node.duty.book.reports} == set(users.values())


async def test_the_deadline_fires_on_both_nodes_and_is_recorded_once(nodes: list[DutyPlatform]) -> None:
    node1, node2 = nodes
    await node1.post("leader03", "/duty/sites/linjiang/report", WELL_FORM)
    node1.clock.set(node1.duty.deadline(DAY))
    await asyncio.gather(node1.services.scheduler.run_due(), node2.services.scheduler.run_due())
    passed = [e for e in await node1.events() if e.kind == "deadline_passed"]
    assert len(passed) == 1
    # the reminder half an hour before fired on both nodes too, and went out once
    reminded = [e for e in await node1.events() if e.kind == "reminded"]
    assert sorted(str(e.data["site"]) for e in reminded) == sorted(s for s in node1.duty.reporting if s != "linjiang")
    last = (await node1.events())[-1].id
    for node in nodes:
        await _caught_up(node, last)
        assert node.duty.book.status("jiangbei", DAY, node.clock.now(), node.duty.deadline(DAY)) == "missing"
        assert node.duty.book.status("linjiang", DAY, node.clock.now(), node.duty.deadline(DAY)) == "filed"
        assert node.runner.next_at is not None and node.runner.next_at[0] == "2027-01-16"


async def test_two_nodes_recording_the_same_deadline_at_once_record_it_once(nodes: list[DutyPlatform]) -> None:
    # Without the claim (a node starting after an unrecorded deadline): the conditional append decides.
    node1, node2 = nodes
    node1.clock.set(node1.duty.deadline(DAY) + 60)
    recorded = await asyncio.gather(node1.duty.pass_deadline("2027-01-14"), node2.duty.pass_deadline("2027-01-14"))
    assert sum(event is not None for event in recorded) == 1
    assert len([e for e in await node1.events() if e.kind == "deadline_passed" and e.data["day"] == "2027-01-14"]) == 1
