"""Room clients that remember every message, for the room-control tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from signaling.messages import ServerMessage
from synthetic.client import RoomClient
from tests.server.conftest import Platform

CHAIR_GRANTS = ("publish", "subscribe", "moderate")


class Member(RoomClient):
    """A RoomClient keeping every message the server sent it, in order."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.inbox: list[ServerMessage] = []
        self.on_message = self.inbox.append

    def last(self, kind: type) -> object | None:
        """The latest message of a type, or None."""
        return next((m for m in reversed(self.inbox) if isinstance(m, kind)), None)


Join = Callable[..., Awaitable[Member]]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for server state that changes with every packet (no event to wait on): checked every 10 ms."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def join(platform: Platform) -> AsyncIterator[Join]:
    """Connect a member to the consultation room: `await join("id", site=..., grants=...)`."""
    members: list[Member] = []

    async def _join(identity: str, *, site: str = "jiangbei", grants: Iterable[str] = ("publish", "subscribe"),
                    room: str = "consultation") -> Member:
        member = Member(platform.url, room, platform.token(identity, site=site, grants=tuple(grants), room=room), name=identity)
        members.append(member)
        await member.connect()
        return member

    yield _join
    for member in members:
        await member.close()
