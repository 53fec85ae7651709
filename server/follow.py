"""Following the event log live: one reader per node tails the streams its domains fold.

Every node folds the same streams (the command log, the roll-calls, their schedules), so a change
made on one node reaches the sessions of every other node: a domain says which stream it follows
and from where, and gets each batch of new events, in the stream's order, as soon as the store has
them (one blocking read over every followed stream, `XREAD BLOCK` on Redis). A domain also folds
its own appends at once and when it catches up after a refused conditional append, so a handler
skips the events it has folded already (compare ids: the log's order is the only order).

While the store is away the reader retries once a second and carries on from where it was: no
event is skipped, none is handed over twice by the reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from server.store import Store, StoredEvent, StoreError

logger = logging.getLogger(__name__)

BLOCK = 0.5  # seconds a read waits for news; a stream followed meanwhile is read from the next read on
RETRY = 1.0

Handler = Callable[[list[StoredEvent]], None]


class LogTail:
    """The streams this node follows, their positions, and the task that reads them."""

    def __init__(self, store: Store, *, block: float = BLOCK, retry: float = RETRY) -> None:
        self.store = store
        self.block = block
        self.retry = retry
        self._positions: dict[str, str | None] = {}
        self._handlers: dict[str, Handler] = {}
        self._followed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.failures = 0  # reads that failed (store away), for /metrics

    def follow(self, stream: str, after: str | None, handler: Handler) -> None:
        """Hand `handler` every event of `stream` after `after` (None: from its start), live."""
        self._positions[stream] = after
        self._handlers[stream] = handler
        self._followed.set()

    def unfollow(self, stream: str) -> None:
        """Stop following a stream (a roll-call that closed)."""
        self._positions.pop(stream, None)
        self._handlers.pop(stream, None)

    def start(self) -> None:
        """Start reading (once the store has started)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="log-tail")

    async def close(self) -> None:
        """Stop reading; idempotent. Never waits longer than a read can take: redis-py can be left
        reading a blocking XREAD after the cancellation was delivered, and a stop must not hang on it."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.block + 1.0)
        if not done:
            logger.warning("log tail still reading %.1f s after it was stopped: left to end by itself", self.block + 1.0)

    async def _run(self) -> None:
        down = False
        while not self._closing:
            if not self._positions:
                self._followed.clear()
                await self._followed.wait()
            try:
                events = await self.store.wait_events(dict(self._positions), block=self.block)
            except StoreError as exc:
                self.failures += 1
                if not down:
                    logger.warning("log tail cannot read the store: retrying every %.0f s error=%s", self.retry, exc)
                down = True
                await asyncio.sleep(self.retry)
                continue
            if down:
                logger.info("log tail reading again")
                down = False
            self._hand_over(events)

    def _hand_over(self, events: list[StoredEvent]) -> None:
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_stream.setdefault(event.stream, []).append(event)
        for stream, batch in by_stream.items():
            handler = self._handlers.get(stream)
            if handler is None:
                continue  # unfollowed while the read was out
            self._positions[stream] = batch[-1].id
            try:
                handler(batch)
            except Exception:  # noqa: BLE001 - one domain's fault must not stop the others following
                logger.exception("log tail handler failed stream=%s events=%d", stream, len(batch))
