"""The cascade links between nodes over HTTP: one node asks another for publications made there.

`POST /internal/cascade/{room}` carries a link's offer (JSON: the asking node, the SDP, the
publication ids) and returns the answer and the link's id; `DELETE /internal/cascade/{room}/{link}`
ends it. Only nodes of this deployment may ask: the request carries the relay header signed with
the shared secret (server/relay_auth.py), checked by the security middleware for every request.
"""

from __future__ import annotations

import logging
from typing import Final

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

LINK_TIMEOUT: Final[float] = 15.0  # the answer comes once the origin gathered its candidates


class LinkOffer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node sends to open a link."""

    node: str
    sdp: str
    publications: list[str]


class LinkAnswer(msgspec.Struct, frozen=True):
    """What the origin node answers."""

    sdp: str
    link: str


class NodeLinks:
    """Opens and closes links at other nodes, signed as this node (the `Links` of server/span.py)."""

    def __init__(self, nodes: Nodes, relays: Relays) -> None:
        self._nodes = nodes
        self._relays = relays

    def _headers(self) -> dict[str, str]:
        node_url = self._nodes.url
        host = node_url.split("://", 1)[-1]
        return {RELAY_HEADER: self._nodes.relay_header(f"node:{self._nodes.node_id}", node_url.split("://", 1)[0], host)}

    async def open(self, url: str, room_id: str, offer: str, publications: list[str]) -> tuple[str, str]:
        """Ask the node at `url` to send `publications`; its answer and the link's id there."""
        body = msgspec.json.encode(LinkOffer(node=self._nodes.node_id, sdp=offer, publications=publications))
        async with self._relays.client.post(
            f"{url}/internal/cascade/{room_id}", data=body, headers={**self._headers(), "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=LINK_TIMEOUT),
        ) as response:
            text = await response.read()
            if response.status != 201:
                raise LinkRefused(f"{response.status} {text[:200].decode('utf-8', 'replace').strip()}")
        answer = msgspec.json.decode(text, type=LinkAnswer)
        return answer.sdp, answer.link

    async def close(self, url: str, room_id: str, link_id: str) -> None:
        """Tell the node at `url` the link is no longer wanted."""
        async with self._relays.client.delete(
            f"{url}/internal/cascade/{room_id}/{link_id}", headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=LINK_TIMEOUT),
        ) as response:
            await response.read()


class LinkRefused(Exception):
    """The origin node did not open the link."""


def _span_of(request: web.Request) -> Span:
    if relayed_from(request) is None:
        raise Refused("node_only", "only the nodes of this deployment open cascade links")
    room = request.app[SERVICES].rooms.rooms.get(request.match_info["room"])
    if room is None or room.span is None:
        raise NotFound("unknown_room", "the room has no part on this node")
    return room.span


async def link_post(request: web.Request) -> web.Response:
    """`POST /internal/cascade/{room}`: another node asks for publications made here."""
    try:
        span = _span_of(request)
        try:
            offer = msgspec.json.decode(await request.read(), type=LinkOffer)
        except msgspec.ValidationError as exc:
            raise RequestError("bad_request", f"link offer: {exc}") from None
        request.app[SERVICES].limits.check_sdp(offer.sdp)
        sdp, link_id = await span.serve(offer.node, offer.sdp, offer.publications)
    except (RequestError, NegotiationError) as exc:
        logger.info("cascade link refused room=%s remote=%s error=%s", request.match_info["room"], request.remote, exc)
        raise http_error(exc) from None
    return web.Response(status=201, body=msgspec.json.encode(LinkAnswer(sdp=sdp, link=link_id)), content_type="application/json")


async def link_delete(request: web.Request) -> web.Response:
    """`DELETE /internal/cascade/{room}/{link}`: the asking node no longer wants the link."""
    try:
        span = _span_of(request)
    except RequestError as exc:
        raise http_error(exc) from None
    if not await span.stop_serving(request.match_info["link"]):
        raise http_error(NotFound("unknown_link", "no such link"))
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Register the cascade link endpoints."""
    app.router.add_post("/internal/cascade/{room}", link_post)
    app.router.add_delete("/internal/cascade/{room}/{link}", link_delete)
