"""The duty reports of one server: append events through the store, fold them, wake the pages that wait.

Every change is one event in the store's `duty` stream; the book in memory is only ever the fold of
that stream, read whole at start-up and followed live (server/follow.py), so every node has the
same board and a restarted node is where it was. A change is checked against the book folded up
to the stream's last event and appended only there (`append_events_at`): when another node wrote
meanwhile, this one folds what it missed and checks again, so the deadline of a day is recorded
once and a filing after it is late on every node. A change is confirmed only once the store has it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from server.auth import Forbidden, Identity
from server.cron import zone
from server.duty.days import BadDay, day_of, deadline_of, parse_day
from server.duty.board import BoardRow, board
from server.duty.domain import AlreadyRecorded, DutyBook, DutyRefused, check, fold
from server.errors import NotFound, RequestError
from server.services import Services
from server.skipped import SkippedRecords
from server.store import StoredEvent, StreamMoved

logger = logging.getLogger(__name__)

STREAM = "duty"
ATTEMPTS = 50  # conditional appends tried, catching up in between, before a change is refused as busy
PAGE = 1000
BACKDATE_DAYS = 7  # a report or roster may be entered this many days back, no further
ROSTER_AHEAD_DAYS = 62

IncidentSite = Callable[[str], str | None]


class DutyService:
    """The folded duty book, the reporting sites and their deadline, and the changes people make."""

    def __init__(self, services: Services, incident_site: IncidentSite) -> None:
        self.services = services
        self.clock = services.scheduler.clock
        self.settings = services.config.duty
        self.zone = zone(self.settings.timezone or services.config.city.timezone)
        self.incident_site = incident_site
        wanted = set(self.settings.sites)
        self.reporting = [s.id for s in services.sites if s.kind in self.settings.kinds or s.id in wanted]
        self.book = DutyBook()
        self.skipped = SkippedRecords(STREAM)
        self._changed = asyncio.Event()
        self.waiting = 0  # state requests waiting for a change now
        self._waiting_changed = asyncio.Condition()

    # --- the log -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Fold the whole stored log, then follow it live."""
        self._take(await self._read_after(None))
        self.services.tail.follow(STREAM, self.book.last_event_id, self._take)
        logger.info("duty log loaded reports=%d rosters=%d skipped=%d",
                    len(self.book.reports), len(self.book.rosters), self.skipped.total)

    async def _read_after(self, after: str | None) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        while True:
            page = await self.services.store.read_events(STREAM, after=after, limit=PAGE)
            events += page
            if len(page) < PAGE:
                return events
            after = page[-1].id

    def _take(self, events: list[StoredEvent]) -> None:
        """Fold events (those folded already are passed over) and wake whoever waits for a change."""
        before = self.book.last_event_id
        _, refused = fold(events, self.book)
        for event_id, why in refused:
            self.skipped.add(event_id, "refused", why)
        if self.book.last_event_id != before:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_change(self, after: str | None, timeout: float) -> None:
        """Return once the book is past `after` (at once if it is already), or after `timeout` seconds."""
        if self.book.last_event_id != after:
            return
        changed = self._changed
        await self._count_waiting(+1)
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return
        finally:
            await self._count_waiting(-1)

    async def _count_waiting(self, delta: int) -> None:
        async with self._waiting_changed:
            self.waiting += delta
            self._waiting_changed.notify_all()

    async def wait_waiting(self, count: int, timeout: float) -> None:
        """Return once `count` state requests wait for a change (tests)."""
        async with asyncio.timeout(timeout):
            async with self._waiting_changed:
                await self._waiting_changed.wait_for(lambda: self.waiting >= count)

    async def record(self, actor: str, kind: str, data: Mapping[str, object] | Callable[[], Mapping[str, object]]) -> StoredEvent:
        """Check, append where this node's fold ends (folding what another node wrote first), fold; the
        stored event. DutyRefused when the book does not take it. `data` may be a function of the
        book, asked again after each catch-up."""
        for _ in range(ATTEMPTS):
            now: Mapping[str, object] = data() if callable(data) else data
            check(self.book, StoredEvent(id="0-0", stream=STREAM, at=self.clock.now(), actor=actor, kind=kind, data=dict(now)))
            last = self.book.last_event_id
            try:
                (event,) = await self.services.store.append_events_at(STREAM, last, [(actor, kind, now)])
            except StreamMoved as moved:
                if moved.behind(last):
                    logger.error("duty log ends at %s, before %s that this node folded: the store lost events; "
                                 "appending from its end", moved.last, last)
                    self.book.last_event_id = moved.last
                self._take(await self._read_after(self.book.last_event_id))
                continue
            self._take([event])
            return event
        raise RequestError("busy", f"the duty log kept changing under this {kind}: try again")

    # --- days --------------------------------------------------------------------------------------

    def today(self) -> str:
        """The local date now."""
        return day_of(self.clock.now(), self.zone)

    def deadline(self, day: str) -> float:
        """The day's deadline as an epoch time."""
        return deadline_of(day, self.settings.deadline, self.zone)

    def board(self, day: str) -> list[BoardRow]:
        """Every reporting site's state on `day`."""
        return board(self.book, self.reporting, day, self.clock.now(), self.deadline(day))

    def checked_day(self, day: str | None, *, ahead: int = 0) -> str:
        """`day` (default today) if it lies no more than BACKDATE_DAYS back and `ahead` days ahead; RequestError else."""
        today = self.today()
        chosen = day or today
        try:
            offset = (parse_day(chosen) - parse_day(today)).days
        except BadDay as exc:
            raise RequestError("bad_day", str(exc)) from None
        if not -BACKDATE_DAYS <= offset <= ahead:
            raise RequestError("day_out_of_range", f"{chosen} lies outside {BACKDATE_DAYS} days back to {ahead} days ahead")
        return chosen

    # --- changes -----------------------------------------------------------------------------------

    async def _checked(self, actor: str, kind: str, data: dict[str, object]) -> StoredEvent:
        try:
            return await self.record(actor, kind, {**data, "at": self.clock.now()})
        except DutyRefused as exc:
            raise RequestError(exc.code, exc.message) from None

    def _own_site(self, identity: Identity, site: str) -> None:
        if site not in self.services.sites:
            raise NotFound("unknown_site", f"no site {site!r}")
        if identity.site != site:
            raise Forbidden(f"{identity.identity!r} answers for site {identity.site!r}, not {site!r}")

    async def file(self, identity: Identity, *, site: str, day: str | None, officer: str, leader: str,
                   all_well: bool, incidents: list[str], text: str) -> StoredEvent:
        """A version of the site's duty report (its own people only); linked incidents must be the site's."""
        self._own_site(identity, site)
        if site not in self.reporting:
            raise RequestError("not_reporting", f"site {site!r} does not file a daily duty report")
        chosen = self.checked_day(day)
        for incident in incidents:
            if self.incident_site(incident) != site:
                raise RequestError("unknown_incident", f"{incident!r} is not an incident report of {site!r}")
        return await self._checked(identity.identity, "report_filed", {
            "site": site, "day": chosen, "officer": officer, "leader": leader, "all_well": all_well,
            "incidents": incidents, "text": text, "deadline": self.deadline(chosen), "signed": self.signs(identity)})

    def signs(self, identity: Identity) -> bool:
        """Whether what this identity files goes up at once: no sign-off configured, or the duty leader's own."""
        return not self.settings.sign_off or identity.can("sign")

    def _leader(self, identity: Identity, site: str) -> None:
        self._own_site(identity, site)
        if not identity.can("sign"):
            raise Forbidden(f"{identity.identity!r} lacks grant 'sign' (the duty leader's)")

    async def sign(self, identity: Identity, *, site: str, day: str | None) -> StoredEvent:
        """审核签发: the site's duty leader signs the latest draft off; it goes up."""
        self._leader(identity, site)
        return await self._checked(identity.identity, "report_signed", {"site": site, "day": self.checked_day(day)})

    async def send_back(self, identity: Identity, *, site: str, day: str | None, comment: str) -> StoredEvent:
        """The site's duty leader returns the draft to the officer with a comment."""
        self._leader(identity, site)
        return await self._checked(identity.identity, "report_returned", {
            "site": site, "day": self.checked_day(day), "comment": comment})

    async def set_roster(self, identity: Identity, *, site: str, day: str, officer: str, leader: str) -> StoredEvent:
        """Who is on duty at the site that day (its own people, or an administrator)."""
        if not identity.can("admin"):
            self._own_site(identity, site)
        chosen = self.checked_day(day, ahead=ROSTER_AHEAD_DAYS)
        return await self._checked(identity.identity, "roster_set", {"site": site, "day": chosen, "officer": officer, "leader": leader})

    async def handover(self, identity: Identity, *, site: str, text: str) -> StoredEvent:
        """A shift handover note of today at the site (its own people only)."""
        self._own_site(identity, site)
        return await self._checked(identity.identity, "handover", {"site": site, "day": self.today(), "text": text})

    async def remind(self, identity: Identity, *, site: str, day: str | None, note: str) -> StoredEvent:
        """催办: remind a reporting site that has not filed (grant `issue`)."""
        if not identity.can("issue"):
            raise Forbidden(f"{identity.identity!r} lacks grant 'issue'")
        if site not in self.reporting:
            raise RequestError("not_reporting", f"site {site!r} does not file a daily duty report")
        return await self._checked(identity.identity, "reminded", {"site": site, "day": self.checked_day(day), "note": note})

    async def remind_pending(self, day: str) -> int:
        """The automatic reminder before the deadline: every reporting site whose report has not gone up; how many."""
        self._take(await self._read_after(self.book.last_event_id))
        minutes = round(self.settings.remind_before)
        reminded = 0
        for site in self.reporting:
            if self.book.went_up(site, day):
                continue
            try:
                await self.record("server", "reminded", {
                    "site": site, "day": day, "at": self.clock.now(),
                    "note": f"距截止还有{minutes}分钟 {minutes} minutes to the deadline"})
            except DutyRefused:
                continue  # it went up meanwhile
            reminded += 1
        logger.info("duty reminder before the deadline day=%s reminded=%d", day, reminded)
        return reminded

    async def pass_deadline(self, day: str) -> StoredEvent | None:
        """Record the day's deadline: the sites that filed nothing, each escalated to its parent; None if
        it was recorded already (by another node)."""
        self._take(await self._read_after(self.book.last_event_id))

        def passed() -> dict[str, object]:  # of the book as folded at each attempt
            missing = [s for s in self.reporting if not self.book.went_up(s, day)]
            escalated = {s: parent for s in missing if (parent := self.services.sites.parent_id(s)) is not None}
            return {"day": day, "at": self.clock.now(), "deadline": self.deadline(day), "missing": missing, "escalated": escalated}

        try:
            event = await self.record("server", "deadline_passed", passed)
        except AlreadyRecorded:
            return None
        logger.info("duty deadline passed day=%s missing=%d", day, len(self.book.deadlines[day].missing))
        return event
