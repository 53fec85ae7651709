"""Running roll-calls: start, answer, excuse, close; every change an event in the store; windows on the scheduler.

Every node follows the roll-calls (server/follow.py): the index of roll-calls, and the stream of
each open one. Whatever a node appends (a call, an answer, a window's end, the close), every node
folds and tells its own sessions and rooms from the event: a site is called on whichever node it
is connected to, and answers there (its video is judged where it arrives, its snapshot taken
there). Every node arms the same timers; a step is appended only where the stream was when the
node decided it (`append_events_at`), so the node that comes second folds the first one's step and
finds nothing left to do: each step is taken once.

Restart policy (documented in README): a roll-call in progress RESUMES. Its deadlines are absolute
clock times kept in its events; after a restart the service folds every open roll-call from the log,
records `resumed`, and re-arms the same deadlines: a window still open keeps its remaining time, a
window that ended while the server was down ends at once (its site becomes overdue and may still
answer late until the roll-call closes), and the sequence carries on with the next site.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from functools import partial
from pathlib import Path

from media.publication import Publication
from media.snapshot import SnapshotError

from server.auth import Forbidden, Identity
from server.errors import NotFound, RequestError
from server.rollcall.domain import Action, FoldError, RollCall, RollCallId, apply, fold, next_action, press_refusal
from server.rollcall.evidence import SnapshotFiles, capture, live_video
from server.scheduler import Timer
from server.services import Services
from server.skipped import SkippedRecords
from server.store import StoredEvent, StreamMoved, event_id_key
from signaling.messages import ServerMessage
from signaling.rollcall import (
    RollCallCall,
    RollCallCallEnded,
    RollCallEscalation,
    RollCallSpotlight,
    RollCallUpdate,
)

logger = logging.getLogger(__name__)

INDEX_STREAM = "rollcalls"
SNAPSHOT_WAIT = 5.0
ATTEMPTS = 20  # conditional appends tried, catching up in between, before a step is refused as busy
# A press older than this with no snapshot stored was lost with the node that took it (at a resume).
SNAPSHOT_LOST_AFTER = 30.0


def stream_of(rollcall_id: str) -> str:
    """The event stream of one roll-call."""
    return f"rollcall:{rollcall_id}"


async def read_all(services: Services, stream: str, after: str | None = None) -> list[StoredEvent]:
    """Every event of a stream (after `after`, if given), oldest first."""
    events: list[StoredEvent] = []
    while True:
        batch = await services.store.read_events(stream, after=after, limit=1000)
        events += batch
        if len(batch) < 1000:
            return events
        after = batch[-1].id


class RollCallService:
    """The roll-calls of this server: live ones in memory (folded from the log), timers on the scheduler."""

    def __init__(self, services: Services, snapshot_dir: Path) -> None:
        self.services = services
        self.clock = services.scheduler.clock
        self.files = SnapshotFiles(snapshot_dir)
        self.active: dict[RollCallId, RollCall] = {}
        self._timers: dict[RollCallId, Timer] = {}
        self._locks: dict[RollCallId, asyncio.Lock] = {}
        self._snapshots: dict[RollCallId, set[asyncio.Task[None]]] = {}
        self._changed = asyncio.Condition()
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rollcall-snapshot")
        # Unreadable events of the roll-call logs: skipped (one WARNING each), counted for /metrics.
        self.skipped = SkippedRecords("rollcall")

    # --- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume every roll-call the log says is still open (one that cannot be read is logged and skipped),
        then follow the index and every open roll-call live."""
        opened: dict[str, None] = {}
        index = await self._index()
        for event in index:
            if event.kind == "created":
                opened[str(event.data["id"])] = None
            elif event.kind == "closed":
                opened.pop(str(event.data["id"]), None)
        for rollcall_id in opened:
            rollcall = await self._fold(rollcall_id)
            if rollcall is None or not rollcall.open:
                continue
            self._adopt(rollcall)
            await self._append(rollcall, "resumed", {"at": self.clock.now()}, actor="server")
            now = self.clock.now()
            for site, result in rollcall.results.items():
                lost = result.answered_at is not None and result.answered_at < now - SNAPSHOT_LOST_AFTER
                if result.outcome in ("answered", "late") and result.snapshot is None and result.snapshot_error is None and lost:
                    await self._append(rollcall, "snapshot_failed", {
                        "site": site, "error": "服务重启，抓拍未完成 server restarted before the snapshot was stored"}, actor="server")
            logger.info("rollcall resumed id=%s current=%s", rollcall.id, ",".join(rollcall.current))
            await self.advance(rollcall.id)
        self.services.tail.follow(INDEX_STREAM, index[-1].id if index else None, self._index_followed)

    def _adopt(self, rollcall: RollCall) -> None:
        """Hold an open roll-call live: its stream followed from where it was folded."""
        self.active[rollcall.id] = rollcall
        self.services.tail.follow(stream_of(rollcall.id), rollcall.last_event_id, partial(self._followed, rollcall))

    def _index_followed(self, page: list[StoredEvent]) -> None:
        for event in page:
            rollcall_id = event.data.get("id")
            if not isinstance(rollcall_id, str):
                continue
            if event.kind == "created" and RollCallId(rollcall_id) not in self.active:
                self.services.background.spawn(self._join(rollcall_id), name=f"rollcall-follow:{rollcall_id}")
            elif event.kind == "closed":
                self.services.background.spawn(self._closed(RollCallId(rollcall_id)), name=f"rollcall-closed:{rollcall_id}")

    async def _join(self, rollcall_id: str) -> None:
        """Another node started a roll-call: fold it, follow it, and watch its steps too."""
        rollcall = await self._fold(rollcall_id)
        if rollcall is None or not rollcall.open or rollcall.id in self.active:
            return
        self._adopt(rollcall)
        for site in rollcall.current:  # calls already out: this node's sessions of those sites hear them now
            self._site_send(site, self._call(rollcall, site))
        logger.info("rollcall followed id=%s", rollcall.id)
        await self.advance(rollcall.id)

    async def _closed(self, rollcall_id: RollCallId) -> None:
        """Another node closed a roll-call: fold its last events (the escalation) before letting it go."""
        rollcall = self.active.get(rollcall_id)
        if rollcall is not None:
            await self._catch_up(rollcall)
        self._drop(rollcall_id)
        await self._notify()

    def _drop(self, rollcall_id: RollCallId) -> None:
        timer = self._timers.pop(rollcall_id, None)
        if timer is not None:
            timer.cancel()
        self.services.tail.unfollow(stream_of(rollcall_id))
        self.active.pop(rollcall_id, None)
        self._locks.pop(rollcall_id, None)

    async def close(self) -> None:
        """Stop the timers and the snapshot workers (roll-calls stay open in the log)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for tasks in self._snapshots.values():
            for task in tasks:
                task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- reading -----------------------------------------------------------------------------------

    async def get(self, rollcall_id: str) -> RollCall:
        """The roll-call, live or from the log; NotFound if there is none (or its log cannot be read)."""
        live = self.active.get(RollCallId(rollcall_id))
        if live is not None:
            return live
        rollcall = await self._fold(rollcall_id)
        if rollcall is None:
            raise NotFound("unknown_rollcall", f"no roll-call {rollcall_id!r}")
        return rollcall

    async def history(self, site: str | None = None, limit: int = 200) -> list[RollCall]:
        """Roll-calls newest first (only those that called `site`, if given)."""
        ids = [str(e.data["id"]) for e in await self._index() if e.kind == "created"
               and (site is None or site in _listed_sites(e))]
        found = [self.active.get(RollCallId(i)) or await self._fold(i) for i in reversed(ids[-limit:])]
        return [rollcall for rollcall in found if rollcall is not None]

    async def _index(self) -> list[StoredEvent]:
        """The index of roll-calls, without the entries that name none."""
        events = []
        for event in await read_all(self.services, INDEX_STREAM):
            if event.kind in ("created", "closed") and isinstance(event.data.get("id"), str):
                events.append(event)
            else:
                self.skipped.add(f"{INDEX_STREAM}/{event.id}", "bad_event", f"kind={event.kind!r}, names no roll-call")
        return events

    async def _fold(self, rollcall_id: str) -> RollCall | None:
        """A roll-call from its log, its unreadable events skipped; None if it has no log or no readable start."""
        events = await read_all(self.services, stream_of(rollcall_id))
        if not events:
            return None
        try:
            rollcall = fold(events)
        except FoldError as exc:
            self.skipped.add(f"{stream_of(rollcall_id)}/{events[0].id}", "bad_start", str(exc))
            return None
        for event_id, why in rollcall.skipped:
            self.skipped.add(f"{stream_of(rollcall_id)}/{event_id}", "bad_event", why)
        return rollcall

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once `predicate()` holds after some roll-call change (tests, benchmark)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    # --- commands ----------------------------------------------------------------------------------

    async def begin(
        self, *, actor: str, caller_site: str, sites: list[str], mode: str, window: float, grace: float,
        title: str = "", room: str | None = None, schedule: str | None = None,
    ) -> RollCall:
        """Start a roll-call over `sites` and call the first (or all) of them."""
        if room is not None and self.services.config.room(room) is None and await self.services.store.get_room(room) is None:
            raise NotFound("unknown_room", f"no room {room!r}")
        rollcall_id = RollCallId(uuid.uuid4().hex[:12])
        now = self.clock.now()
        data = {"id": rollcall_id, "title": title or "视频点名 Video roll-call", "mode": mode, "window": window,
                "grace": grace, "sites": sites, "caller_site": caller_site, "room": room, "schedule": schedule, "at": now}
        first = await self.services.store.append_event(stream_of(rollcall_id), actor=actor, kind="started", data=data)
        rollcall = fold([first])
        self._adopt(rollcall)
        await self.services.store.append_event(
            INDEX_STREAM, actor=actor, kind="created",
            data={"id": rollcall_id, "at": now, "sites": sites, "title": rollcall.title, "schedule": schedule},
        )
        logger.info("rollcall started id=%s mode=%s sites=%d actor=%s", rollcall_id, mode, len(sites), actor)
        await self.advance(rollcall.id)
        return rollcall

    async def answer(self, rollcall_id: str, *, site: str, identity: str) -> RollCall:
        """A press of "到 Present" by `identity` of `site`: judged by whether its video is arriving now."""
        rollcall = self._live(rollcall_id)
        async with self._lock(rollcall.id):
            publication = live_video(self._publications(), identity)

            def refusal() -> bool:
                code = press_refusal(rollcall, site)
                if code is not None:
                    raise RequestError(code, f"site {site!r} cannot answer roll-call {rollcall_id}: {code}")
                return True

            await self._append(rollcall, "pressed", {
                "site": site, "identity": identity, "at": self.clock.now(), "video": publication is not None,
                "publication": publication.id if publication else None,
            }, actor=identity, still=refusal)
            if publication is not None:
                self._spawn_snapshot(rollcall, site, publication)
        # The reply must not wait for what the answer sets in motion (next site, closing, snapshots).
        self.services.background.spawn(self.advance(rollcall.id), name=f"rollcall-advance:{rollcall.id}")
        return rollcall

    async def excuse(self, rollcall_id: str, *, site: str, reason: str, actor: str) -> RollCall:
        """The caller excuses a site that has not answered (open or already closed)."""
        rollcall = await self.get(rollcall_id)

        def excusable() -> bool:
            result = rollcall.results.get(site)
            if result is None:
                raise NotFound("not_called", f"site {site!r} is not in roll-call {rollcall_id}")
            if result.outcome in ("answered", "late"):
                raise RequestError("already_answered", f"site {site!r} has answered")
            return True

        excusable()
        async with self._lock(rollcall.id):
            await self._append(rollcall, "excused", {"site": site, "reason": reason, "at": self.clock.now()},
                               actor=actor, still=excusable)
        if rollcall.open:
            self.services.background.spawn(self.advance(rollcall.id), name=f"rollcall-advance:{rollcall.id}")
        return rollcall

    async def finish(self, rollcall_id: str, *, actor: str) -> RollCall:
        """End a roll-call now: every site's state is stated, unanswered ones absent."""
        rollcall = self._live(rollcall_id)
        async with self._lock(rollcall.id):
            await self._close(rollcall, actor=actor, reason="closed_by_caller")
        return rollcall

    # --- the step machine --------------------------------------------------------------------------

    async def advance(self, rollcall_id: RollCallId) -> None:
        """Carry out every step that is due, then arm the timer for the next one (every node does:
        the first to append a step takes it, the others fold it and move on)."""
        rollcall = self.active.get(rollcall_id)
        if rollcall is None:
            return
        async with self._lock(rollcall_id):
            while True:
                now = self.clock.now()
                action = next_action(rollcall, now)
                timer = self._timers.pop(rollcall_id, None)
                if timer is not None:
                    timer.cancel()
                if action is None:
                    return
                if action.when > now:
                    self._timers[rollcall_id] = self.services.scheduler.at(
                        action.when, lambda: self.advance(rollcall_id), name=f"rollcall:{rollcall_id}:{action.kind}")
                    return
                await self._do(rollcall, action, now)

    async def _do(self, rollcall: RollCall, action: Action, now: float) -> None:
        def due() -> bool:  # still this step, after folding what another node did meanwhile
            current = next_action(rollcall, self.clock.now())
            return current is not None and (current.kind, current.sites) == (action.kind, action.sites)

        sites = list(action.sites)
        if action.kind == "call":
            await self._append(rollcall, "called", {"sites": sites, "at": now, "deadline": now + rollcall.window},
                               actor="server", still=due)
        elif action.kind == "end_window":
            # at the deadline itself (the clock may be past it after a restart or a jump), so the grace counts from there
            await self._append(rollcall, "window_ended", {"sites": sites, "at": min(action.when, now)}, actor="server", still=due)
        else:
            await self._close(rollcall, actor="server", reason="finished")

    async def _close(self, rollcall: RollCall, *, actor: str, reason: str) -> None:
        timer = self._timers.pop(rollcall.id, None)
        if timer is not None:
            timer.cancel()
        pending = self._snapshots.pop(rollcall.id, set())
        if pending:  # the report should hold the pictures of the last answers
            await asyncio.wait(pending, timeout=SNAPSHOT_WAIT)
        if _snapshot_awaited(rollcall):  # taken by the node the answer came to: it comes through the log
            try:
                await self.wait_for(lambda: not _snapshot_awaited(rollcall), SNAPSHOT_WAIT)
            except TimeoutError:
                logger.warning("rollcall closing without every snapshot id=%s", rollcall.id)
        if not await self._append(rollcall, "closed", {"at": self.clock.now(), "reason": reason}, actor=actor,
                                  still=lambda: rollcall.open):
            return  # another node closed it first
        parents = {}
        for site, result in rollcall.results.items():
            parent = self.services.sites.parent_id(site)
            if result.outcome == "absent" and parent is not None:
                parents[site] = parent
        if parents:
            await self._append(rollcall, "escalated", {"parents": parents, "at": self.clock.now()}, actor="server")
        await self.services.store.append_event(INDEX_STREAM, actor=actor, kind="closed", data={"id": rollcall.id, "at": self.clock.now()})
        self._drop(rollcall.id)
        await self._notify()
        logger.info("rollcall closed id=%s reason=%s totals=%s", rollcall.id, reason, rollcall.totals())

    # --- snapshots ---------------------------------------------------------------------------------

    def _spawn_snapshot(self, rollcall: RollCall, site: str, publication: Publication) -> None:
        task = self.services.background.spawn(self._snapshot(rollcall, site, publication), name=f"snapshot:{site}")
        if task is not None:
            tasks = self._snapshots.setdefault(rollcall.id, set())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _snapshot(self, rollcall: RollCall, site: str, publication: Publication) -> None:
        started = time.monotonic()
        try:
            jpeg = await capture(publication, self.executor)
            name = await self.files.save_async(jpeg, self.executor)
        except (SnapshotError, OSError) as exc:
            logger.warning("rollcall snapshot failed id=%s site=%s error=%s", rollcall.id, site, exc)
            await self._append(rollcall, "snapshot_failed", {"site": site, "error": str(exc)}, actor="server")
            return
        took = round(time.monotonic() - started, 3)
        await self._append(rollcall, "snapshot", {"site": site, "file": name, "took": took, "bytes": len(jpeg)}, actor="server")

    # --- the log: appending where this node read, folding what any node appended ----------------------

    async def _append(self, rollcall: RollCall, kind: str, data: dict[str, object], *, actor: str,
                      still: Callable[[], bool] = lambda: True) -> bool:
        """Append an event where this node's fold of the roll-call ends; when another node appended
        first, fold what it did and append only if `still()` holds then (it may raise the refusal).
        Whether the event was appended."""
        for _ in range(ATTEMPTS):
            if not still():
                return False
            try:
                (event,) = await self.services.store.append_events_at(
                    stream_of(rollcall.id), rollcall.last_event_id, [(actor, kind, data)])
            except StreamMoved as moved:
                if moved.behind(rollcall.last_event_id):
                    logger.error("roll-call %s log ends at %s, before %s that this node folded: the store lost events; "
                                 "appending from its end", rollcall.id, moved.last, rollcall.last_event_id)
                    rollcall.last_event_id = moved.last
                await self._catch_up(rollcall)
                continue
            await self._take(rollcall, event)
            return True
        raise RequestError("busy", f"roll-call {rollcall.id} kept changing under this {kind}: try again")

    async def _catch_up(self, rollcall: RollCall) -> None:
        for event in await read_all(self.services, stream_of(rollcall.id), after=rollcall.last_event_id):
            await self._take(rollcall, event)

    def _followed(self, rollcall: RollCall, page: list[StoredEvent]) -> None:
        if any([self._fold_one(rollcall, event) for event in page]):
            self.services.background.spawn(self._moved_on(rollcall), name=f"rollcall-followed:{rollcall.id}")

    async def _take(self, rollcall: RollCall, event: StoredEvent) -> None:
        """Fold one event of the roll-call (unless folded already) and move on from it."""
        if self._fold_one(rollcall, event):
            await self._moved_on(rollcall)

    def _fold_one(self, rollcall: RollCall, event: StoredEvent) -> bool:
        """Fold one event unless folded already (this node's own append, or one read while catching
        up) and tell this node's sessions and rooms what it means; whether it was new."""
        if rollcall.last_event_id is not None and event_id_key(event.id) <= event_id_key(rollcall.last_event_id):
            return False
        try:
            apply(rollcall, event, event.id)
        except FoldError as exc:
            rollcall.last_event_id = event.id
            self.skipped.add(f"{stream_of(rollcall.id)}/{event.id}", "bad_event", str(exc))
            return False
        self._tell(rollcall, event)
        return True

    async def _moved_on(self, rollcall: RollCall) -> None:
        """Wake who waits for a change, and the step machine (a step another node took may make the
        next one due here) unless it is the one appending."""
        await self._notify()
        if rollcall.open and rollcall.id in self.active and not self._lock(rollcall.id).locked():
            self.services.background.spawn(self.advance(rollcall.id), name=f"rollcall-advance:{rollcall.id}")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _tell(self, rollcall: RollCall, event: StoredEvent) -> None:
        """What an event means to the sessions and rooms of this node."""
        data, kind = event.data, event.kind
        listed = data.get("sites")
        sites = [s for s in listed if isinstance(s, str) and s in rollcall.results] if isinstance(listed, list) else []
        site = data.get("site") if isinstance(data.get("site"), str) else None
        if kind == "called":
            for called in sites:
                self._site_send(called, self._call(rollcall, called))
            if rollcall.mode == "sequence" and sites:
                self._room_send(rollcall, RollCallSpotlight(rollcall_id=rollcall.id, site=sites[0],
                                                            identity=self._identity_in_room(rollcall, sites[0])))
        elif kind == "window_ended":
            for ended in sites:
                outcome = rollcall.results[ended].outcome
                if outcome not in ("answered", "late", "excused"):  # a settled site has heard already
                    self._site_send(ended, RollCallCallEnded(rollcall_id=rollcall.id, site=ended, outcome=outcome))
                self._room_send(rollcall, RollCallUpdate(rollcall_id=rollcall.id, site=ended, outcome=outcome))
        elif kind == "pressed" and site in rollcall.results:
            result = rollcall.results[site]
            self._room_send(rollcall, RollCallUpdate(rollcall_id=rollcall.id, site=site, outcome=result.outcome,
                                                     response_time=result.response_time))
            if result.settled:
                self._site_send(site, RollCallCallEnded(rollcall_id=rollcall.id, site=site, outcome=result.outcome, final=True))
        elif kind == "excused" and site in rollcall.results:
            self._site_send(site, RollCallCallEnded(rollcall_id=rollcall.id, site=site, outcome="excused", final=True))
            self._room_send(rollcall, RollCallUpdate(rollcall_id=rollcall.id, site=site, outcome="excused"))
        elif kind == "closed":
            for closed, result in rollcall.results.items():
                if not result.settled:
                    self._site_send(closed, RollCallCallEnded(rollcall_id=rollcall.id, site=closed, outcome=result.outcome, final=True))
            if rollcall.mode == "sequence":
                self._room_send(rollcall, RollCallSpotlight(rollcall_id=rollcall.id))
        elif kind == "escalated" and isinstance(escalated := data.get("parents"), dict):
            parents = {str(s): p for s, p in escalated.items() if isinstance(p, str)}
            for parent in set(parents.values()):
                self._site_send(parent, RollCallEscalation(rollcall_id=rollcall.id, title=rollcall.title,
                                                           sites=[s for s, p in parents.items() if p == parent]))

    @staticmethod
    def _call(rollcall: RollCall, site: str) -> RollCallCall:
        result = rollcall.results[site]
        return RollCallCall(rollcall_id=rollcall.id, title=rollcall.title, site=site, deadline=result.deadline or 0.0,
                            window=rollcall.window, now=result.called_at or 0.0)

    # --- helpers -----------------------------------------------------------------------------------

    def _live(self, rollcall_id: str) -> RollCall:
        rollcall = self.active.get(RollCallId(rollcall_id))
        if rollcall is None:
            raise NotFound("unknown_rollcall", f"no open roll-call {rollcall_id!r}")
        return rollcall

    def _lock(self, rollcall_id: RollCallId) -> asyncio.Lock:
        return self._locks.setdefault(rollcall_id, asyncio.Lock())

    def _publications(self) -> list[Publication]:
        return [p for room in self.services.rooms.rooms.values() for p in room.router.publications.values()]

    def _identity_in_room(self, rollcall: RollCall, site: str) -> str | None:
        room = self.services.rooms.rooms.get(rollcall.room or "")
        if room is None:
            return None
        people = [p for p in room.participants.values() if p.identity.site == site]
        with_video = [p for p in people if live_video(room.router.publications.values(), p.id) is not None]
        chosen = (with_video or people)[:1]
        return chosen[0].id if chosen else None

    def _site_send(self, site: str, message: ServerMessage) -> None:
        for session in list(self.services.sessions):
            if session.participant is not None and session.participant.identity.site == site:
                session.send(message)

    def _room_send(self, rollcall: RollCall, message: ServerMessage) -> None:
        room = self.services.rooms.rooms.get(rollcall.room or "")
        if room is not None:
            room.broadcast(message)


def _snapshot_awaited(rollcall: RollCall) -> bool:
    """Whether an answer with video still waits for its snapshot (or its failure)."""
    return any(r.outcome in ("answered", "late") and r.snapshot is None and r.snapshot_error is None
               for r in rollcall.results.values())


def _listed_sites(event: StoredEvent) -> list[str]:
    """The sites an index entry lists (none when the entry holds something else)."""
    sites = event.data.get("sites", [])
    return [s for s in sites if isinstance(s, str)] if isinstance(sites, list) else []



def require_caller(identity: Identity) -> None:
    """Only those who may moderate or issue directives may start, excuse or close roll-calls."""
    if not (identity.can("moderate") or identity.can("issue")):
        raise Forbidden(f"{identity.identity!r} may not call the roll (needs grant 'moderate' or 'issue')")
