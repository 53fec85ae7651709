"""The server's WebSocket response: aiohttp's, without a timer that outlives the socket.

aiohttp 3.14 re-arms a WebSocket's heartbeat timer when data arrives while it closes (the peer's
closing frame): the timer then holds the closed response, its request and buffers for one more
heartbeat interval. Under churn (sessions ending every few hundred milliseconds) that is hundreds
of closed sockets' memory in transit at any time, and the peak stays in the process's heap.
"""

from __future__ import annotations

from aiohttp import web


class WebSocket(web.WebSocketResponse):
    """A WebSocketResponse whose heartbeat is not re-armed once it is closing."""

    def _reset_heartbeat(self) -> None:
        if self._closed or self._closing:
            return
        super()._reset_heartbeat()
