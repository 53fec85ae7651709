"""The cascade links between nodes over HTTP (server/cascade_links.py).

`POST /internal/cascade/{room}` (JSON: the asking node and its URL) asks this node to send the
asker every publication of the room made here, on one link; the link's offers then go to the
asker's `POST /internal/cascade/{room}/offer` (JSON: the sending node, the SDP, mid -> publication
id, and each publication's owner and source) and are answered in the response; `DELETE
/internal/cascade/{room}/{node}` ends the link `node` asked for. Only nodes of this deployment may
call them: each request carries the relay header signed with the shared secret
(server/relay_auth.py), checked by the security middleware before any handler runs.
"""

from __future__ import annotations

import logging
from typing import Final, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from media.peers import NegotiationError
from server.errors import NotFound, Refused, RequestError, http_error
from server.nodes import Nodes
from server.relay import Relays
from server.relay_auth import RELAY_HEADER
from server.services import SERVICES
from server.span import Span
from server.web_security import relayed_from

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

LINK_TIMEOUT: Final[float] = 15.0  # an offer's answer comes once the receiving node gathered its candidates


class LinkAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A node asking for the publications made here."""

    node: str
    url: str


class LinkOffer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An offer on a link, from the node that sends on it."""

    node: str
    sdp: str
    tracks: dict[str, str]
    origins: dict[str, tuple[str, str, str]]  # publication id -> owner, source, codec name


class LinkAnswer(msgspec.Struct, frozen=True):
    """The answer of the node that receives on the link."""

    sdp: str


class LinkRefused(Exception):
    """The other node did not take the request."""


class NodeLinks:
    """Asks other nodes, signed as this node (the `Links` of server/cascade_links.py)."""

    def __init__(self, nodes: Nodes, relays: Relays) -> None:
        self._nodes = nodes
        self._relays = relays

    def _headers(self) -> dict[str, str]:
        scheme, _, host = self._nodes.url.partition("://")
        return {RELAY_HEADER: self._nodes.relay_header(f"node:{self._nodes.node_id}", scheme, host),
                "Content-Type": "application/json"}

    async def _call(self, method: str, url: str, body: msgspec.Struct | None, expect: int) -> bytes:
        async with self._relays.client.request(
            method, url, data=msgspec.json.encode(body) if body is not None else None, headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=LINK_TIMEOUT),
        ) as response:
            text = await response.read()
            if response.status != expect:
                raise LinkRefused(f"{method} {url}: {response.status} {text[:200].decode('utf-8', 'replace').strip()}")
            return text

    async def open(self, url: str, room_id: str, node_id: str, node_url: str) -> None:
        """Ask the node at `url` to send this node its publications of the room."""
        await self._call("POST", f"{url}/internal/cascade/{room_id}", LinkAsk(node=node_id, url=node_url), 201)

    async def offer(self, url: str, room_id: str, node_id: str, sdp: str, tracks: dict[str, str],
                    origins: dict[str, tuple[str, str, str]]) -> str:
        """Send the node at `url` an offer on the link it asked for; its answer."""
        body = LinkOffer(node=node_id, sdp=sdp, tracks=tracks, origins=origins)
        return msgspec.json.decode(await self._call("POST", f"{url}/internal/cascade/{room_id}/offer", body, 200), type=LinkAnswer).sdp

    async def close(self, url: str, room_id: str, node_id: str) -> None:
        """Tell the node at `url` that this node no longer wants its link."""
        await self._call("DELETE", f"{url}/internal/cascade/{room_id}/{node_id}", None, 200)


def _span_of(request: web.Request) -> Span:
    if relayed_from(request) is None:
        raise Refused("node_only", "only the nodes of this deployment use cascade links")
    room = request.app[SERVICES].rooms.rooms.get(request.match_info["room"])
    if room is None or room.span is None:
        raise NotFound("unknown_room", "the room has no part on this node")
    return room.span


async def _body(request: web.Request, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as exc:
        raise RequestError("bad_request", f"cascade request: {exc}") from None


async def link_post(request: web.Request) -> web.Response:
    """`POST /internal/cascade/{room}`: another node asks for the publications made here."""
    try:
        span = _span_of(request)
        ask = await _body(request, LinkAsk)
    except RequestError as exc:
        raise http_error(exc) from None
    span.links.serve(ask.node, ask.url)
    return web.Response(status=201)


async def offer_post(request: web.Request) -> web.Response:
    """`POST /internal/cascade/{room}/offer`: an offer on a link this node asked for; the answer."""
    try:
        span = _span_of(request)
        offer = await _body(request, LinkOffer)
        request.app[SERVICES].limits.check_sdp(offer.sdp)
        answer = await span.links.offered(offer.node, offer.sdp, offer.tracks, offer.origins)
    except (RequestError, NegotiationError) as exc:
        logger.info("cascade offer refused room=%s remote=%s error=%s", request.match_info["room"], request.remote, exc)
        raise http_error(exc) from None
    return web.Response(body=msgspec.json.encode(LinkAnswer(sdp=answer)), content_type="application/json")


async def link_delete(request: web.Request) -> web.Response:
    """`DELETE /internal/cascade/{room}/{node}`: that node no longer wants the link."""
    try:
        span = _span_of(request)
    except RequestError as exc:
        raise http_error(exc) from None
    if not await span.links.stop_serving(request.match_info["node"]):
        raise http_error(NotFound("unknown_link", "no such link"))
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Register the cascade link endpoints."""
    app.router.add_post("/internal/cascade/{room}", link_post)
    app.router.add_post("/internal/cascade/{room}/offer", offer_post)
    app.router.add_delete("/internal/cascade/{room}/{node}", link_delete)
