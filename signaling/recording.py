"""Wire messages of recording: the chair starts and stops it; every screen of the room is told."""

from __future__ import annotations

from typing import Annotated

import msgspec

from signaling.base import Message

# --- client to server ----------------------------------------------------------------------------


class RecordingStart(Message, tag="recording_start", kw_only=True, frozen=True):
    """The chair (or a moderator) starts recording the room; replied to by `recording_state`."""


class RecordingStop(Message, tag="recording_stop", kw_only=True, frozen=True):
    """The chair (or a moderator) stops recording the room; replied to by `recording_state`."""


# --- server to client ----------------------------------------------------------------------------


class RecordingState(Message, tag="recording_state", kw_only=True, frozen=True):
    """Whether the room is being recorded ("录制中 REC" on every screen), since when, why.

    `reasons` say what keeps it on: "chair" (started by the chair), "policy" (the room is always
    recorded), "rollcall:<id>" (a roll-call runs in it). Sent on join, on every change, and as the
    reply to `recording_start` / `recording_stop`."""

    recording: bool = False
    session: str | None = None
    since: float | None = None
    by: str | None = None
    reasons: Annotated[list[str], msgspec.Meta(max_length=64)] = []
