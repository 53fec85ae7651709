"""Scheduled roll-calls: the configured schedules overlaid by edits kept in the log, armed on the scheduler.

Every node arms every schedule and follows the schedules' log live (an edit on one node re-arms it
on all); when a time comes, the node that claims that occurrence in the store starts the roll-call,
so it starts once however many nodes run.
"""

from __future__ import annotations

import logging

import msgspec

from server.config import RollCallSchedule, schedule_problems
from server.errors import NotFound, RequestError
from server.cron import ScheduleError, next_fire
from server.rollcall.schedule import TargetError, resolve_sites, schedule_zone
from server.rollcall.service import RollCallService, read_all
from server.scheduler import Timer
from server.skipped import SkippedRecords
from server.store import StoredEvent, StoreError

logger = logging.getLogger(__name__)

SCHEDULE_STREAM = "rollcall-schedules"
CLAIM_TTL = 24 * 3600.0  # an occurrence's claim outlives any clock difference between nodes


class ScheduleRunner:
    """Keeps one timer per enabled schedule; when it fires, starts the roll-call and arms the next.

    A schedule that cannot run (a rule with no next time, a group since removed) is logged and
    skipped, at start-up and when it fires; it never stops the server. `skipped` counts them and
    the unreadable records of the schedules' log.
    """

    def __init__(self, rollcalls: RollCallService) -> None:
        self.rollcalls = rollcalls
        self.services = rollcalls.services
        self._timers: dict[str, Timer] = {}
        self.next_at: dict[str, float] = {}
        self.skipped = SkippedRecords(SCHEDULE_STREAM)

    async def schedules(self) -> list[RollCallSchedule]:
        """Every schedule now in force: configured ones, then UI edits and deletions in log order."""
        return list((await self._current())[0].values())

    async def _current(self) -> tuple[dict[str, RollCallSchedule], str | None]:
        current = {s.id: s for s in self.services.config.rollcall_schedules}
        events = await read_all(self.services, SCHEDULE_STREAM)
        for event in events:
            self._fold(current, event)
        return current, events[-1].id if events else None

    def _fold(self, current: dict[str, RollCallSchedule], event: StoredEvent) -> None:
        if event.kind == "saved":
            try:
                schedule = msgspec.convert(event.data.get("schedule"), type=RollCallSchedule)
            except msgspec.ValidationError as exc:
                self.skipped.add(event.id, "bad_schedule", str(exc))
                return
            current[schedule.id] = schedule
        elif event.kind == "deleted" and isinstance(event.data.get("id"), str):
            current.pop(str(event.data["id"]), None)
        else:
            self.skipped.add(event.id, "bad_event", f"kind={event.kind!r}")

    async def start(self) -> None:
        """Arm every enabled schedule that can run for its next time after now; log and skip the others;
        then follow the edits any node makes."""
        current, last = await self._current()
        for schedule in current.values():
            self._arm_checked(schedule)
        self.services.tail.follow(SCHEDULE_STREAM, last, self._followed)

    def _arm_checked(self, schedule: RollCallSchedule) -> None:
        problems = schedule_problems(self.services.config, schedule, f"schedule {schedule.id}")
        if problems:
            self.skipped.add(_record(schedule), "invalid_schedule", "; ".join(problems))
            self._disarm(schedule.id)
            return
        self._arm(schedule)

    def _followed(self, page: list[StoredEvent]) -> None:
        """An edit or a deletion, from this node or another: arm or disarm it here too."""
        for event in page:
            changed: dict[str, RollCallSchedule] = {}
            self._fold(changed, event)
            for schedule in changed.values():
                self._arm_checked(schedule)
            if event.kind == "deleted" and isinstance(event.data.get("id"), str):
                self._disarm(str(event.data["id"]))

    def close(self) -> None:
        """Cancel the timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def save(self, schedule: RollCallSchedule, *, actor: str) -> None:
        """Validate (its next time computed) and only then record a new or changed schedule, and re-arm it."""
        problems = schedule_problems(self.services.config, schedule, "schedule")
        if problems:
            raise RequestError("invalid_schedule", "; ".join(problems))
        await self.services.store.append_event(SCHEDULE_STREAM, actor=actor, kind="saved",
                                               data={"schedule": msgspec.to_builtins(schedule)})
        self._arm(schedule)

    async def delete(self, schedule_id: str, *, actor: str) -> None:
        """Record a schedule's removal and disarm it."""
        if schedule_id not in {s.id for s in await self.schedules()}:
            raise NotFound("unknown_schedule", f"no schedule {schedule_id!r}")
        await self.services.store.append_event(SCHEDULE_STREAM, actor=actor, kind="deleted", data={"id": schedule_id})
        self._disarm(schedule_id)

    def _disarm(self, schedule_id: str) -> None:
        timer = self._timers.pop(schedule_id, None)
        if timer is not None:
            timer.cancel()
        self.next_at.pop(schedule_id, None)

    def _arm(self, schedule: RollCallSchedule, after: float | None = None) -> None:
        """Arm the schedule's next time; one that has none is logged and left unarmed, never raised."""
        self._disarm(schedule.id)
        if not schedule.enabled:
            return
        now = self.services.scheduler.clock.now()
        try:
            when = next_fire(schedule.cron, schedule_zone(self.services.config, schedule), max(now, after or now))
        except ScheduleError as exc:
            self.skipped.add(_record(schedule), "never_fires", str(exc))
            return
        self.next_at[schedule.id] = when
        self._timers[schedule.id] = self.services.scheduler.at(
            when, lambda: self._fire(schedule, when), name=f"rollcall-schedule:{schedule.id}")

    async def _fire(self, schedule: RollCallSchedule, when: float) -> None:
        self._timers.pop(schedule.id, None)
        try:
            if not await self.services.store.claim_once(f"rollcall-schedule:{schedule.id}:{when:.0f}", CLAIM_TTL):
                logger.info("scheduled rollcall started by another node schedule=%s at=%s", schedule.id, when)
                return
            sites = resolve_sites(self.services.sites, self.services.config, sites=schedule.sites, group=schedule.group, subtree=schedule.subtree)
            await self.rollcalls.begin(
                actor=f"schedule:{schedule.id}", caller_site="", sites=sites, mode=schedule.mode,
                window=schedule.window, grace=schedule.grace, title=f"{schedule.name_zh} {schedule.name_en}",
                room=schedule.room, schedule=schedule.id,
            )
            logger.info("scheduled rollcall fired schedule=%s at=%s", schedule.id, when)
        except (TargetError, RequestError, StoreError) as exc:
            # This time is lost; the next one may find the group, room or store back.
            logger.warning("scheduled rollcall not started schedule=%s at=%s error=%s", schedule.id, when, exc)
        finally:
            self._arm(schedule, after=when)


def _record(schedule: RollCallSchedule) -> str:
    """What a skipped schedule is counted as: this version of it (an edit that breaks it again is logged again)."""
    return f"schedule:{schedule.id}:{hash(schedule) & 0xFFFFFFFF:08x}"

