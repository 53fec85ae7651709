"""`/admin/devices`: the device links (tokens) issued and in use, and revoking one (a lost field phone).

Listed: the links `python -m server token` recorded in the store, and every device connected to
this node's rooms (a link minted elsewhere still shows while it is in use). Revoking keeps the
revocation in the store and ends the link's live connections at once (server/access.py); other
nodes end theirs at their next read of the store. Administrators only (grant `admin`).

The page's button calls `POST /api/device-links/{token_id}/revoke` with a JSON body from the page's
own script (web/static/devices.js): the JSON API accepts only same-origin `application/json`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from aiohttp import web

from server.access import ACCESS
from server.auth import Identity
from server.pages import _me, _render
from server.services import SERVICES, Services
from server.store import RevocationRecord, StoreError
from server.times import format_time
from server.web_auth import cookie_identity

logger = logging.getLogger(__name__)

MAX_REASON: Final[int] = 200


@dataclass
class DeviceLinkView:
    """One device link as the page shows it."""

    token_id: str
    identity: str
    name: str
    site: str
    room: str
    grants: tuple[str, ...]
    expires_at: float
    issued_at: float | None = None
    issued_by: str = ""
    live: int = 0  # connections on this node
    revoked: bool = False
    revoked_by: str = ""
    reason: str = ""


def _admin(request: web.Request, *, page: bool = False) -> Identity:
    identity = cookie_identity(request)
    if identity is None and page:
        raise web.HTTPSeeOther("/login?next=/admin/devices")
    if identity is None:
        raise web.HTTPUnauthorized(text="unauthenticated: log in as an administrator\n")
    if not identity.can("admin"):
        raise web.HTTPForbidden(text="forbidden: the device links page needs grant 'admin'\n")
    return identity


async def device_links(services: Services) -> list[DeviceLinkView]:
    """The recorded links, the devices connected here and the revoked links, by token id."""
    views: dict[str, DeviceLinkView] = {}
    for record in await services.store.list_device_links():
        views[record.token_id] = DeviceLinkView(
            token_id=record.token_id, identity=record.identity, name=record.name, site=record.site, room=record.room,
            grants=record.grants, expires_at=record.expires_at, issued_at=record.issued_at, issued_by=record.issued_by,
        )
    for room in services.rooms.rooms.values():
        for principal in room.identities():
            participant = room.participants.get(principal)
            held = [c.identity for c in room.connections_of(principal)] + ([participant.identity] if participant else [])
            for identity in {i.token_id: i for i in held if i.kind == "device"}.values():
                view = views.get(identity.token_id)
                if view is None:
                    view = views[identity.token_id] = DeviceLinkView(
                        token_id=identity.token_id, identity=identity.identity, name=identity.name, site=identity.site,
                        room=room.id, grants=tuple(sorted(identity.grants)), expires_at=identity.expires_at,
                    )
                view.live += 1
    revocations, _ = await services.store.revocations_after(0)
    for revoked in revocations:
        if revoked.kind != "device" and revoked.token_id not in views:
            continue
        view = views.setdefault(revoked.token_id, DeviceLinkView(
            token_id=revoked.token_id, identity=revoked.identity or revoked.token_id, name=revoked.identity, site="—", room="—",
            grants=(), expires_at=revoked.expires_at,
        ))
        view.revoked, view.revoked_by, view.reason = True, revoked.by, revoked.reason
    for view in views.values():
        view.revoked = view.revoked or services.tokens.is_revoked(view.token_id)
    return sorted(views.values(), key=lambda v: (v.revoked, -(v.issued_at or 0.0), v.identity))


async def devices_page(request: web.Request) -> web.Response:
    """`GET /admin/devices`: the device links, each with a revoke button."""
    identity = _admin(request, page=True)
    services = request.app[SERVICES]
    return _render(
        request, "devices.html", me=_me(identity), links=await device_links(services),
        fmt=partial(format_time, tz=services.config.city.timezone, fmt="%Y-%m-%d %H:%M", none="—"),
    )


async def revoke_link(request: web.Request) -> web.Response:
    """`POST /api/device-links/{token_id}/revoke` `{"reason": "..."}`: refuse the link from now on, end its connections."""
    admin = _admin(request)
    services = request.app[SERVICES]
    token_id = request.match_info["token_id"]
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    reason = body.get("reason", "") if isinstance(body, dict) else None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise web.HTTPBadRequest(text=f"bad_request: send {{\"reason\": \"...\"}} (at most {MAX_REASON} characters)\n")
    # A link minted here is recorded; one minted elsewhere is known while connected or revoked.
    link = await services.store.get_device_link(token_id) or next(
        (v for v in await device_links(services) if v.token_id == token_id), None)
    if link is None:
        raise web.HTTPNotFound(text="unknown_device_link: no device link with this id is recorded or connected\n")
    record = RevocationRecord(
        token_id=token_id, expires_at=link.expires_at, revoked_at=time.time(), identity=link.identity, kind="device",
        by=admin.identity, reason=reason or "revoked on the device links page",
    )
    try:
        ended = await request.app[ACCESS].revoke(record)
    except StoreError:
        raise web.HTTPServiceUnavailable(text="store_unavailable: the revocation could not be kept; try again\n") from None
    logger.info("device link revoked token_id=%s identity=%s by=%s ended=%d", token_id, link.identity, admin.identity, ended)
    return web.json_response({"token_id": token_id, "revoked": True, "ended": ended})


def add_routes(app: web.Application) -> None:
    """Register the page and its API."""
    app.router.add_get("/admin/devices", devices_page)
    app.router.add_post("/api/device-links/{token_id}/revoke", revoke_link)
