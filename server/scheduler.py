"""One scheduler with an injectable clock: deadlines, escalations, answer windows and schedules.

Production uses `SystemClock`; tests use `ManualClock` and move time with `advance()` instead of
sleeping, then `await scheduler.run_due()` to run whatever fell due.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)

# What a coroutine callback returns is ignored (see run_due), so any awaitable will do.
Callback = Callable[[], Awaitable[object] | None]


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        """The current time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """`time.time()`."""
        return time.time()


class ManualClock:
    """A clock that only moves when told to; `advance()` wakes the scheduler."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """The current (manual) time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake whoever waits on it."""
        self._now += seconds
        for listener in list(self._listeners):
            listener()

    def set(self, when: float) -> None:
        """Jump to an absolute time (never backwards)."""
        self.advance(max(0.0, when - self._now))

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever time moves."""
        self._listeners.append(listener)


@dataclass(order=True)
class Timer:
    """A scheduled callback; `cancel()` stops it from running."""

    when: float
    seq: int
    name: str = field(compare=False)
    callback: Callback = field(compare=False, repr=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Do not run this timer."""
        self.cancelled = True


class Scheduler:
    """Runs callbacks at clock times, in time order, one at a time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        if isinstance(clock, ManualClock):
            clock.on_advance(self._wake.set)

    def at(self, when: float, callback: Callback, *, name: str = "") -> Timer:
        """Run `callback` at clock time `when` (or at once if that has passed)."""
        timer = Timer(when, next(self._seq), name, callback)
        heapq.heappush(self._heap, timer)
        self._wake.set()
        return timer

    def after(self, delay: float, callback: Callback, *, name: str = "") -> Timer:
        """Run `callback` `delay` seconds from now."""
        return self.at(self.clock.now() + delay, callback, name=name)

    @property
    def pending(self) -> list[Timer]:
        """Timers not yet run or cancelled, in time order."""
        return sorted(t for t in self._heap if not t.cancelled)

    async def run_due(self) -> int:
        """Run every timer that is due now; returns how many ran."""
        ran = 0
        async with self._lock:
            while self._heap and (self._heap[0].cancelled or self._heap[0].when <= self.clock.now()):
                timer = heapq.heappop(self._heap)
                if timer.cancelled:
                    continue
                ran += 1
                try:
                    result = timer.callback()
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # noqa: BLE001 - one failing deadline must not stop the others
                    logger.exception("scheduled callback failed name=%s", timer.name)
        return ran

    def start(self) -> None:
        """Start the background loop (production)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def _run(self) -> None:
        while True:
            await self.run_due()
            self._wake.clear()
            delay = None
            if self._heap:
                delay = max(0.0, self._heap[0].when - self.clock.now())
                if isinstance(self.clock, ManualClock):
                    delay = None  # manual time only moves through advance(), which wakes us
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        """Stop the loop and wait until it has exited."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
