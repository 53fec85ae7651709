"""`/ws` handlers of the room control's messages: each turns one client message into a control action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.control.room_control import RoomControl, control_stream
from server.errors import RequestError
from server.participant import Participant
from server.room import Room
from server.services import ClientSession, Services
from signaling.control import (
    AllowSelfUnmute,
    ControlAck,
    ControlEventInfo,
    EndRoom,
    GrantFloor,
    HandOverChair,
    LockRoom,
    MuteAll,
    MuteParticipant,
    RaiseHand,
    RemoveParticipant,
    RoomHistory,
    RoomHistoryEvents,
    SetLayout,
    Spotlight,
)

MAX_HISTORY = 500


def control_of(room: Room) -> RoomControl:
    """The room's control (every room the server hosts has one)."""
    if not isinstance(room.control, RoomControl):
        raise RequestError("no_control", "this room has no chair controls")
    return room.control


def _caller(session: ClientSession) -> tuple[Room, Participant]:
    if session.room is None or session.participant is None:
        raise RequestError("not_joined", "say hello first")
    return session.room, session.participant


Act = Callable[[RoomControl, Participant, Any], Awaitable[str]]


def _handler(services: Services, action: str, act: Act) -> Callable[[ClientSession, Any], Awaitable[ControlAck]]:
    async def handle(session: ClientSession, message: Any) -> ControlAck:
        room, participant = _caller(session)
        control = control_of(room)
        event_id = await act(control, participant, message)
        return ControlAck(id=message.id, action=action, event_id=event_id)

    return handle


def register(services: Services) -> None:
    """Put a handler for every control message in the one dispatch table."""
    table: dict[type, tuple[str, Act]] = {
        Spotlight: ("spotlight", lambda c, p, m: c.set_spotlight(p, m.identity)),
        MuteParticipant: ("mute", lambda c, p, m: c.mute(p, m.identity, m.kind, m.muted, m.allow_self_unmute)),
        AllowSelfUnmute: ("allow_self_unmute", lambda c, p, m: c.allow_self_unmute(p, m.identity, m.kind, m.allowed)),
        MuteAll: ("mute_all", lambda c, p, m: c.mute_all(p, m.allow_self_unmute)),
        RemoveParticipant: ("remove", lambda c, p, m: c.remove(p, m.identity, m.reason[:200])),
        LockRoom: ("lock", lambda c, p, m: c.lock(p, m.locked)),
        EndRoom: ("end", lambda c, p, m: c.end(p)),
        RaiseHand: ("raise_hand", lambda c, p, m: c.raise_hand(p, m.raised)),
        GrantFloor: ("grant_floor", lambda c, p, m: c.grant_floor(p, m.identity)),
        HandOverChair: ("hand_over", lambda c, p, m: c.hand_over(p, m.identity)),
        SetLayout: ("layout", lambda c, p, m: c.set_layout(p, m.layout, m.follow_speaker, m.cells, m.rotate_every, m.rotate_group)),
    }
    for message_type, (action, act) in table.items():
        services.handlers[message_type] = _handler(services, action, act)

    async def history(session: ClientSession, message: RoomHistory) -> RoomHistoryEvents:
        room, _ = _caller(session)
        limit = max(1, min(message.limit, MAX_HISTORY))
        events = await services.store.read_events(control_stream(room.id), after=message.after, limit=limit)
        return RoomHistoryEvents(
            id=message.id,
            events=[ControlEventInfo(id=e.id, at=e.at, actor=e.actor, action=e.kind, data=dict(e.data)) for e in events],
        )

    services.handlers[RoomHistory] = history
