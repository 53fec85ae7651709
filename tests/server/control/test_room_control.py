"""The chair controls the room over /ws: roles, spotlight, lock, remove, end, hands and floor, history."""

from __future__ import annotations

import pytest

from server.control.room_control import control_stream
from signaling.control import (
    ControlAck,
    ControlNotice,
    ControlState,
    EndRoom,
    GrantFloor,
    HandOverChair,
    LockRoom,
    MuteAll,
    MuteParticipant,
    RaiseHand,
    RemoveParticipant,
    RoomEnded,
    RoomHistory,
    RoomHistoryEvents,
    SetLayout,
    Spotlight,
    YouWereRemoved,
)
from signaling.messages import Error, Ping, SetMuted
from synthetic.client import ClientError
from tests.server.conftest import Platform
from tests.server.control.conftest import CHAIR_GRANTS, Join, Member

TIMEOUT = 10


def state(member: Member) -> ControlState:
    """The latest control state a member was sent."""
    latest = member.last(ControlState)
    assert isinstance(latest, ControlState)
    return latest


async def wait_state(member: Member, predicate: object) -> ControlState:
    """Wait until the member's latest control state satisfies `predicate`."""
    await member.wait_for(lambda c: isinstance(c.last(ControlState), ControlState) and predicate(c.last(ControlState)), TIMEOUT)  # type: ignore[attr-defined,operator]
    return state(member)


async def unmute_self(member: Member, kind: str) -> None:
    """Send set_muted(false) (it has no reply when accepted) and make sure it was not refused."""
    seen = len(member.inbox)
    await member._send(SetMuted(kind=kind, muted=False))  # type: ignore[arg-type]
    await member.request(Ping())  # answered in order: the unmute has been handled
    assert not any(isinstance(m, Error) for m in member.inbox[seen:]), member.inbox[seen:]


async def test_roles_come_from_grants_and_the_rooms_host_site(platform: Platform, join: Join) -> None:
    duty = await join("duty", site="command_centre", grants=CHAIR_GRANTS)
    assert duty.welcome is not None and duty.welcome.you.role == "chair"  # an empty chair is taken by a moderator
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    assert mayor.welcome is not None and mayor.welcome.you.role == "chair"  # the host site takes the chair
    site = await join("county", site="linjiang")
    wall = await join("wall-screen", site="command_centre", grants=("subscribe",))
    roles = (await wait_state(mayor, lambda s: "wall-screen" in s.roles)).roles
    assert roles == {"duty": "moderator", "mayor-laptop": "chair", "county": "participant", "wall-screen": "observer"}
    assert state(duty).chair == "mayor-laptop"
    del site, wall


async def test_the_chair_hands_over_the_chair(platform: Platform, join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    duty = await join("duty", site="command_centre", grants=CHAIR_GRANTS)
    with pytest.raises(ClientError) as refused:
        await duty.request(HandOverChair(identity="duty"))
    assert refused.value.code == "forbidden"
    await mayor.request(HandOverChair(identity="duty"))
    s = await wait_state(duty, lambda s: s.chair == "duty")
    assert s.roles == {"mayor-laptop": "moderator", "duty": "chair"}


async def test_the_spotlight_reaches_everyone(join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    a = await join("a", site="linjiang")
    b = await join("b", site="qingshan")
    reply = await mayor.request(Spotlight(identity="a"))
    assert isinstance(reply, ControlAck) and reply.event_id
    for member in (a, b):
        await wait_state(member, lambda s: s.spotlight == "a")
    with pytest.raises(ClientError) as refused:
        await mayor.request(Spotlight(identity="nobody"))
    assert refused.value.code == "unknown_participant"
    await mayor.request(SetLayout(layout="3x3", follow_speaker=True))
    s = await wait_state(b, lambda s: s.layout == "3x3")
    assert s.follow_speaker


async def test_a_locked_room_admits_only_members_and_moderators(platform: Platform, join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    member = await join("member", site="linjiang")
    await mayor.request(LockRoom(locked=True))
    assert (await platform.services.store.get_room("consultation")).locked  # type: ignore[union-attr]
    with pytest.raises(ClientError) as refused:
        await join("latecomer", site="qingshan")
    assert refused.value.code == "room_locked"
    await member.close()
    back = await join("member", site="linjiang")  # a member whose 4G dropped comes back
    assert back.connected
    moderator = await join("duty", site="command_centre", grants=CHAIR_GRANTS)
    assert moderator.connected
    await mayor.request(LockRoom(locked=False))
    assert (await join("latecomer", site="qingshan")).connected


async def test_a_removed_participant_is_told_by_whom_and_cannot_come_back(join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    other = await join("other", site="jiangnan")
    target = await join("target", site="linjiang")
    await mayor.request(RemoveParticipant(identity="target", reason="wrong room"))
    await target.wait_disconnected()
    removed = target.last(YouWereRemoved)
    assert isinstance(removed, YouWereRemoved) and removed.by == "mayor-laptop" and removed.reason == "wrong room"
    await other.wait_for(lambda c: "target" not in c.participants, TIMEOUT)
    with pytest.raises(ClientError) as refused:
        await join("target", site="linjiang")
    assert refused.value.code == "removed_from_room"


async def test_ending_the_room_closes_every_session(platform: Platform, join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    members = [await join(f"site{i}", site="linjiang") for i in range(3)]
    await mayor.request(EndRoom())
    for member in [*members, mayor]:
        await member.wait_disconnected()
        ended = member.last(RoomEnded)
        assert isinstance(ended, RoomEnded) and ended.by == "mayor-laptop"
    room = platform.services.rooms.rooms["consultation"]
    await mayor.wait_for(lambda c: not room.participants, TIMEOUT) if room.participants else None
    again = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    assert again.welcome is not None and again.welcome.you.role == "chair"


async def test_a_raised_hand_is_queued_and_granting_the_floor_unmutes(join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    fire = await join("fire", site="fire119")
    county = await join("county", site="linjiang")
    await mayor.request(MuteAll())
    s = await wait_state(fire, lambda s: len(s.mutes) == 2)
    assert {(m.identity, m.kind, m.by) for m in s.mutes} == {("fire", "audio", "mayor-laptop"), ("county", "audio", "mayor-laptop")}

    with pytest.raises(ClientError) as refused:
        await fire.request(SetMuted(kind="audio", muted=False))
    assert refused.value.code == "unmute_refused" and "raise your hand" in refused.value.message

    await county.request(RaiseHand())
    await fire.request(RaiseHand())
    s = await wait_state(mayor, lambda s: len(s.hands) == 2)
    assert [h.identity for h in s.hands] == ["county", "fire"]  # first come, first in the queue

    await mayor.request(GrantFloor(identity="fire"))
    s = await wait_state(fire, lambda s: [h.identity for h in s.hands] == ["county"])
    assert [(m.identity, m.kind) for m in s.mutes] == [("county", "audio")]
    notice = fire.last(ControlNotice)
    assert isinstance(notice, ControlNotice) and notice.action == "floor_granted" and notice.target == "fire"
    await unmute_self(fire, "audio")  # no error: the floor is hers


async def test_a_site_allowed_to_unmute_itself_may_do_so(join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    site = await join("site", site="linjiang")
    await mayor.request(MuteParticipant(identity="site", kind="video", allow_self_unmute=True))
    s = await wait_state(site, lambda s: len(s.mutes) == 1)
    assert s.mutes[0].by_name and s.mutes[0].self_unmute
    notice = site.last(ControlNotice)
    assert isinstance(notice, ControlNotice) and notice.action == "muted" and notice.actor == "mayor-laptop"
    await unmute_self(site, "video")
    await wait_state(mayor, lambda s: not s.mutes)


async def test_every_action_is_in_the_rooms_history(platform: Platform, join: Join) -> None:
    mayor = await join("mayor-laptop", site="office", grants=CHAIR_GRANTS)
    await join("site", site="linjiang")
    await mayor.request(Spotlight(identity="site"))
    await mayor.request(MuteParticipant(identity="site", kind="audio"))
    await mayor.request(LockRoom(locked=True))
    reply = await mayor.request(RoomHistory())
    assert isinstance(reply, RoomHistoryEvents)
    # (a room across nodes also logs who took the chair on joining: how the nodes agree on it)
    assert [(e.actor, e.action, e.data.get("target")) for e in reply.events if e.action != "chair_taken"] == [
        ("mayor-laptop", "spotlight", "site"),
        ("mayor-laptop", "mute", "site"),
        ("mayor-laptop", "lock", None),
    ]
    assert all(e.at > 0 for e in reply.events)
    stored = await platform.services.store.read_events(control_stream("consultation"))
    assert [e.id for e in stored] == [e.id for e in reply.events]
