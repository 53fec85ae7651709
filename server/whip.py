"""WHIP ingest (RFC 9725) and WHEP egress: the standard HTTP entry points for encoders and players."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from media.egress import EgressPeer
from media.peers import NegotiationError
from server.auth import AuthError, Identity
from server.errors import NotFound, RequestError, http_error
from server.room import Participant, Room, role_for
from server.services import SERVICES, Services
from server.web_auth import bearer_identity

logger = logging.getLogger(__name__)

SDP_TYPE = "application/sdp"
_R = TypeVar("_R")


@dataclass
class _Ingest:
    room: Room
    participant: Participant


@dataclass
class _Egress:
    room: Room
    identity: Identity
    peer: EgressPeer


class HttpMediaSessions:
    """WHIP and WHEP resources by id, so `DELETE` on their location can end them."""

    def __init__(self) -> None:
        self.ingest: dict[str, _Ingest] = {}
        self.egress: dict[str, _Egress] = {}

    async def close(self) -> None:
        """End every resource."""
        for item in list(self.ingest.values()):
            await item.room.leave(item.participant)
        for egress in list(self.egress.values()):
            await egress.peer.close()
        self.ingest.clear()
        self.egress.clear()


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


def _sessions(services: Services) -> HttpMediaSessions:
    if services.http_media is None:
        services.http_media = HttpMediaSessions()
    return services.http_media


async def whip_post(request: web.Request) -> web.Response:
    """`POST /whip/{room}`: an encoder publishes as its token's identity."""
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    try:
        identity = bearer_identity(request)
        identity.check_room(room_id)
        identity.require("publish")
        offer = await _read_offer(request, services)
        room = await services.rooms.get(room_id)
        participant = Participant(identity=identity, send=None, role=role_for(identity))
        await room.join(participant)
        try:
            sources = {str(i): "whip" for i in range(services.limits.max_media_lines)}
            answer = await room.publish(participant, offer, sources)
        except BaseException:
            await room.leave(participant)
            raise
    except (AuthError, RequestError, NegotiationError) as exc:
        logger.info("whip refused room=%s remote=%s error=%s", room_id, request.remote, type(exc).__name__)
        raise http_error(exc) from None
    resource = uuid.uuid4().hex
    _sessions(services).ingest[resource] = _Ingest(room, participant)
    await services.rooms.record_presence(room)
    location = f"/whip/{room_id}/{resource}"
    logger.info("whip publishing room=%s identity=%s", room_id, identity.identity)
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers={"Location": location})


def _owned_resource(request: web.Request, table: dict[str, _R], owner: Callable[[_R], str], room: Callable[[_R], str]) -> _R:
    """Pop the resource named in the path if the bearer owns it; raises the HTTP error otherwise."""
    try:
        identity = bearer_identity(request)
        key = request.match_info["resource"]
        item = table.get(key)
        if item is None or room(item) != request.match_info["room"]:
            raise NotFound("unknown_resource", "no such session")
        if owner(item) != identity.identity:
            raise RequestError("forbidden", "the session belongs to another identity")
    except (AuthError, RequestError) as exc:
        raise http_error(exc) from None
    return table.pop(key)


async def whip_delete(request: web.Request) -> web.Response:
    """`DELETE /whip/{room}/{resource}`: the encoder stops."""
    services = request.app[SERVICES]
    item = _owned_resource(request, _sessions(services).ingest, lambda i: i.participant.id, lambda i: i.room.id)
    await item.room.leave(item.participant)
    await services.store.remove_presence(item.room.id, item.participant.id)
    return web.Response(status=200)


async def whep_post(request: web.Request) -> web.Response:
    """`POST /whep/{room}/{identity}`: a player receives that participant's camera video and audio."""
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    target = request.match_info["identity"]
    try:
        identity = bearer_identity(request)
        identity.check_room(room_id)
        identity.require("subscribe")
        offer = await _read_offer(request, services)
        room = await services.rooms.get(room_id)
        owned = [p for p in room.router.publications.values() if p.owner == target]
        if not owned:
            raise NotFound("not_publishing", f"{target!r} publishes nothing in room {room_id!r}")
        preferred = sorted(owned, key=lambda p: p.source not in ("camera", "microphone", "whip"))
        peer = EgressPeer(identity.identity, counters=services.counters, ice_servers=services.config.server.ice_servers)
        try:
            answer = await peer.answer(offer, preferred)
        except BaseException:
            await peer.close()
            raise
    except (AuthError, RequestError, NegotiationError) as exc:
        logger.info("whep refused room=%s remote=%s error=%s", room_id, request.remote, type(exc).__name__)
        raise http_error(exc) from None
    resource = uuid.uuid4().hex
    _sessions(services).egress[resource] = _Egress(room, identity, peer)
    location = f"/whep/{room_id}/{target}/{resource}"
    return web.Response(status=201, text=answer, content_type=SDP_TYPE, headers={"Location": location})


async def whep_delete(request: web.Request) -> web.Response:
    """`DELETE /whep/{room}/{identity}/{resource}`: the player stops."""
    item = _owned_resource(request, _sessions(request.app[SERVICES]).egress, lambda i: i.identity.identity, lambda i: i.room.id)
    await item.peer.close()
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Register the WHIP and WHEP endpoints."""
    app.router.add_post("/whip/{room}", whip_post)
    app.router.add_delete("/whip/{room}/{resource}", whip_delete)
    app.router.add_post("/whep/{room}/{identity}", whep_post)
    app.router.add_delete("/whep/{room}/{identity}/{resource}", whep_delete)
