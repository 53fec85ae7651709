"""The WebSocket outbox: bounded, one log line when a client cannot keep up, room for bulk senders,
and held messages that follow a bulk send in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import TestServer

from server.outbox import Outbox
from signaling.codec import parse_server
from signaling.messages import Error, Pong, ServerMessage

LIMIT = 10

Script = Callable[[Outbox], Awaitable[None]]


@dataclass
class Served:
    """What the client of one scripted socket received."""

    messages: list[ServerMessage]
    close_code: int | None


@pytest.fixture
async def serve(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[Callable[[Script], Awaitable[Served]]]:
    """Run `script(outbox)` on a fresh socket's outbox and collect what the client receives."""
    scripts: list[Script] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        outbox = Outbox(ws, limit=LIMIT, label="test")
        assert Outbox.of(ws) is outbox
        writer = asyncio.get_running_loop().create_task(outbox.run())
        await scripts.pop()(outbox)
        outbox.close()
        await writer
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    server = await aiohttp_server(app)

    async with aiohttp.ClientSession() as session:
        async def run(script: Script) -> Served:
            scripts.append(script)
            received: list[ServerMessage] = []
            async with session.ws_connect(server.make_url("/ws")) as ws:
                async for raw in ws:
                    received.append(parse_server(raw.data))
                return Served(received, ws.close_code)

        yield run


async def test_a_full_outbox_closes_the_socket_with_one_log_line(
    serve: Callable[[Script], Awaitable[Served]], caplog: pytest.LogCaptureFixture,
) -> None:
    async def flood(outbox: Outbox) -> None:
        for n in range(10_000):  # the writer never runs in between: the queue overflows at LIMIT + 1
            outbox.send(Pong(id=str(n)))
        assert outbox.closed
        assert not await outbox.room()

    caplog.set_level(logging.WARNING, logger="server.outbox")
    served = await serve(flood)
    assert served.close_code == WSCloseCode.TRY_AGAIN_LATER
    assert served.messages == []  # what was queued is dropped: the client resumes from what it saw
    assert [r.getMessage() for r in caplog.records] == ["outbox full, closing session session=test limit=10"]


async def test_a_bulk_sender_waits_for_room_and_held_messages_follow_it_in_order(
    serve: Callable[[Script], Awaitable[Served]],
) -> None:
    async def replay(outbox: Outbox) -> None:
        assert outbox.hold(lambda m: isinstance(m, Pong))
        assert not outbox.hold(lambda m: True)  # one hold at a time
        for n in range(100):
            assert await outbox.room()
            outbox.send_ahead(Error(code="replayed", message=str(n)))
            if n % 25 == 0:
                outbox.send(Pong(id=str(n)))  # live, held back
                outbox.send(Error(code="other", message=str(n)))  # not selected: goes at once
        outbox.release()

    served = await serve(replay)
    assert served.close_code == WSCloseCode.OK
    replayed = [m.message for m in served.messages if isinstance(m, Error) and m.code == "replayed"]
    assert replayed == [str(n) for n in range(100)]
    held = [m.id for m in served.messages if isinstance(m, Pong)]
    assert held == [str(n) for n in range(0, 100, 25)]
    assert served.messages.index(Pong(id="0")) > served.messages.index(Error(code="replayed", message="99"))


async def test_messages_after_close_are_dropped_and_what_was_queued_is_written(
    serve: Callable[[Script], Awaitable[Served]],
) -> None:
    async def close_early(outbox: Outbox) -> None:
        outbox.send(Pong(id="1"))
        outbox.close()
        outbox.send(Pong(id="2"))
        assert not await outbox.room()

    served = await serve(close_early)
    assert served.messages == [Pong(id="1")]
