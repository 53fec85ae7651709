"""Replay on `command_subscribe`: paged, one at a time per socket, only what the site may see,
and a server that stays responsive while a big log is replayed (issue 11, item 2)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from server.auth import Identity
from server.command.service import Caller, CommandService
from signaling.command import CommandSubscribe, CommandSynced

from .conftest import CommandPlatform, Refused

SITE = "qingshan"
OTHER = "jiangbei"


def _issuer() -> Caller:
    identity = Identity(identity="mayor", site="office", name="mayor", grants=frozenset({"issue"}), rooms=frozenset(),
                        kind="user", expires_at=2**40, token_id="t")
    return Caller(identity, "test-session", "127.0.0.1")


async def _fill(service: CommandService, count: int, first: int = 0) -> None:
    """`count` directives to SITE and as many to OTHER, each delivered: 4 * count events."""
    caller = _issuer()
    for n in range(first, first + count):
        for site in (SITE, OTHER):
            event = await service.record(caller, "issued", {
                "directive_id": f"d-{site}-{n}", "cls": "reference", "title": f"通知 {n}", "body": "",
                "recipients": [site], "ack_by": None, "feedback_by": None,
            })
            await service.mark_delivered(event.text("directive_id"), [site])


def _visible_ids(service: CommandService) -> list[str]:
    """The events SITE may see, computed from the directives' recipients (not from the views)."""
    return [e.id for d in service.ledger.directives.values() if SITE in d.recipients for e in service.timeline[d.id]]


async def _probe(platform: CommandPlatform, latencies: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        async with platform.session.get(platform.url + "/healthz") as response:
            assert response.status == 200
        latencies.append(time.perf_counter() - started)


async def test_many_subscribes_without_after_keep_the_server_responsive_and_replay_once(
    command_platform: CommandPlatform, caplog: pytest.LogCaptureFixture,
) -> None:
    service = command_platform.command.service
    await _fill(service, 1500)
    expected = _visible_ids(service)
    assert len(expected) == 3000  # more than the /ws outbox holds (2000)
    client = await command_platform.client("duty-qingshan", SITE, subscribe=False)
    latencies: list[float] = []
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="server")
    caplog.clear()
    # What is measured is the server's own blocking: not a full collection of pytest's heap.
    gc.freeze()
    probe = asyncio.get_running_loop().create_task(_probe(command_platform, latencies, stop))
    try:
        replies = await asyncio.gather(*(client.request(CommandSubscribe()) for _ in range(40)), return_exceptions=True)
    finally:
        stop.set()
        await probe
        gc.unfreeze()
    synced = [r for r in replies if isinstance(r, CommandSynced)]
    refused = [r for r in replies if isinstance(r, Refused)]
    assert len(synced) + len(refused) == 40, replies
    assert {r.code for r in refused} <= {"subscribe_in_progress"}
    assert sum(r.replayed for r in synced) == len(expected)
    assert list(client.events) == expected  # everything it may see, once, in log order
    assert client.duplicates == 0
    assert max(latencies) < 0.25, f"/healthz took {max(latencies):.3f} s while replaying"  # today: 10 s
    lines = [r for r in caplog.records if r.name.startswith("server")]
    assert len(lines) <= 2, [r.getMessage() for r in lines[:5]]
    assert not client.ws.closed


async def test_a_replay_skips_what_the_site_may_not_see_and_live_events_follow_it_in_order(
    command_platform: CommandPlatform,
) -> None:
    service = command_platform.command.service
    await _fill(service, 1500)
    client = await command_platform.client("duty-qingshan", SITE, subscribe=False)
    subscribing = asyncio.get_running_loop().create_task(client.request(CommandSubscribe()))
    await client.wait_for(lambda c: bool(c.events))
    assert command_platform.command.handlers.replays.running == 1
    await _fill(service, 5, first=1500)  # while the replay runs: they arrive once, after it
    reply = await subscribing
    assert isinstance(reply, CommandSynced) and reply.replayed == 3000
    await client.wait_for(lambda c: len(c.events) == len(_visible_ids(service)))
    assert list(client.events) == _visible_ids(service)
    assert client.duplicates == 0
    assert all(m.directive is not None and SITE in m.directive.id for m in client.events.values())


async def test_a_second_subscribe_on_a_synced_socket_replays_nothing(command_platform: CommandPlatform) -> None:
    service = command_platform.command.service
    await _fill(service, 20)
    client = await command_platform.client("duty-qingshan", SITE)
    assert len(client.events) == 40
    again = await client.request(CommandSubscribe())
    assert isinstance(again, CommandSynced) and again.replayed == 0
    assert client.duplicates == 0


async def test_a_subscribe_with_a_bad_event_id_is_refused(command_platform: CommandPlatform) -> None:
    client = await command_platform.client("duty-qingshan", SITE, subscribe=False)
    with pytest.raises(Refused) as refused:
        await client.request(CommandSubscribe(after="not-an-id"))
    assert refused.value.code == "bad_event_id"
    assert isinstance(await client.request(CommandSubscribe()), CommandSynced)
