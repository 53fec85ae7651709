"""The daily deadline on the one scheduler: at 17:30 (configurable) the day's missing sites are recorded once,
and `remind_before` minutes earlier the sites whose report has not gone up are reminded once.

Every node arms the same timers; the node whose `claim_once` on the day succeeds does the work,
and the conditional append makes a second deadline record impossible anyway. A node that starts
after today's deadline with none recorded (every node was down at the time) records it at once.
"""

from __future__ import annotations

import logging

from server.duty.days import next_before_deadline, next_deadline
from server.duty.service import DutyService
from server.errors import RequestError
from server.scheduler import Timer
from server.store import StoreError

logger = logging.getLogger(__name__)

CLAIM_TTL = 24 * 3600.0  # a day's claim outlives any clock difference between nodes


class DeadlineRunner:
    """Keeps one timer for the next deadline; when it fires, records it (once across nodes) and arms the next."""

    def __init__(self, service: DutyService) -> None:
        self.service = service
        self._timer: Timer | None = None
        self._reminder: Timer | None = None
        self.next_at: tuple[str, float] | None = None
        self.next_reminder: tuple[str, float] | None = None

    async def start(self) -> None:
        """Record today's deadline if it passed unrecorded, then arm the next one."""
        today = self.service.today()
        if self.service.clock.now() >= self.service.deadline(today) and today not in self.service.book.deadlines:
            await self._record(today)
        self._arm()
        self._arm_reminder()

    def close(self) -> None:
        """Cancel the timers."""
        for timer in (self._timer, self._reminder):
            if timer is not None:
                timer.cancel()
        self._timer = self._reminder = None

    def _arm_reminder(self) -> None:
        before = self.service.settings.remind_before * 60
        if before <= 0:
            return
        day, when = next_before_deadline(self.service.clock.now(), self.service.settings.deadline, before, self.service.zone)
        self.next_reminder = (day, when)
        self._reminder = self.service.services.scheduler.at(when, lambda: self._remind(day), name=f"duty-reminder:{day}")

    async def _remind(self, day: str) -> None:
        try:
            if await self.service.services.store.claim_once(f"duty-reminder:{day}", CLAIM_TTL):
                await self.service.remind_pending(day)
        except (RequestError, StoreError) as exc:
            logger.warning("duty reminder not sent day=%s error=%s", day, exc)
        finally:
            self._arm_reminder()

    def _arm(self) -> None:
        day, when = next_deadline(self.service.clock.now(), self.service.settings.deadline, self.service.zone)
        self.next_at = (day, when)
        self._timer = self.service.services.scheduler.at(when, lambda: self._fire(day), name=f"duty-deadline:{day}")

    async def _fire(self, day: str) -> None:
        try:
            if await self.service.services.store.claim_once(f"duty-deadline:{day}", CLAIM_TTL):
                await self._record(day)
            else:
                logger.info("duty deadline recorded by another node day=%s", day)
        except StoreError as exc:
            logger.warning("duty deadline not recorded day=%s error=%s", day, exc)
        finally:
            self._arm()

    async def _record(self, day: str) -> None:
        try:
            await self.service.pass_deadline(day)
        except (RequestError, StoreError) as exc:
            logger.warning("duty deadline not recorded day=%s error=%s", day, exc)
