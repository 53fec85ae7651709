"""A WebSocket's outgoing queue: messages leave in order from one writer task, and a client that
cannot keep up is disconnected instead of growing the server's memory."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from signaling.codec import encode
from signaling.messages import ServerMessage

logger = logging.getLogger(__name__)


class Outbox:
    """Queue messages with `send()`; `run()` writes them to the socket until `close()`."""

    def __init__(self, ws: web.WebSocketResponse, *, limit: int, label: str = "") -> None:
        self._ws = ws
        self._limit = limit
        self._label = label
        self._queue: asyncio.Queue[ServerMessage | None] = asyncio.Queue()

    def send(self, message: ServerMessage) -> None:
        """Queue a message; past the limit the session is closed instead."""
        if self._queue.qsize() >= self._limit:
            logger.warning("outbox full, closing session session=%s", self._label)
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(message)

    def close(self) -> None:
        """Let the writer finish what is queued, then close the socket."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        """Write queued messages in order until closed or the socket goes away."""
        while True:
            message = await self._queue.get()
            if message is None or self._ws.closed:
                await self._ws.close()
                return
            try:
                await self._ws.send_str(encode(message))
            except ConnectionError:
                return
