"""Wire messages that control a consultation room: spotlight, mute, floor, lock, end, layouts, speaker."""

from __future__ import annotations

from typing import Literal

import msgspec

from signaling.base import Message

MediaKind = Literal["audio", "video"]
Layout = Literal["grid", "spotlight", "2x2", "3x3", "4x4"]
LAYOUTS: tuple[str, ...] = ("grid", "spotlight", "2x2", "3x3", "4x4")


# --- shared shapes -------------------------------------------------------------------------------


class HandInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One raised hand in the floor queue (发言申请), oldest first."""

    identity: str
    name: str
    site: str
    raised_at: float


class MuteInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A server-enforced mute: whose microphone or camera, muted by whom, may they unmute themselves."""

    identity: str
    kind: MediaKind
    by: str
    by_name: str
    at: float
    self_unmute: bool = False


class ControlEventInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One control action from the room's log: who did what to whom, when."""

    id: str
    at: float
    actor: str
    action: str
    data: dict[str, object] = {}


# --- client to server ----------------------------------------------------------------------------


class Spotlight(Message, tag="spotlight", kw_only=True, frozen=True):
    """Put a participant on every screen's main tile (None: back to the grid)."""

    identity: str | None = None


class MuteParticipant(Message, tag="mute_participant", kw_only=True, frozen=True):
    """Mute (or unmute) a participant's microphone ("audio") or stop its camera ("video")."""

    identity: str
    kind: MediaKind = "audio"
    muted: bool = True
    allow_self_unmute: bool = False


class AllowSelfUnmute(Message, tag="allow_self_unmute", kw_only=True, frozen=True):
    """Allow or refuse a muted participant to unmute itself."""

    identity: str
    kind: MediaKind = "audio"
    allowed: bool = True


class MuteAll(Message, tag="mute_all", kw_only=True, frozen=True):
    """Mute every microphone but the chair's."""

    allow_self_unmute: bool = False


class RemoveParticipant(Message, tag="remove_participant", kw_only=True, frozen=True):
    """Send a participant out of the room; it may not come back until the room ends."""

    identity: str
    reason: str = ""


class LockRoom(Message, tag="lock_room", kw_only=True, frozen=True):
    """Lock (or unlock) the room: nobody new joins without the grant "moderate"."""

    locked: bool = True


class EndRoom(Message, tag="end_room", kw_only=True, frozen=True):
    """End the consultation for everyone."""


class RaiseHand(Message, tag="raise_hand", kw_only=True, frozen=True):
    """Ask for the floor (True) or withdraw the request (False)."""

    raised: bool = True


class GrantFloor(Message, tag="grant_floor", kw_only=True, frozen=True):
    """Give the floor to a participant: its hand goes down and its microphone opens."""

    identity: str


class HandOverChair(Message, tag="hand_over_chair", kw_only=True, frozen=True):
    """Make another moderator (or participant) the chair."""

    identity: str


class SetLayout(Message, tag="set_layout", kw_only=True, frozen=True):
    """The video wall's layout for the room, and whether walls follow the active speaker.

    `cells` places sites in a fixed layout's cells (site ids, "" for a free cell); `rotate_every`
    turns the free cells through the other sites every so many seconds (0: no rotation), only those
    of the saved group `rotate_group` when one is named ("" for every site). Omitted fields stay as
    they are.
    """

    layout: Layout = "grid"
    follow_speaker: bool | None = None
    cells: list[str] | None = None
    rotate_every: int | None = None
    rotate_group: str | None = None


class RoomHistory(Message, tag="room_history", kw_only=True, frozen=True):
    """Ask for the room's control log after an event id (oldest first)."""

    after: str | None = None
    limit: int = 200


# --- server to client ----------------------------------------------------------------------------


class ControlAck(Message, tag="control_ack", kw_only=True, frozen=True):
    """A control request was carried out; `event_id` names its entry in the room's log."""

    action: str
    event_id: str | None = None


class ControlState(Message, tag="control_state", kw_only=True, frozen=True):
    """The room's whole control state; sent on join and after every change."""

    chair: str | None = None
    spotlight: str | None = None
    layout: Layout = "grid"
    follow_speaker: bool = False
    cells: list[str] = []
    rotate_every: int = 0
    rotate_group: str = ""
    locked: bool = False
    active_speaker: str | None = None
    roles: dict[str, str] = {}
    hands: list[HandInfo] = []
    mutes: list[MuteInfo] = []


class ActiveSpeaker(Message, tag="active_speaker", kw_only=True, frozen=True):
    """The dominant speaker changed (None: nobody has spoken yet)."""

    identity: str | None = None


class ControlNotice(Message, tag="control_notice", kw_only=True, frozen=True):
    """Something was done to someone: shown to the room, and to the target as "muted by ..."."""

    action: str
    actor: str
    actor_name: str
    target: str | None = None
    kind: str | None = None


class RoomEnded(Message, tag="room_ended", kw_only=True, frozen=True):
    """The chair ended the consultation; the session closes."""

    by: str
    by_name: str


class YouWereRemoved(Message, tag="you_were_removed", kw_only=True, frozen=True):
    """A moderator removed this participant from the room; the session closes."""

    by: str
    by_name: str
    reason: str = ""


class RoomHistoryEvents(Message, tag="room_history_events", kw_only=True, frozen=True):
    """Reply to `room_history`."""

    events: list[ControlEventInfo] = []


CONTROL_CLIENT_MESSAGES = (
    Spotlight, MuteParticipant, AllowSelfUnmute, MuteAll, RemoveParticipant, LockRoom, EndRoom,
    RaiseHand, GrantFloor, HandOverChair, SetLayout, RoomHistory,
)
