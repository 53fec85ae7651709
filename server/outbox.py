"""A WebSocket's outgoing queue: messages leave in order from one writer task, and a client that
cannot keep up is disconnected instead of growing the server's memory.

The queue is bounded. Past the limit the socket is closed (code 1013, "try again later") with one
log line, and what is still queued is dropped: dropping the oldest messages instead would lose a
directive or roll-call call without anyone noticing, while a closed socket makes the client
reconnect and resume from the last event it saw. A bulk sender (the command replay) does not
overflow it: it waits for room (`room()`), sends past the messages it holds back (`hold()`,
`send_ahead()`, `release()`), so that live messages it would otherwise overtake follow it in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import WSCloseCode, web

from signaling.codec import encode
from signaling.messages import ServerMessage

logger = logging.getLogger(__name__)


class Outbox:
    """Queue messages with `send()`; `run()` writes them to the socket until `close()`."""

    def __init__(self, ws: web.WebSocketResponse, *, limit: int, label: str = "") -> None:
        self._ws = ws
        self._limit = limit
        self._label = label
        self._queue: deque[ServerMessage] = deque()
        self._wake = asyncio.Event()  # the writer has something to write, or must end
        self._roomy = asyncio.Event()  # the queue is down to half the limit, or nothing more is written
        self._held: list[ServerMessage] | None = None
        self._keep: Callable[[ServerMessage], bool] = _nothing
        self._ending = False  # close(): write what is queued, then close the socket
        self._full = False  # overflowed: close the socket now, drop the rest
        ws[OUTBOX] = self  # so that code holding only the socket (a replay) finds its outbox

    @staticmethod
    def of(ws: web.WebSocketResponse) -> Outbox | None:
        """The outbox writing to `ws`, if it has one."""
        return ws.get(OUTBOX)

    @property
    def closed(self) -> bool:
        """Whether nothing more will be written: closing, overflowed, or the socket is gone."""
        return self._ending or self._full or self._ws.closed

    def send(self, message: ServerMessage) -> None:
        """Queue a message (or hold it back, see `hold()`); past the limit the session is closed instead."""
        if self._held is not None and self._keep(message):
            if not self._ending and not self._full:
                self._held.append(message)
                self._check_limit()
            return
        self.send_ahead(message)

    def send_ahead(self, message: ServerMessage) -> None:
        """Queue a message past those held back."""
        if self._ending or self._full:
            return
        self._queue.append(message)
        self._wake.set()
        self._check_limit()

    def hold(self, keep: Callable[[ServerMessage], bool]) -> bool:
        """Hold back the messages `keep` selects until `release()`; False if a hold is already on."""
        if self._held is not None:
            return False
        self._held, self._keep = [], keep
        return True

    def release(self) -> None:
        """Queue the held messages, in the order they were sent, and end the hold."""
        held, self._held, self._keep = self._held or [], None, _nothing
        for message in held:
            self.send_ahead(message)

    async def room(self) -> bool:
        """Wait until the queue is down to half the limit; False once nothing more will be written."""
        while not self.closed and len(self._queue) > self._limit // 2:
            self._roomy.clear()
            await self._roomy.wait()
        return not self.closed

    def close(self) -> None:
        """Let the writer finish what is queued, then close the socket."""
        self._ending = True
        self._wake.set()
        self._roomy.set()

    def _check_limit(self) -> None:
        if len(self._queue) + len(self._held or ()) <= self._limit:
            return
        # One line per session, not one per message: a flood of them was itself the outage.
        logger.warning("outbox full, closing session session=%s limit=%d", self._label, self._limit)
        self._full = True
        self._queue.clear()
        if self._held is not None:
            self._held.clear()
        self._wake.set()
        self._roomy.set()

    async def run(self) -> None:
        """Write queued messages in order until closed or the socket goes away."""
        while True:
            while not self._queue and not (self._ending or self._full):
                self._wake.clear()
                await self._wake.wait()
            if self._full:
                await self._ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"outbox full")
                return
            if not self._queue or self._ws.closed:
                self._ending = True
                self._roomy.set()
                await self._ws.close()
                return
            message = self._queue.popleft()
            if len(self._queue) <= self._limit // 2:
                self._roomy.set()
            try:
                await self._ws.send_str(encode(message))
            except ConnectionError:
                self._ending = True
                self._roomy.set()
                return


def _nothing(message: ServerMessage) -> bool:
    return False


OUTBOX = web.ResponseKey("outbox", Outbox)
