"""A session being recorded on this node: its recorder (the worker process), the publications it
takes in, its manifest appended in order, and what the room's screens are told."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from media.recording import Recorder, RecordingEvent, recordable
from media.publication import Publication
from server.recording.domain import Session, apply
from server.recording.files import stream_of
from server.room import Room
from server.store import StoreError
from signaling.recording import RecordingState

if TYPE_CHECKING:
    from server.recording.service import RecordingService

logger = logging.getLogger(__name__)

APPEND_RETRY: Final[float] = 1.0


class LiveSession:
    """A session being recorded on this node: its recorder, its tracks, its manifest appends in order."""

    def __init__(self, service: RecordingService, session: Session, room: Room, directory: Path, control_after: str,
                 recorder: Recorder) -> None:
        self.service = service
        self.session = session
        self.room = room
        self.directory = directory
        self.attached: dict[str, Publication] = {}
        self.told: set[str] = set()  # participant sessions told the state
        self.control_after = control_after
        self.stopping = False
        self.disk_full = False
        self._appends: asyncio.Queue[tuple[str, str, dict[str, object]] | None] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write(), name=f"recording-manifest:{session.id}")
        self._last_end_check = 0.0
        self.recorder = recorder

    @property
    def id(self) -> str:
        """The session id."""
        return self.session.id

    def state(self) -> RecordingState:
        """What every screen of the room shows."""
        return RecordingState(recording=True, session=self.id, since=self.session.started_at, by=self.session.by,
                              reasons=list(self.session.reasons))

    def append(self, actor: str, kind: str, data: dict[str, object]) -> None:
        """Queue an event for the manifest (appended in order by one task)."""
        self._appends.put_nowait((actor, kind, data))

    async def _write(self) -> None:
        store = self.service.services.store
        stream = stream_of(self.id)
        while True:
            item = await self._appends.get()
            if item is None:
                return
            actor, kind, data = item
            while True:
                try:
                    event = await store.append_event(stream, actor=actor, kind=kind, data=data)
                    break
                except StoreError as exc:
                    logger.warning("recording manifest append failed session=%s kind=%s error=%s; retrying", self.id, kind, exc)
                    await asyncio.sleep(APPEND_RETRY)
            try:
                apply(self.session, event)
            except (KeyError, TypeError, ValueError):
                logger.exception("recording manifest event not folded session=%s kind=%s", self.id, kind)
            self.session.last_event_id = event.id

    async def flush(self, timeout: float) -> None:
        """Append whatever is queued, then end the appending task."""
        self._appends.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout)
        except TimeoutError:
            logger.error("recording manifest not fully written session=%s pending=%d", self.id, self._appends.qsize())
            self._writer.cancel()

    def on_event(self, event: RecordingEvent) -> None:
        """What the recorder's worker says: into the manifest; a full disk or a dead worker stops the session."""
        self.append("server", event.kind, {"track": event.track, **event.data})
        if event.kind != "track_failed" or self.disk_full:
            return
        if event.data.get("disk_full") or event.data.get("fatal"):
            self.disk_full = True
            reason = "disk_full" if event.data.get("disk_full") else "failed"
            self.service.services.background.spawn(
                self.service.stop(self.room.id, actor="server", reason=reason), name=f"recording-stop:{self.id}")

    def tick(self) -> None:
        """Take in new publications, let go of closed ones, tell newcomers the state."""
        if self.stopping:
            return
        for publication in list(self.room.router.publications.values()):
            if publication.id in self.attached or publication.closed or not recordable(publication.codec.name):
                continue
            self.attached[publication.id] = publication
            owner = self.room.participants.get(publication.owner)
            site, name = (owner.identity.site, owner.identity.name) if owner is not None else ("", publication.owner)
            if owner is None and self.room.span is not None:
                member = self.room.span.members.get(publication.owner)
                if member is not None:
                    site, name = member.record.site, member.record.name
            self.append("server", "track", {
                "track": publication.id, "publication": publication.id, "owner": publication.owner, "name": name,
                "site": site, "kind": publication.kind, "codec": publication.codec.name, "source": publication.source,
                "at": time.time()})
            self.recorder.add(publication, publication.id)
        for track_id, publication in list(self.attached.items()):
            if publication.closed:
                del self.attached[track_id]
                self.recorder.remove(track_id, "closed")
        state = self.state()
        present = set()
        for participant in self.room.participants.values():
            key = participant.session_id
            present.add(key)
            if key and key not in self.told:
                participant.send(state)
        self.told = present

    def broadcast(self) -> None:
        """Tell everyone in the room the current state."""
        self.room.broadcast(self.state())
        self.told = {p.session_id for p in self.room.participants.values()}
