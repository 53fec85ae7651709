"""WHIP ingest (RFC 9725) and WHEP egress: the standard HTTP entry points for encoders and players.

Each POST makes a resource, a `Connection` of its token's identity into the room (server/connection.py):
the room admits it like any other way in (room, grant, lock, removal), a newer resource of the same
identity replaces the older (an encoder that restarts takes its tiles over), and the resource ends
when its client DELETEs it, when the room ends it (removed, room ended), or when its peer
connection stays lost past the grace period. The resource's URL is its Location.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from media.peers import NegotiationError
from server.auth import AuthError, Identity
from server.connection import CloseReason, ConnectionKind
from server.errors import NotFound, Refused, RequestError, http_error
from server.room import Room
from server.services import SERVICES, Services
from server.store import StoreUnavailable
from server.web_auth import bearer_identity
from server.web_security import relayed_from

logger = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"


class HttpResource:
    """A WHIP or WHEP resource: the connection of one encoder or player, addressed by its Location."""

    def __init__(self, kind: ConnectionKind, identity: Identity, room: Room, remote: str, *, target: str | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.kind = kind
        self.identity = identity
        self.room = room
        self.remote = remote
        self.target = target
        self.closed_by: CloseReason | None = None

    @property
    def slot(self) -> str:
        """One encoder per identity; one player per identity and participant played."""
        return "whip" if self.kind is ConnectionKind.WHIP else f"whep:{self.target}"

    @property
    def location(self) -> str:
        """The resource's URL path."""
        if self.kind is ConnectionKind.WHIP:
            return f"/whip/{self.room.id}/{self.id}"
        return f"/whep/{self.room.id}/{self.target}/{self.id}"

    async def close(self, reason: CloseReason) -> None:
        """The room ended it: a DELETE of it now finds nothing (the client learns it from its peer)."""
        self.closed_by = reason
        logger.info("%s resource ended room=%s identity=%s why=%s", self.kind.value, self.room.id, self.identity.identity, reason.value)


class HttpMediaResources:
    """The live WHIP and WHEP resources of this server, by id."""

    def __init__(self) -> None:
        self._resources: dict[str, HttpResource] = {}

    def add(self, resource: HttpResource) -> None:
        """A resource was created."""
        self._resources[resource.id] = resource

    def pop_owned(self, request: web.Request, kind: ConnectionKind) -> HttpResource:
        """The resource the path names, if the bearer owns it and it is still live; removes it."""
        identity = bearer_identity(request)
        resource = self._resources.get(request.match_info["resource"])
        if (
            resource is None
            or resource.kind is not kind
            or resource.closed_by is not None
            or resource.room.id != request.match_info["room"]
            or (resource.target is not None and resource.target != request.match_info.get("identity"))
        ):
            raise NotFound("unknown_resource", "no such session")
        if resource.identity.identity != identity.identity:
            raise Refused("forbidden", "the session belongs to another identity")
        del self._resources[resource.id]
        return resource

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._resources

    def prune(self) -> None:
        """Forget resources the room has ended."""
        for key in [k for k, r in self._resources.items() if r.closed_by is not None]:
            del self._resources[key]


RESOURCES = web.AppKey("http_media_resources", HttpMediaResources)


async def _read_offer(request: web.Request, services: Services) -> str:
    if request.content_type != SDP_TYPE:
        raise RequestError("bad_content_type", f"Content-Type must be {SDP_TYPE}")
    if request.content_length is not None and request.content_length > services.limits.max_sdp_bytes:
        raise RequestError("sdp_too_large", f"SDP exceeds {services.limits.max_sdp_bytes} bytes")
    body = await request.read()
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("bad_sdp", "SDP must be UTF-8 text") from None
    services.limits.check_sdp(sdp)
    return sdp


async def whip_post(request: web.Request) -> web.Response:
    """`POST /whip/{room}`: an encoder publishes as its token's identity."""
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    try:
        services.rate_limits.check("whip", address=request.remote)  # before the token is looked at
        identity = bearer_identity(request)
        services.rate_limits.check("whip", identity=identity.identity)
        offer = await _read_offer(request, services)
        node = await services.nodes.locate(room_id, relayed=relayed_from(request) is not None, identity=identity.identity)
        if node is not None:  # the room lives on another node: the offer goes there
            return await services.relays.http(request, node, offer.encode())
        room = await services.rooms.get(room_id)
        resource = HttpResource(ConnectionKind.WHIP, identity, room, request.remote or "?")
        sources = {str(i): "whip" for i in range(services.limits.max_media_lines)}
        answer = await room.ingest(resource, offer, sources)
    except (AuthError, RequestError, NegotiationError, StoreUnavailable) as exc:
        logger.info("whip refused room=%s remote=%s error=%s", room_id, request.remote, type(exc).__name__)
        raise http_error(exc) from None
    try:
        await services.rooms.record_presence(room)
    except StoreUnavailable as exc:  # nothing half-done: the encoder retries the whole publish
        await room.stop_ingest(resource)
        logger.info("whip refused room=%s remote=%s error=%s", room_id, request.remote, type(exc).__name__)
        raise http_error(exc) from None
    _resources(request).add(resource)
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers={"Location": resource.location})


async def whip_delete(request: web.Request) -> web.Response:
    """`DELETE /whip/{room}/{resource}`: the encoder stops."""
    services = request.app[SERVICES]
    try:
        elsewhere = await _relay_elsewhere(request)
        if elsewhere is not None:
            return elsewhere
        resource = _resources(request).pop_owned(request, ConnectionKind.WHIP)
    except (AuthError, RequestError, StoreUnavailable) as exc:
        raise http_error(exc) from None
    await resource.room.stop_ingest(resource)
    await services.rooms.forget_presence(resource.room, resource.identity.identity)
    return web.Response(status=200)


async def whep_post(request: web.Request) -> web.Response:
    """`POST /whep/{room}/{identity}`: a player receives that participant's camera video and audio."""
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    target = request.match_info["identity"]
    try:
        services.rate_limits.check("whep", address=request.remote)  # before the token is looked at
        identity = bearer_identity(request)
        services.rate_limits.check("whep", identity=identity.identity)
        offer = await _read_offer(request, services)
        # A room across nodes: the player is served where the participant it plays publishes.
        node = await services.nodes.locate(room_id, relayed=relayed_from(request) is not None, identity=target)
        if node is not None:
            return await services.relays.http(request, node, offer.encode())
        room = await services.rooms.get(room_id)
        resource = HttpResource(ConnectionKind.WHEP, identity, room, request.remote or "?", target=target)
        answer = await room.play(resource, target, offer)
    except (AuthError, RequestError, NegotiationError, StoreUnavailable) as exc:
        logger.info("whep refused room=%s remote=%s error=%s", room_id, request.remote, type(exc).__name__)
        raise http_error(exc) from None
    _resources(request).add(resource)
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers={"Location": resource.location})


async def whep_delete(request: web.Request) -> web.Response:
    """`DELETE /whep/{room}/{identity}/{resource}`: the player stops."""
    try:
        elsewhere = await _relay_elsewhere(request)
        if elsewhere is not None:
            return elsewhere
        resource = _resources(request).pop_owned(request, ConnectionKind.WHEP)
    except (AuthError, RequestError, StoreUnavailable) as exc:
        raise http_error(exc) from None
    await resource.room.stop_playing(resource)
    return web.Response(status=200)


async def _relay_elsewhere(request: web.Request) -> web.Response | None:
    """A resource's request reaching a node that does not host its room goes to the node that does
    (its Location is the path on the node the client posted to). Never a relayed request again."""
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    if relayed_from(request) is not None:
        return None
    if services.nodes.span_limit:  # a room across nodes: the node of the encoder, or of the one played
        if request.match_info["resource"] in _resources(request):
            return None
        who = request.match_info.get("identity") or bearer_identity(request).identity
        node = await services.nodes.holder(room_id, who)
    else:
        if room_id in services.rooms.rooms:
            return None
        bearer_identity(request)  # a client without a valid token is refused here, not relayed
        node = await services.nodes.owner_elsewhere(room_id)
    return None if node is None else await services.relays.http(request, node, await request.read())


def _resources(request: web.Request) -> HttpMediaResources:
    resources = request.app[RESOURCES]
    resources.prune()
    return resources


def add_routes(app: web.Application) -> None:
    """Register the WHIP and WHEP endpoints."""
    app[RESOURCES] = HttpMediaResources()
    app.router.add_post("/whip/{room}", whip_post)
    app.router.add_delete("/whip/{room}/{resource}", whip_delete)
    app.router.add_post("/whep/{room}/{identity}", whep_post)
    app.router.add_delete("/whep/{room}/{identity}/{resource}", whep_delete)
