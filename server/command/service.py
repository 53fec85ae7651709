"""The command channel's running state: append events through the store, fold them, push them live.

Every change is one event in the store's `command` stream (who from the verified identity, when,
from which session and address). The state in memory is only ever the fold of that stream, so a
restarted server reads the stream again and is where it was. A change is confirmed to a client
only after the store holds its event; refusals go to the `command-refusals` stream and the log.

Every node folds the same stream and follows it live (server/follow.py): a directive issued on one
node reaches the sessions of its recipients on every node as soon as the store holds it. A change
is checked against the state folded up to the stream's last event and appended only if the stream
is still there (`append_events_at`); if another node wrote meanwhile, this node folds what it
missed and checks again, so two nodes never both accept conflicting changes (two acknowledgements,
a feedback after a cancel), and a deadline every node watches is marked overdue once.

One writer per node appends: the changes waiting when it is free go in one round trip (a burst of
a thousand acknowledgements is a few appends), as long as no two of them touch the same thing (a
directive as a whole, one recipient of it, an incident); one that does waits for the next.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from server.auth import Identity
from server.command.domain import Directive, Event, IllegalTransition, Ledger, overdue_now, validate
from server.command.listeners import Listeners
from server.command.reports import Board, Incident, apply_report
from server.command.views import (
    Viewer,
    directive_concerns,
    directive_message,
    event_info,
    incident_event_concerns,
    incident_info,
    is_directive_event,
)
from server.errors import RequestError
from server.scheduler import Timer
from server.services import Services
from server.skipped import SkippedRecords
from server.store import StoredEvent, StoreError, StreamMoved, event_id_key
from signaling.command import CommandEvent

logger = logging.getLogger(__name__)

STREAM = "command"
REFUSALS = "command-refusals"
PAGE = 1000
ATTEMPTS = 100  # conditional appends tried, catching up in between, before a change is refused as busy
BATCH = 500  # changes appended in one round trip at most
WHOLE = ("issued", "updated", "cancelled")  # changes of a directive as a whole; the others touch recipients


@dataclass(frozen=True)
class Caller:
    """A verified identity and the session it speaks through."""

    identity: Identity
    session_id: str
    remote: str

    @property
    def viewer(self) -> Viewer:
        """What this caller may see."""
        return Viewer(self.identity.identity, self.identity.site, self.identity.can("issue"))


@dataclass
class _Pending:
    """A change checked and waiting for the writer: what it touches, and who waits for it."""

    actor: str
    kind: str
    data: dict[str, object]
    caller: Caller | None
    touches: frozenset[tuple[str, ...]]
    done: asyncio.Future[Event]
    attempts: int = field(default=0)


def _touches(kind: str, data: Mapping[str, object]) -> frozenset[tuple[str, ...]]:
    """What a change depends on and changes: two changes touching the same thing are not appended
    together (the second is checked against the state the first leaves)."""
    directive = data.get("directive_id")
    if isinstance(directive, str):
        if kind in WHOLE:
            return frozenset({("directive", directive)})
        listed = data.get("sites") if kind in ("delivered", "reminded") else [data.get("site")]
        sites = listed if isinstance(listed, list) else []
        return frozenset({("directive", directive, str(site)) for site in sites})
    return frozenset({("incident", str(data.get("incident_id") or ""))})


def _retrieved(done: asyncio.Future[Event]) -> None:
    if not done.cancelled():
        done.exception()


def _clashes(touches: frozenset[tuple[str, ...]], taken: set[tuple[str, ...]]) -> bool:
    """Whether a change touches what a change already in the batch does (`taken`, see `_take_up`)."""
    for item in touches:
        if item in taken:
            return True
        if len(item) == 3 and item[:2] in taken:  # a recipient of a directive changed as a whole
            return True
        if len(item) == 2 and (*item, "*") in taken:  # a directive changed as a whole, some recipient of it too
            return True
    return False


def _take_up(touches: frozenset[tuple[str, ...]], taken: set[tuple[str, ...]]) -> None:
    """Mark what a change in the batch touches; a recipient's change also marks its directive as
    partly taken (`*`), which only a change of the directive as a whole clashes with."""
    for item in touches:
        taken.add(item)
        if len(item) == 3:
            taken.add((*item[:2], "*"))


class CommandService:
    """Directives and incident reports of one server: the folded log, deadlines and live pushes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.store
        self.clock = services.scheduler.clock
        self.sites = services.sites
        self.ledger = Ledger()
        self.board = Board()
        self.timeline: dict[str, list[Event]] = {}
        # photo name -> (directive or incident id, site of the event) of every reference, in log order
        self.photo_refs: dict[str, list[tuple[str, str]]] = {}
        self.skipped = SkippedRecords(STREAM)  # events of the log the fold could not use, for /metrics
        self.last_event_id: str | None = None
        self.listeners = Listeners(services)
        self._timers: dict[tuple[str, str], Timer] = {}
        self.armed: list[Callable[[Directive], None]] = []  # told whenever a directive's deadlines are (re)armed
        self._inflight: set[tuple[str, str, str]] = set()
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._loading = False

    # --- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Fold the whole stored log, then arm every deadline."""
        count = 0
        self._loading = True  # no deadline is armed (and so none fires) on a half-folded log
        try:
            async for page in self.read_pages(None):
                for event in page:
                    if self.last_event_id is not None and event_id_key(event.id) <= event_id_key(self.last_event_id):
                        continue  # folded already: a change recorded meanwhile caught up past it
                    try:
                        self._fold(event)
                    except Exception as exc:  # noqa: BLE001 - one record the fold cannot read must cost only itself
                        self.skipped.add(event.id, "unreadable", f"{type(exc).__name__}: {exc}")
                count += len(page)
        finally:
            self._loading = False
        for directive in self.ledger.directives.values():
            self._arm(directive)
        self.services.tail.follow(STREAM, self.last_event_id, self._followed)
        logger.info("command log loaded events=%d directives=%d incidents=%d skipped=%d",
                    count, len(self.ledger.directives), len(self.board.incidents), self.skipped.total)

    async def read_pages(self, after: str | None, until: str | None = None, limit: int = PAGE) -> AsyncIterator[list[Event]]:
        """The stored command events after `after` (up to `until`, if given), oldest first, `limit` a page."""
        last = None if until is None else event_id_key(until)
        while True:
            page = await self.store.read_events(STREAM, after=after, limit=limit)
            events = [_event(stored) for stored in page if last is None or event_id_key(stored.id) <= last]
            if events:
                yield events
            if len(events) < limit:
                return
            after = events[-1].id

    # --- recording -----------------------------------------------------------------------------

    def check(self, caller: Caller | None, kind: str, data: Mapping[str, object]) -> None:
        """Raise IllegalTransition unless the event would be accepted now."""
        probe = Event("0-0", kind, caller.identity.identity if caller else "system", {**data, "t": self.clock.now()})
        if is_directive_event(kind):
            validate(self.ledger.directives, probe)
        else:
            apply_report(self.board.incidents, probe)

    async def record(self, caller: Caller | None, kind: str, data: Mapping[str, object]) -> Event:
        """Validate, append (returns once stored), fold and push one event; IllegalTransition if refused.

        The event is appended only where the stream was when it was checked: when another node has
        written meanwhile, what it wrote is folded and the change checked again."""
        key = (kind, str(data.get("directive_id") or data.get("incident_id") or ""), str(data.get("site", "")))
        if key in self._inflight and kind not in ("delivered", "updated"):
            raise IllegalTransition("in_progress", f"the same {kind} is already being stored")
        self.check(caller, kind, data)  # refused at once, not after the queue
        self._inflight.add(key)
        try:
            full: dict[str, object] = {**data, "t": self.clock.now()}
            if caller is not None:
                full.setdefault("site", caller.identity.site)
                full["session"], full["remote"] = caller.session_id, caller.remote
            pending = _Pending(caller.identity.identity if caller else "system", kind, full, caller,
                               _touches(kind, full), asyncio.get_running_loop().create_future())
            pending.done.add_done_callback(_retrieved)  # a caller gone meanwhile leaves no unread error behind
            self._queue.append(pending)
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write(), name="command-writer")
            return await asyncio.shield(pending.done)
        finally:
            self._inflight.discard(key)

    async def _write(self) -> None:
        """Append what waits, a batch at a time, until nothing does (the one writer of this node)."""
        while self._queue:
            batch: list[_Pending] = []
            taken: set[tuple[str, ...]] = set()
            waiting: list[_Pending] = []
            for pending in self._queue:
                if len(batch) >= BATCH or _clashes(pending.touches, taken):
                    waiting.append(pending)
                    continue
                try:
                    self.check(pending.caller, pending.kind, pending.data)
                except IllegalTransition as exc:
                    pending.done.set_exception(exc)
                    continue
                batch.append(pending)
                _take_up(pending.touches, taken)
            self._queue = waiting
            if batch:
                await self._append(batch)

    async def _append(self, batch: list[_Pending]) -> None:
        try:
            stored = await self.store.append_events_at(STREAM, self.last_event_id, [(p.actor, p.kind, p.data) for p in batch])
        except StreamMoved as moved:
            if moved.behind(self.last_event_id):
                logger.error("the command log ends at %s, before %s that this node folded: the store lost "
                             "events (a failover to a replica without them); appending from its end",
                             moved.last, self.last_event_id)
                self.last_event_id = moved.last
            again = []
            for pending in batch:
                pending.attempts += 1
                if pending.attempts >= ATTEMPTS:
                    pending.done.set_exception(IllegalTransition("busy", f"the command log kept moving under this {pending.kind}: try again"))
                else:
                    again.append(pending)
            self._queue[:0] = again  # first in the next round, checked again against what is folded then
            try:
                await self.catch_up()
            except StoreError as exc:
                self._fail(again, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every waiting request gets its answer, the writer goes on
            self._fail(batch, exc)
            return
        for pending, event in zip(batch, stored):
            folded = _event(event)
            self._take(folded)
            if not pending.done.done():
                pending.done.set_result(folded)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        for pending in batch:
            if pending in self._queue:
                self._queue.remove(pending)
            if not pending.done.done():
                pending.done.set_exception(exc)

    async def catch_up(self) -> None:
        """Fold (and push) what the log holds beyond this node's fold."""
        async for page in self.read_pages(self.last_event_id):
            for event in page:
                self._take(event)

    def _followed(self, page: list[StoredEvent]) -> None:
        for stored in page:
            self._take(_event(stored))

    def _take(self, event: Event) -> None:
        """Fold and push one event of the log, unless this node has folded it already (its own
        append, or one read while catching up)."""
        if self.last_event_id is not None and event_id_key(event.id) <= event_id_key(self.last_event_id):
            return
        try:
            changed = self._fold(event)
        except Exception as exc:  # noqa: BLE001 - one record the fold cannot read must cost only itself
            self.skipped.add(event.id, "unreadable", f"{type(exc).__name__}: {exc}")
            return
        if changed is None:
            logger.error("event did not fold id=%s kind=%s", event.id, event.kind)
        else:
            self._push(event, changed)

    def review_flags(self, identity: Identity, incident_id: str, incident_type: str, urgent: bool) -> dict[str, bool]:
        """How a report this identity files goes up (审核签发): signed at once (the duty leader's own, or no
        sign-off configured), urgent (即报: at once, reviewed after) or a draft for the leader."""
        settings = self.services.config.command
        incident = self.board.incidents.get(incident_id)
        urgent = urgent or (incident.type if incident is not None else incident_type) in settings.urgent_types
        signs = not settings.sign_off or identity.can("sign")
        return {"signed": signs, "urgent": urgent, "draft": not signs and not urgent}

    async def refuse(self, caller: Caller, action: str, code: str, message: str) -> RequestError:
        """Log a refusal (to the log and the refusals stream) and return the error to raise."""
        logger.info("command refused action=%s code=%s identity=%s site=%s session=%s remote=%s",
                    action, code, caller.identity.identity, caller.identity.site, caller.session_id, caller.remote)
        try:
            await self.store.append_event(
                REFUSALS, actor=caller.identity.identity, kind="refused",
                data={"action": action, "code": code, "message": message, "site": caller.identity.site,
                      "session": caller.session_id, "remote": caller.remote, "t": self.clock.now()},
            )
        except StoreError:
            logger.warning("refusal not stored action=%s code=%s", action, code)
        return RequestError(code, message)

    def _fold(self, event: Event) -> Directive | Incident | None:
        self.last_event_id = event.id
        changed: Directive | Incident | None
        try:
            _ = event.t  # pages and replays read it from every folded event: refuse a bad one now
        except IllegalTransition as exc:
            self.skipped.add(event.id, exc.code, exc.message)
            return None
        if is_directive_event(event.kind):
            changed, skipped = self.ledger.fold(event), self.ledger.skipped
        else:
            changed, skipped = self.board.fold(event), self.board.skipped
        if changed is None:
            self.skipped.add(event.id, skipped[-1][1] if skipped else "unknown", event.kind)
            return None
        self.timeline.setdefault(changed.id, []).append(event)
        photo = event.data.get("photo")
        if isinstance(photo, str):
            self.photo_refs.setdefault(photo, []).append((changed.id, event.text("site")))
        if isinstance(changed, Directive) and event.kind in ("issued", "updated", "cancelled"):
            self._arm(changed)
        return changed

    # --- live pushes ---------------------------------------------------------------------------

    def message_for(self, event: Event, changed: Directive | Incident, viewer: Viewer,
                    delivered: frozenset[str] | None = None) -> CommandEvent | None:
        """The push for one event as `viewer` may see it, or None when it does not concern them."""
        if isinstance(changed, Directive):
            sites = directive_concerns(changed, event, viewer, self.sites, delivered)
            return None if sites is None else directive_message(changed, event, sites)
        if not incident_event_concerns(changed, event, viewer):
            return None
        return CommandEvent(event=event_info(event), incident=incident_info(changed, viewer),
                            late_by_site=dict(self.board.late_by_site))

    def _push(self, event: Event, changed: Directive | Incident) -> None:
        if isinstance(changed, Directive):
            sites: set[str] = {changed.issuer_site}
            if event.kind in ("issued", "updated", "cancelled"):
                self.listeners.adopt_sessions(changed.recipients)
                sites.update(changed.recipients)
            else:
                site = event.text("site")
                sites.add(site)
                parent = self.sites.parent_id(site)
                if event.kind == "overdue" and parent:
                    sites.add(parent)
                if event.kind in ("delivered", "reminded"):
                    sites.update(_delivered_sites(event))
            targets = self.listeners.for_sites(sites) | self.listeners.for_identity(changed.issuer)
        else:
            targets = self.listeners.for_sites({changed.site, *changed.reached})
        reached: set[str] = set()
        delivered = None
        if event.kind == "delivered":
            delivered = frozenset(_delivered_sites(event))
        shared: dict[str, CommandEvent] = {}  # recipients of the same site get the same message
        for listener in targets:
            viewer = listener.viewer
            if viewer.identity != getattr(changed, "issuer", None) and viewer.site in shared:
                listener.send(shared[viewer.site])
                if getattr(listener, "reads", True):
                    reached.add(viewer.site)
                continue
            message = self.message_for(event, changed, viewer, delivered)
            if message is not None and viewer.identity != getattr(changed, "issuer", None):
                shared[viewer.site] = message
            if message is not None:
                listener.send(message)
                if getattr(listener, "reads", True):  # a send-only camera of a site is no delivery
                    reached.add(listener.viewer.site)
        if isinstance(changed, Directive) and event.kind == "issued":
            handed = sorted(s for s in reached if s in changed.recipients)
            if handed:
                self.services.background.spawn(self.mark_delivered(changed.id, handed), name="delivered")

    async def mark_delivered(self, directive_id: str, sites: list[str]) -> None:
        """Record that live sessions of `sites` were handed the directive."""
        d = self.ledger.directives.get(directive_id)
        if d is None:
            return
        fresh = [s for s in sites if s in d.recipients and d.recipients[s].delivered_at is None]
        if fresh:
            await self.record(None, "delivered", {"directive_id": directive_id, "sites": fresh, "site": ""})

    # --- deadlines -----------------------------------------------------------------------------

    def _arm(self, d: Directive) -> None:
        if self._loading:
            return  # start() arms every directive once the whole log is folded
        for which, deadline in (("ack_by", d.ack_by), ("feedback_by", d.feedback_by)):
            old = self._timers.pop((d.id, which), None)
            if old is not None:
                old.cancel()
            if deadline is not None and d.status == "active":
                self._timers[(d.id, which)] = self.services.scheduler.at(
                    deadline, partial(self.check_deadlines, d.id), name=f"directive:{d.id}:{which}"
                )
        for hook in self.armed:
            hook(d)

    async def check_deadlines(self, directive_id: str) -> int:
        """Mark every passed, unmet obligation of a directive overdue (escalating it); returns how many."""
        d = self.ledger.directives.get(directive_id)
        if d is None:
            return 0
        marked = 0
        for site, obligation in overdue_now(d, self.clock.now()):
            parent = self.sites.parent_id(site)
            try:
                await self.record(None, "overdue", {
                    "directive_id": directive_id, "site": site, "obligation": obligation,
                    "notify": [d.issuer, parent] if parent else [d.issuer],
                })
                marked += 1
            except IllegalTransition:
                continue  # met meanwhile
        if marked:
            logger.warning("directive overdue id=%s marked=%d", directive_id, marked)
        return marked


def _delivered_sites(event: Event) -> list[str]:
    """The sites a `delivered` event names (the ledger has already refused one without a list)."""
    sites = event.data.get("sites", [])
    return [s for s in sites if isinstance(s, str)] if isinstance(sites, list) else []


def _event(stored: StoredEvent) -> Event:
    return Event(stored.id, stored.kind, stored.actor, dict(stored.data))


def new_id(prefix: str) -> str:
    """A fresh directive or incident id."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
