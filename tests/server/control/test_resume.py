"""A room that comes up on another node (or after a restart) keeps its control state from the log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestServer

from server.app import build_services, create_app
from server.config import Config
from server.store import MemoryStore
from signaling.control import ControlState, EndRoom, LockRoom, MuteParticipant, RemoveParticipant, SetLayout, Spotlight
from synthetic.client import ClientError
from tests.server.conftest import SECRET, Platform
from tests.server.control.conftest import CHAIR_GRANTS, Member

TIMEOUT = 10


async def _node(aiohttp_server: Callable[..., TestServer], config: Config, store: MemoryStore) -> Platform:
    services = build_services(config, secret=SECRET, store=store)
    server = await aiohttp_server(create_app(services))
    return Platform(url=str(server.make_url("")).rstrip("/"), services=services)


async def test_the_room_comes_up_on_another_node_locked_with_its_removals_mutes_and_spotlight(
    aiohttp_server: Callable[..., TestServer], demo_config: Config,
) -> None:
    store = MemoryStore(node_id="shared")  # the one store both nodes use
    first = await _node(aiohttp_server, demo_config, store)
    members: list[Member] = []

    async def join(platform: Platform, identity: str, site: str, grants: tuple[str, ...] = ("publish", "subscribe")) -> Member:
        member = Member(platform.url, "consultation", platform.token(identity, site=site, grants=grants), name=identity)
        members.append(member)
        await member.connect()
        return member

    try:
        mayor = await join(first, "mayor-laptop", "office", CHAIR_GRANTS)
        member = await join(first, "member", "linjiang")
        await join(first, "target", "jiangnan")
        await mayor.request(MuteParticipant(identity="member", kind="audio", muted=True, allow_self_unmute=False))
        await mayor.request(Spotlight(identity="member"))
        await mayor.request(SetLayout(layout="spotlight", follow_speaker=False))
        await mayor.request(RemoveParticipant(identity="target", reason="wrong room"))
        await mayor.request(LockRoom(locked=True))

        second = await _node(aiohttp_server, demo_config, store)  # the room's node is gone; here it comes up again
        with pytest.raises(ClientError) as refused:
            await join(second, "latecomer", "qingshan")
        assert refused.value.code == "room_locked"
        with pytest.raises(ClientError) as refused:
            await join(second, "target", "jiangnan")
        assert refused.value.code in ("removed_from_room", "room_locked")
        back = await join(second, "member", "linjiang")  # in the room when it was locked: may come back
        await back.wait_for(lambda c: isinstance(c.last(ControlState), ControlState), TIMEOUT)
        state = back.last(ControlState)
        assert isinstance(state, ControlState)
        assert state.locked and state.spotlight == "member" and state.layout == "spotlight"
        assert [(m.identity, m.kind, m.by, m.self_unmute) for m in state.mutes] == [("member", "audio", "mayor-laptop", False)]
        chair = await join(second, "mayor-laptop", "office", CHAIR_GRANTS)
        await chair.request(EndRoom())
        await back.wait_disconnected()

        third = await _node(aiohttp_server, demo_config, store)  # after the end the room starts afresh
        fresh = await join(third, "latecomer", "qingshan")
        state = await _state(fresh)
        assert not state.locked and state.mutes == [] and state.spotlight is None
        assert (await join(third, "target", "jiangnan")).connected
    finally:
        for member in members:
            await member.close()


async def _state(member: Member) -> ControlState:
    await member.wait_for(lambda c: isinstance(c.last(ControlState), ControlState), TIMEOUT)
    state = member.last(ControlState)
    assert isinstance(state, ControlState)
    return state
