"""Signaling relayed to the node that hosts the room, whichever node the client reached.

A `/ws` session is relayed after its hello passed this node's own checks: the hello goes to the
owner as the client sent it, then every message is pumped both ways. A WHIP/WHEP request is
forwarded as it came and its answer returned (the Location stays this node's path, so the
resource's DELETE comes here and is relayed too). The client's credentials (cookie, bearer,
?token=) and Origin go along unchanged, so the owner authenticates exactly as for a direct client;
who the client is (address, scheme, host) goes in a header signed with the shared secret
(server/relay_auth.py). Media does not pass here: the SDP answer names the owner's addresses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict

from server.errors import RoomMoved
from server.nodes import Nodes
from server.relay_auth import RELAY_HEADER
from server.store.nodes import NodeRecord

logger = logging.getLogger(__name__)

# What a relayed request keeps of the client's: its credentials, its origin and what it sends.
FORWARDED_HEADERS: Final[tuple[str, ...]] = (
    "Authorization", "Cookie", "Origin", "Sec-Fetch-Site", "Content-Type", "Accept", "If-Match", "User-Agent",
)
# What a relayed answer keeps of the owner's (CORS, Link and the security headers are this node's own).
RETURNED_HEADERS: Final[tuple[str, ...]] = (
    "Content-Type", "Location", "ETag", "Retry-After", "WWW-Authenticate", "Accept-Post", "Accept-Patch", "Allow",
)
CONNECT_TIMEOUT: Final[float] = 5.0
# An SDP offer's answer comes after the owner gathered its candidates: as long as a direct client waits.
HTTP_TIMEOUT: Final[float] = 30.0
# Close codes a client may receive; anything else (1005/1006: no code, connection lost) becomes 1012.
_CLOSE_CODES: Final[frozenset[int]] = frozenset({1000, 1001, 1008, 1009, 1011, 1012, 1013})


class Relays:
    """This node's HTTP client to the others, and the sockets it relays, by the node they reach."""

    def __init__(self, nodes: Nodes, *, max_message_bytes: int) -> None:
        self._nodes = nodes
        self._max_message = max_message_bytes
        self._http: aiohttp.ClientSession | None = None
        self._sockets: dict[str, set[aiohttp.ClientWebSocketResponse]] = {}
        nodes.on_change(self._nodes_changed)

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._sockets.values())

    async def start(self) -> None:
        """Open the HTTP client (one connection pool to every node)."""
        # Bodies pass as they are; the timeout covers connecting to a node (a relayed socket lives on).
        # No limit on connections: each relayed socket holds one for its life (aiohttp's default
        # of 100 made the 101st relayed client wait out the connect timeout and be refused).
        self._http = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=0),
                                           timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT))

    async def close(self) -> None:
        """Close every relayed socket and the client."""
        for sockets in list(self._sockets.values()):
            for upstream in list(sockets):
                await upstream.close(code=WSCloseCode.SERVICE_RESTART)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _nodes_changed(self, live: Mapping[str, NodeRecord]) -> None:
        """A node that stopped beating: its relayed sockets are cut, their clients connect again."""
        for node_id, sockets in list(self._sockets.items()):
            if node_id not in live:
                for upstream in list(sockets):
                    logger.warning("relayed socket cut node=%s: the node stopped beating", node_id)
                    # Its connection dropped without a close handshake (a frozen node would never
                    # answer one): the pump reads the end at once and closes the client's socket.
                    upstream._response.close()

    def _headers(self, request: web.Request) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name in FORWARDED_HEADERS:
            for value in request.headers.getall(name, ()):
                headers.add(name, value)
        headers[RELAY_HEADER] = self._nodes.relay_header(request.remote or "?", request.scheme, request.host)
        return headers

    @property
    def client(self) -> aiohttp.ClientSession:
        """The HTTP client to the other nodes (cascade links use it too)."""
        return self._client()

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RoomMoved("this node is stopping: connect again")
        return self._http

    # --- /ws -------------------------------------------------------------------------------------

    async def websocket(self, request: web.Request, ws: web.WebSocketResponse, node: NodeRecord, hello: str) -> None:
        """Relay a session to `node`: its hello first, then every message both ways until either side ends."""
        url = _ws_url(node.url) + (f"?{request.query_string}" if request.query_string else "")
        try:
            upstream = await self._client().ws_connect(
                url, headers=self._headers(request), heartbeat=20.0, max_msg_size=self._max_message * 4,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise RoomMoved(f"the room's node refused the relayed session ({exc.status}): connect again") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise RoomMoved(f"the room's node cannot be reached ({type(exc).__name__}): connect again") from None
        sockets = self._sockets.setdefault(node.node_id, set())
        sockets.add(upstream)
        logger.info("session relayed remote=%s node=%s", request.remote, node.node_id)
        try:
            await upstream.send_str(hello)
            await _pump(ws, upstream)
        finally:
            sockets.discard(upstream)
            if not sockets:
                self._sockets.pop(node.node_id, None)
            await upstream.close()
        code = upstream.close_code if upstream.close_code in _CLOSE_CODES else WSCloseCode.SERVICE_RESTART
        await ws.close(code=code or WSCloseCode.SERVICE_RESTART, message=b"relayed session ended")

    # --- WHIP / WHEP -----------------------------------------------------------------------------

    async def http(self, request: web.Request, node: NodeRecord, body: bytes) -> web.Response:
        """Forward a WHIP/WHEP request to `node` and return its answer as this node's."""
        url = node.url + request.rel_url.path_qs
        try:
            async with self._client().request(
                request.method, url, data=body, headers=self._headers(request), allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT, connect=CONNECT_TIMEOUT),
            ) as response:
                answer = await response.read()
                headers: CIMultiDict[str] = CIMultiDict()
                for name in RETURNED_HEADERS:
                    for value in response.headers.getall(name, ()):
                        headers.add(name, value)
                logger.info("%s relayed remote=%s node=%s status=%s", request.method, request.remote, node.node_id, response.status)
                return web.Response(status=response.status, body=answer, headers=headers)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise RoomMoved(f"the room's node cannot be reached ({type(exc).__name__}): try again") from None


async def _pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Messages both ways until one side closes; then the other is closed too."""

    async def downstream() -> None:
        async for message in upstream:
            if message.type == WSMsgType.TEXT:
                await client.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await client.send_bytes(message.data)

    down = asyncio.get_running_loop().create_task(downstream(), name="relay-downstream")
    up = asyncio.get_running_loop().create_task(_upstream(client, upstream), name="relay-upstream")
    try:
        await asyncio.wait((down, up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (down, up):
            task.cancel()
        await asyncio.gather(down, up, return_exceptions=True)


async def _upstream(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async for message in client:
        if message.type == WSMsgType.TEXT:
            await upstream.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            await upstream.send_bytes(message.data)


def _ws_url(base_url: str) -> str:
    """`/ws` of a node's base URL (http becomes ws, https wss)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://"):] + "/ws"
    return "ws://" + base_url.removeprefix("http://") + "/ws"
