"""`/ws` handlers: the chair starts and stops recording (a room-control action, checked like the others)."""

from __future__ import annotations

import msgspec

from server.control.handlers import control_of
from server.errors import RequestError
from server.participant import Participant
from server.recording.service import RecordingService
from server.room import Room
from server.services import ClientSession
from signaling.recording import RecordingStart, RecordingState, RecordingStop

# What keeps a room recorded other than the chair, as the refusal to stop says it.
_POLICY_TEXT = {"policy": ("本会商室按规定全程录制", "the room is always recorded"),
                "rollcall": ("视频点名进行中", "a roll-call is running")}


def _caller(session: ClientSession) -> tuple[Room, Participant]:
    if session.room is None or session.participant is None:
        raise RequestError("not_joined", "say hello first")
    return session.room, session.participant


class RecordingHandlers:
    """The chair's start and stop."""

    def __init__(self, service: RecordingService) -> None:
        self.service = service

    async def start(self, session: ClientSession, message: RecordingStart) -> RecordingState:
        """Start recording the room (refused below the free-disk minimum: `disk_full`)."""
        room, participant = _caller(session)
        await control_of(room).authorize(participant, "record")
        await self.service.begin(room.id, actor=participant.id, reason="chair")
        return msgspec.structs.replace(self.service.state(room.id), id=message.id)

    async def stop(self, session: ClientSession, message: RecordingStop) -> RecordingState:
        """Stop recording the room, unless a policy requires it (`recording_required`)."""
        room, participant = _caller(session)
        await control_of(room).authorize(participant, "record")
        live = self.service.live.get(room.id)
        required = [r for r in (live.session.reasons if live is not None else []) if r != "chair"]
        if required:
            zh, en = _POLICY_TEXT["policy" if "policy" in required else "rollcall"]
            raise RequestError("recording_required", f"{zh}，主持人无法停止录制 Recording cannot be stopped: {en}")
        await self.service.release(room.id, actor=participant.id, reason="chair")
        return msgspec.structs.replace(self.service.state(room.id), id=message.id)
