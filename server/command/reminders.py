"""Automatic 催办: N minutes before a directive's acknowledge-by or feedback-by deadline (per class,
`[command.remind_before]`), the recipients that still owe that step are reminded, once across nodes.

Every node arms the same timers as it folds the log; the node whose `claim_once` on the directive's
deadline succeeds records the reminder, an event like the issuer's one-click reminder, by `system`.
"""

from __future__ import annotations

import logging
from functools import partial

from server.command.domain import Directive, IllegalTransition, pending
from server.command.service import CommandService
from server.config import ReminderMinutes
from server.scheduler import Timer
from server.store import StoreError

logger = logging.getLogger(__name__)

CLAIM_TTL = 7 * 24 * 3600.0  # longer than any clock difference, short enough to expire
STEPS = (("ack_by", "acknowledge", "签收"), ("feedback_by", "feedback", "反馈"))


class DeadlineReminders:
    """One timer per directive deadline that is still ahead, `remind_before` minutes before it."""

    def __init__(self, service: CommandService, minutes: ReminderMinutes) -> None:
        self.service = service
        self.minutes = minutes
        self._timers: dict[tuple[str, str], Timer] = {}
        self.sent = 0  # reminders this node recorded, for /metrics

    def arm(self, d: Directive) -> None:
        """(Re)arm a directive's reminders after it was issued, updated or cancelled."""
        minutes = self.minutes.of(d.cls)
        for which, _, _ in STEPS:
            old = self._timers.pop((d.id, which), None)
            if old is not None:
                old.cancel()
            deadline = d.ack_by if which == "ack_by" else d.feedback_by
            if deadline is None or d.status != "active" or minutes <= 0:
                continue
            when = deadline - minutes * 60
            if when > self.service.clock.now():
                self._timers[(d.id, which)] = self.service.services.scheduler.at(
                    when, partial(self._remind, d.id, which, deadline), name=f"directive-reminder:{d.id}:{which}")

    def close(self) -> None:
        """Cancel the timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _remind(self, directive_id: str, which: str, deadline: float) -> None:
        self._timers.pop((directive_id, which), None)
        d = self.service.ledger.directives.get(directive_id)
        if d is None or d.status != "active" or deadline != (d.ack_by if which == "ack_by" else d.feedback_by):
            return  # cancelled, or the deadline moved (re-armed then)
        obligation, step = next((o, zh) for w, o, zh in STEPS if w == which)
        sites = [r.site for r in d.recipients.values() if pending(d, r, obligation)]
        if not sites:
            return
        minutes = round(self.minutes.of(d.cls))
        try:
            if not await self.service.store.claim_once(f"directive-reminder:{directive_id}:{which}:{deadline:.0f}", CLAIM_TTL):
                return  # another node reminds
            await self.service.record(None, "reminded", {
                "directive_id": directive_id, "sites": sites, "auto": which,
                "note": f"距{step}时限还有{minutes}分钟 {minutes} minutes to the {obligation} deadline"})
        except IllegalTransition:
            return  # met or cancelled meanwhile
        except StoreError as exc:
            logger.warning("directive reminder not recorded id=%s which=%s error=%s", directive_id, which, exc)
            return
        self.sent += 1
        logger.info("directive reminder id=%s which=%s sites=%d", directive_id, which, len(sites))
