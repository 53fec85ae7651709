"""Who may control the room: a participant without the grant is refused, clearly, and the refusal is logged."""

from __future__ import annotations

import logging

import pytest

from server.control.permissions import ControlForbidden, allowed, check_target, require
from server.control.room_control import control_stream
from signaling.control import EndRoom, LockRoom, MuteAll, MuteParticipant, RemoveParticipant, SetLayout, Spotlight
from synthetic.client import ClientError
from tests.server.conftest import Platform
from tests.server.control.conftest import CHAIR_GRANTS, Join


def test_only_the_chair_and_moderators_may_moderate() -> None:
    for action in ("spotlight", "mute", "remove", "lock", "end", "mute_all", "grant_floor", "layout"):
        assert allowed("chair", action) and allowed("moderator", action)
        assert not allowed("participant", action) and not allowed("observer", action)
    assert allowed("participant", "raise_hand") and not allowed("observer", "raise_hand")


def test_a_moderator_takes_over_the_chair_only_when_the_chair_is_gone() -> None:
    assert allowed("chair", "hand_over")
    assert not allowed("moderator", "hand_over", chair_present=True)
    assert allowed("moderator", "hand_over", chair_present=False)


def test_a_moderator_may_not_mute_or_remove_the_chair() -> None:
    with pytest.raises(ControlForbidden):
        check_target("moderator", "mute", actor="m", target="c", target_role="chair")
    with pytest.raises(ControlForbidden):
        check_target("moderator", "remove", actor="m", target="c", target_role="chair")
    check_target("chair", "mute", actor="c", target="m", target_role="moderator")


def test_the_refusal_names_the_role_and_the_action() -> None:
    with pytest.raises(ControlForbidden) as refused:
        require("participant", "lock", who="county01")
    assert refused.value.code == "forbidden"
    assert "participant" in refused.value.message and "lock" in refused.value.message


@pytest.mark.parametrize(
    "message",
    [
        MuteParticipant(identity="target", kind="audio"),
        Spotlight(identity="target"),
        RemoveParticipant(identity="target"),
        LockRoom(locked=True),
        MuteAll(),
        EndRoom(),
        SetLayout(layout="3x3"),
    ],
    ids=lambda m: type(m).__name__,
)
async def test_a_participant_without_the_grant_cannot_control_the_room(
    platform: Platform, join: Join, caplog: pytest.LogCaptureFixture, message: object
) -> None:
    await join("chair", site="office", grants=CHAIR_GRANTS)
    target = await join("target", site="qingshan")
    intruder = await join("intruder", site="jiangbei")
    caplog.set_level(logging.WARNING, logger="server.control.room_control")

    with pytest.raises(ClientError) as refused:
        await intruder.request(message)  # type: ignore[arg-type]

    assert refused.value.code == "forbidden"
    assert "intruder" in refused.value.message and "participant" in refused.value.message
    assert any("control refused" in r.getMessage() and "actor=intruder" in r.getMessage() for r in caplog.records)
    events = await platform.services.store.read_events(control_stream("consultation"))
    assert [(e.actor, e.kind) for e in events if e.kind != "chair_taken"] == [("intruder", "refused")]
    assert intruder.connected and target.connected  # nothing happened to anyone; the session stays up
    room = platform.services.rooms.rooms["consultation"]
    control = room.control
    assert control is not None and not control.locked and control.spotlight is None and not control.mutes  # type: ignore[attr-defined]


async def test_an_observer_cannot_raise_a_hand(join: Join) -> None:
    await join("chair", site="office", grants=CHAIR_GRANTS)
    wall = await join("wall-1", site="command_centre", grants=("subscribe",))
    from signaling.control import RaiseHand

    with pytest.raises(ClientError) as refused:
        await wall.request(RaiseHand())
    assert refused.value.code == "forbidden"
