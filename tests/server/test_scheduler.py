"""The scheduler runs callbacks in time order when the (injected) clock says they are due."""

from __future__ import annotations

from server.scheduler import ManualClock, Scheduler


async def test_callbacks_run_in_time_order_once_the_clock_reaches_them() -> None:
    clock = ManualClock()
    scheduler = Scheduler(clock)
    ran: list[str] = []
    scheduler.after(30, lambda: ran.append("thirty"))
    scheduler.after(10, lambda: ran.append("ten"))

    async def later() -> None:
        ran.append("async")

    scheduler.after(20, later)
    assert await scheduler.run_due() == 0
    clock.advance(25)
    assert await scheduler.run_due() == 2
    assert ran == ["ten", "async"]
    clock.advance(10)
    await scheduler.run_due()
    assert ran == ["ten", "async", "thirty"]


async def test_a_cancelled_timer_never_runs_and_a_failing_one_does_not_stop_the_rest() -> None:
    clock = ManualClock()
    scheduler = Scheduler(clock)
    ran: list[int] = []
    scheduler.after(1, lambda: ran.append(1)).cancel()
    scheduler.after(2, lambda: 1 / 0)
    scheduler.after(3, lambda: ran.append(3))
    clock.advance(5)
    assert await scheduler.run_due() == 2
    assert ran == [3]
    assert scheduler.pending == []
