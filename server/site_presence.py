"""Which sites are in a room now, from the store's presence records (every node's rooms).

The console's recipient tree, the roll-call picker and the rooms list show the same online state
as the room's roster: a site is online while one of its identities is present in a room.
"""

from __future__ import annotations

from aiohttp import web

from server.auth import AuthError
from server.services import SERVICES
from server.store import StoreUnavailable
from server.store.base import Store
from server.web_auth import page_identity


async def sites_online(store: Store, room_ids: list[str]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Site id -> the rooms (of `room_ids`) where one of its identities is present now; and per
    room, how many sites are present."""
    online: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for room_id in room_ids:
        sites = {presence.site for presence in await store.list_presence(room_id)}
        counts[room_id] = len(sites)
        for site in sites:
            online.setdefault(site, []).append(room_id)
    return online, counts


async def presence_api(request: web.Request) -> web.Response:
    """`GET /api/presence`: {"sites": {site: [room, ...]}, "rooms": {room: count}} for the caller's rooms."""
    try:
        identity, _ = page_identity(request)
    except AuthError as exc:
        raise web.HTTPUnauthorized(text=f"{exc.code}: {exc}\n") from None
    if identity is None:
        raise web.HTTPUnauthorized(text="unauthenticated: log in or give a device token\n")
    store = request.app[SERVICES].store
    try:
        rooms = [r.id for r in await store.list_rooms() if not identity.rooms or r.id in identity.rooms]
        online, counts = await sites_online(store, rooms)
    except StoreUnavailable as exc:
        raise web.HTTPServiceUnavailable(text=f"store_unavailable: {exc}\n") from None
    return web.json_response({"sites": online, "rooms": counts}, headers={"Cache-Control": "no-store"})
