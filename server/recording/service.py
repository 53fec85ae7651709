"""Recording sessions: started by the chair or by policy, written by media/recording.py, their manifest in the store.

A room is recorded by at most one session at a time on the node that hosts it. What keeps a session
on are its *reasons*: "chair" (the chair started it), "policy" (the room is configured `record =
true`) and "rollcall:<id>" (a roll-call with that room is running, `[recording] rollcalls`). The
chair's stop drops "chair"; a session stops when no reason is left, when the room ends (the chair's
"end"), when free disk falls below `min_free_gb` (reason `disk_full`), or when the server stops.

Every session is a stream `recording:{id}` (server/recording/domain.py says what it holds) and an
entry in the index `recordings`; its start and stop also go into the room's control log, so the
room's history says when it was recorded. Files live under `<root>/<room>/<session>/<track>/`.

A node killed while recording leaves its sessions open in the log: when it starts again it closes
them (`interrupted`, then `stopped`), each segment that was being written marked `segment_lost`
(or, renamed whole before the kill but not yet listed, hashed and listed `recovered`).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from media.recording import Recorder
from media.segments import probe, sha256_file
from server.config import RecordingSettings
from server.control.room_control import control_stream
from server.errors import NotFound, RequestError
from server.recording.domain import FoldError, Session, fold
from server.recording.export import Exporter
from server.recording.files import Verdict, directory_bytes, free_bytes, segment_path, stream_of, verify
from server.recording.live import LiveSession
from server.room import Room
from server.services import Services
from server.skipped import SkippedRecords
from server.store import StoredEvent, StoreError
from signaling.recording import RecordingState

logger = logging.getLogger(__name__)

INDEX_STREAM: Final[str] = "recordings"
TICK: Final[float] = 0.5
DISK_CHECK_EVERY: Final[float] = 2.0
END_CHECK_EVERY: Final[float] = 1.0
SWEEP_EVERY: Final[float] = 3600.0
POLICY_RETRY: Final[float] = 60.0  # a policy start refused (disk) is tried again after this long
APPEND_RETRY: Final[float] = 1.0
STOP_WAIT: Final[float] = 15.0
GB: Final[int] = 1 << 30


class DiskFull(RequestError):
    """Too little free disk to start (or go on) recording."""

    status = 507

    def __init__(self, free: int, needed: int) -> None:
        super().__init__("disk_full", f"磁盘空间不足，无法录制：剩余 {free / GB:.1f} GB，至少需要 {needed / GB:.1f} GB "
                                      f"Not enough free disk to record: {free / GB:.1f} GB free, {needed / GB:.1f} GB required")
        self.free = free
        self.needed = needed


class RecordingService:
    """The recordings of this node: live sessions, the policy, the manifests, retention and the disk."""

    def __init__(self, services: Services, settings: RecordingSettings,
                 active_rollcalls: Callable[[], Iterable[tuple[str, str | None]]] = lambda: ()) -> None:
        self.services = services
        self.settings = settings
        self.root = Path(settings.root(services.config.server.data_dir))
        self.live: dict[str, LiveSession] = {}
        self.active_rollcalls = active_rollcalls
        self.skipped = SkippedRecords("recording")
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recording-io")
        self.exporter = Exporter(self.root)
        self._locks: dict[str, asyncio.Lock] = {}
        self._refused: dict[tuple[str, str], float] = {}  # policy starts refused, and when
        self._ticker: asyncio.Task[None] | None = None
        self._last_disk_check = 0.0
        self._last_sweep = 0.0
        self.dropped_total = 0  # packets dropped by the recorders' full queues, sessions that ended included

    @property
    def min_free(self) -> int:
        """Bytes of free disk below which nothing is recorded."""
        return int(self.settings.min_free_gb * GB)

    # --- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Close what a killed node left open, sweep, then watch the rooms."""
        try:
            await self.recover()
        except StoreError as exc:
            logger.warning("recordings not recovered (store away): %s", exc)
        self._ticker = asyncio.get_running_loop().create_task(self._run(), name="recording-ticker")

    async def close(self) -> None:
        """Stop every session (segments closed and hashed) and the watcher."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for room_id in list(self.live):
            await self.stop(room_id, actor="server", reason="shutdown")
        await self.exporter.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - the watcher must go on
                logger.exception("recording tick failed")

    # --- commands ------------------------------------------------------------------------------------

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    def check_disk(self) -> None:
        """Raise DiskFull when the recordings' disk has less free space than `min_free_gb`."""
        free = free_bytes(self.root)
        if free < self.min_free:
            raise DiskFull(free, self.min_free)

    def state(self, room_id: str) -> RecordingState:
        """Whether the room is being recorded."""
        live = self.live.get(room_id)
        return live.state() if live is not None else RecordingState(recording=False)

    async def begin(self, room_id: str, *, actor: str, reason: str) -> LiveSession:
        """Record the room for `reason` (a session already under way takes the reason on)."""
        async with self._lock(room_id):
            live = self.live.get(room_id)
            if live is not None:
                if reason not in live.session.reasons:
                    live.session.reasons.append(reason)
                    live.append(actor, "reason_added", {"reason": reason})
                    live.broadcast()
                return live
            if not self.settings.enabled:
                raise RequestError("recording_disabled", "本服务器未启用录制 Recording is turned off on this server")
            room = self.services.rooms.rooms.get(room_id)
            if room is None:
                raise NotFound("unknown_room", f"room {room_id!r} is not live on this node")
            try:
                self.check_disk()
            except DiskFull as exc:
                logger.warning("recording refused room=%s reason=%s free=%d needed=%d", room_id, reason, exc.free, exc.needed)
                raise
            store = self.services.store
            session_id = uuid.uuid4().hex[:12]
            directory = self.root / room_id / session_id
            handler: list[LiveSession] = []  # the worker's events go to the session once it exists
            # the worker first: a session is in the log only once something can record it
            recorder = await Recorder.start(directory, on_event=lambda event: handler[0].on_event(event),
                                            segment_seconds=self.settings.segment_seconds,
                                            queue_bytes=self.settings.queue_mb << 20)
            now = time.time()
            data: dict[str, object] = {"id": session_id, "room": room_id, "at": now, "reasons": [reason],
                                       "node": store.node_id, "segment_seconds": self.settings.segment_seconds}
            try:
                first = await store.append_event(stream_of(session_id), actor=actor, kind="started", data=data)
                await store.append_event(INDEX_STREAM, actor=actor, kind="started",
                                         data={"id": session_id, "room": room_id, "at": now, "node": store.node_id})
                mark = await store.append_event(control_stream(room_id), actor=actor, kind="recording_started", data={
                    "target": None, "session": session_id, "reasons": [reason], "node": store.node_id})
            except StoreError:
                await recorder.stop("failed")
                raise
            live = LiveSession(self, fold([first]), room, directory, mark.id, recorder)
            handler.append(live)
            self.live[room_id] = live
            logger.info("recording started room=%s session=%s reason=%s actor=%s", room_id, session_id, reason, actor)
            live.tick()
            live.broadcast()
            return live

    async def release(self, room_id: str, *, actor: str, reason: str) -> RecordingState:
        """Drop one reason; the session stops when none is left."""
        async with self._lock(room_id):
            live = self.live.get(room_id)
            if live is None or reason not in live.session.reasons:
                return self.state(room_id)
            live.session.reasons.remove(reason)
            if live.session.reasons:
                live.append(actor, "reason_dropped", {"reason": reason})
                live.broadcast()
                return live.state()
        await self.stop(room_id, actor=actor, reason="chair" if reason == "chair" else "policy_ended")
        return self.state(room_id)

    async def stop(self, room_id: str, *, actor: str, reason: str) -> None:
        """Stop the room's session now: every segment closed and hashed, the manifest complete."""
        async with self._lock(room_id):
            live = self.live.pop(room_id, None)
            if live is None:
                return
            live.stopping = True
            try:
                await asyncio.wait_for(live.recorder.stop(reason), STOP_WAIT)
            except TimeoutError:
                logger.error("recorder did not stop in time session=%s", live.id)
            self.dropped_total += live.recorder.dropped
            now = time.time()
            live.append(actor, "stopped", {"at": now, "reason": reason})
            await live.flush(STOP_WAIT)
            store = self.services.store
            try:
                await store.append_event(INDEX_STREAM, actor=actor, kind="stopped", data={"id": live.id, "at": now, "reason": reason})
                await store.append_event(control_stream(room_id), actor=actor, kind="recording_stopped",
                                         data={"target": None, "session": live.id, "reason": reason, "node": store.node_id})
            except StoreError as exc:
                logger.warning("recording stop not indexed session=%s error=%s", live.id, exc)
            logger.info("recording stopped room=%s session=%s reason=%s actor=%s bytes=%d", room_id, live.id, reason, actor,
                        live.session.bytes)
            live.room.broadcast(RecordingState(recording=False, session=live.id))

    # --- the watcher -------------------------------------------------------------------------------------

    def wanted(self, room_id: str) -> set[str]:
        """The policy reasons to record a room now."""
        reasons = set()
        configured = self.services.config.room(room_id)
        if configured is not None and configured.record:
            reasons.add("policy")
        if self.settings.rollcalls:
            reasons.update(f"rollcall:{rid}" for rid, room in self.active_rollcalls() if room == room_id)
        return reasons

    async def tick(self) -> None:
        """Apply the policy, follow the rooms being recorded, watch the disk, sweep now and then."""
        now = time.monotonic()
        if self.settings.enabled:
            for room_id, room in list(self.services.rooms.rooms.items()):
                await self._apply_policy(room_id, room, now)
        for room_id, live in list(self.live.items()):
            if self.services.rooms.rooms.get(room_id) is not live.room:
                await self.stop(room_id, actor="server", reason="room_closed")
                continue
            live.tick()
            if now - live._last_end_check >= END_CHECK_EVERY:  # noqa: SLF001 - the service's own bookkeeping
                live._last_end_check = now  # noqa: SLF001
                await self._check_end(live)
        if self.live and now - self._last_disk_check >= DISK_CHECK_EVERY:
            self._last_disk_check = now
            if free_bytes(self.root) < self.min_free:
                for room_id in list(self.live):
                    logger.error("recording stopped: free disk below %.1f GB room=%s", self.settings.min_free_gb, room_id)
                    await self.stop(room_id, actor="server", reason="disk_full")
        if now - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = now
            self.services.background.spawn(self.sweep(), name="recording-sweep")

    async def _apply_policy(self, room_id: str, room: Room, now: float) -> None:
        wanted = self.wanted(room_id)
        live = self.live.get(room_id)
        have = set(live.session.reasons) if live is not None else set()
        for reason in sorted(wanted - have):
            if not room.participants:
                break  # nobody in: nothing to record yet
            refused = self._refused.get((room_id, reason))
            if refused is not None and now - refused < POLICY_RETRY:
                continue
            try:
                await self.begin(room_id, actor="server", reason=reason)
                self._refused.pop((room_id, reason), None)
            except RequestError as exc:
                self._refused[(room_id, reason)] = now
                logger.warning("policy recording refused room=%s reason=%s code=%s", room_id, reason, exc.code)
        for reason in sorted(r for r in have if r != "chair" and r not in wanted):
            await self.release(room_id, actor="server", reason=reason)

    async def _check_end(self, live: LiveSession) -> None:
        """The chair ended the consultation: the recording of it ends too."""
        try:
            events = await self.services.store.read_events(control_stream(live.room.id), after=live.control_after, limit=500)
        except StoreError:
            return
        if events:
            live.control_after = events[-1].id
        if any(e.kind == "end" for e in events):
            await self.stop(live.room.id, actor="server", reason="room_ended")

    # --- reading ---------------------------------------------------------------------------------------

    async def _read_all(self, stream: str, after: str | None = None) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        while True:
            batch = await self.services.store.read_events(stream, after=after, limit=1000)
            events += batch
            if len(batch) < 1000:
                return events
            after = batch[-1].id

    async def index(self) -> list[StoredEvent]:
        """The index of sessions: `started`, `stopped` and `purged` entries, oldest first."""
        return [e for e in await self._read_all(INDEX_STREAM) if isinstance(e.data.get("id"), str)]

    async def get(self, session_id: str) -> Session:
        """A session, live or from its manifest; NotFound if there is none."""
        for live in self.live.values():
            if live.id == session_id:
                return live.session
        events = await self._read_all(stream_of(session_id))
        if not events:
            raise NotFound("unknown_recording", f"no recording {session_id!r}")
        try:
            session = fold(events)
        except FoldError as exc:
            self.skipped.add(stream_of(session_id), "bad_start", str(exc))
            raise NotFound("unknown_recording", f"recording {session_id!r} cannot be read") from None
        for event_id, why in session.skipped:
            self.skipped.add(f"{stream_of(session_id)}/{event_id}", "bad_event", why)
        return session

    async def sessions(self, *, room: str | None = None, start: float | None = None, end: float | None = None) -> list[Session]:
        """Sessions (of a room, started in [start, end)), newest first."""
        ids = [str(e.data["id"]) for e in await self.index() if e.kind == "started"
               and (room is None or e.data.get("room") == room)
               and (start is None or float(e.data.get("at", e.at)) >= start)  # type: ignore[arg-type]
               and (end is None or float(e.data.get("at", e.at)) < end)]  # type: ignore[arg-type]
        found = []
        for session_id in reversed(ids):
            try:
                found.append(await self.get(session_id))
            except NotFound:
                continue
        return found

    async def covering(self, room: str, at: float) -> Session | None:
        """The session of `room` that was recording at time `at`, if any (a room has one at a time:
        the last one started before `at`)."""
        started = [e for e in await self.index() if e.kind == "started" and e.data.get("room") == room
                   and float(e.data.get("at", e.at)) <= at + 1]  # type: ignore[arg-type]
        if not started:
            return None
        try:
            session = await self.get(str(started[-1].data["id"]))
        except NotFound:
            return None
        covers = session.started_at - 1 <= at <= session.ended_at + 1 and session.purged_at is None
        return session if covers else None

    async def player_at(self, room: str, at: float) -> str | None:
        """The player of the recording of `room` at time `at` (evidence links), or None when there is none."""
        try:
            session = await self.covering(room, at)
        except StoreError:
            return None
        return f"/recordings/{session.id}?t={at:.3f}" if session is not None else None

    def path_of(self, session: Session, track: str, file: str) -> Path:
        """Where a segment file of a session is (or was)."""
        return segment_path(self.root, session, track, file)

    def verify(self, session: Session) -> list[Verdict]:
        """Every segment checked against the hash in the manifest (reads every file: run it in a thread)."""
        return verify(self.root, session)

    async def verify_async(self, session: Session) -> list[Verdict]:
        """`verify` in the I/O pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.verify, session)

    # --- after a crash -----------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Close the sessions this node left open when it was killed: the segments being written are lost."""
        opened: dict[str, StoredEvent] = {}
        for event in await self.index():
            if event.kind == "started":
                opened[str(event.data["id"])] = event
            elif event.kind == "stopped":
                opened.pop(str(event.data["id"]), None)
        store = self.services.store
        for session_id, started in opened.items():
            if started.data.get("node") != store.node_id:
                continue  # another node's: it is live, or closes its own when it comes back
            try:
                session = await self.get(session_id)
            except NotFound:
                continue
            if not session.open:  # stopped in its stream, not in the index: finish the index
                await store.append_event(INDEX_STREAM, actor="server", kind="stopped",
                                         data={"id": session_id, "at": session.ended_at, "reason": session.stop_reason or "interrupted"})
                continue
            await self._close_interrupted(session)

    async def _close_interrupted(self, session: Session) -> None:
        store = self.services.store
        stream = stream_of(session.id)
        lost: list[dict[str, object]] = []
        recovered: list[dict[str, object]] = []
        loop = asyncio.get_running_loop()
        for track in session.tracks.values():
            for segment in track.segments:
                if segment.state != "writing":
                    continue
                path = self.path_of(session, track.id, segment.file)
                part = path.with_name(path.name + ".part")
                if path.is_file():  # closed whole (by the worker, which outlives a killed server), never listed
                    digest = await loop.run_in_executor(self.executor, sha256_file, path)
                    length, frames = await loop.run_in_executor(self.executor, probe, path)
                    entry: dict[str, object] = {"track": track.id, "index": segment.index, "file": segment.file, "start": segment.start,
                                                "end": segment.start + length, "frames": frames, "bytes": path.stat().st_size,
                                                "sha256": digest, "recovered": True}
                    await store.append_event(stream, actor="server", kind="segment", data=entry)
                    recovered.append({"track": track.id, "index": segment.index})
                else:
                    size = part.stat().st_size if part.is_file() else 0
                    await store.append_event(stream, actor="server", kind="segment_lost", data={
                        "track": track.id, "index": segment.index, "file": segment.file, "bytes": size})
                    lost.append({"track": track.id, "index": segment.index, "file": segment.file, "start": segment.start, "bytes": size})
        now = time.time()
        ended = session.ended_at
        await store.append_event(stream, actor="server", kind="interrupted", data={"at": now, "last": ended, "lost": lost,
                                                                                  "recovered": recovered})
        await store.append_event(stream, actor="server", kind="stopped", data={"at": ended, "reason": "interrupted"})
        await store.append_event(INDEX_STREAM, actor="server", kind="stopped", data={"id": session.id, "at": ended, "reason": "interrupted"})
        logger.warning("recording closed after an interruption session=%s room=%s lost_segments=%d recovered=%d",
                       session.id, session.room, len(lost), len(recovered))

    # --- retention and the disk budget ---------------------------------------------------------------------

    async def sweep(self) -> list[str]:
        """Delete the sessions older than `retention_days`, then the oldest ones while over `budget_gb`;
        the ids purged."""
        try:
            sessions = [s for s in await self.sessions() if not s.open and s.purged_at is None]
        except StoreError as exc:
            logger.warning("recording sweep skipped (store away): %s", exc)
            return []
        loop = asyncio.get_running_loop()
        purged = []
        horizon = time.time() - self.settings.retention_days * 86400
        for session in sessions:
            if session.ended_at < horizon:
                await self.purge(session, "retention")
                purged.append(session.id)
        budget = int(self.settings.budget_gb * GB)
        if budget:
            used = await loop.run_in_executor(self.executor, directory_bytes, self.root)
            for session in sorted((s for s in sessions if s.id not in purged), key=lambda s: s.started_at):
                if used <= budget:
                    break
                size = await loop.run_in_executor(self.executor, directory_bytes, self.root / session.room / session.id)
                await self.purge(session, "budget")
                purged.append(session.id)
                used -= size
        return purged

    async def purge(self, session: Session, reason: str) -> None:
        """Delete a stopped session's files; its manifest stays and says so."""
        directory = self.root / session.room / session.id
        await asyncio.get_running_loop().run_in_executor(self.executor, lambda: shutil.rmtree(directory, ignore_errors=True))
        now = time.time()
        await self.services.store.append_event(stream_of(session.id), actor="server", kind="purged", data={"at": now, "reason": reason})
        await self.services.store.append_event(INDEX_STREAM, actor="server", kind="purged", data={"id": session.id, "at": now,
                                                                                                 "reason": reason})
        logger.info("recording purged session=%s room=%s reason=%s", session.id, session.room, reason)
