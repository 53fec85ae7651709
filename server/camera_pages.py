"""`/cameras`: the sites' cameras and their states; an administrator adds and removes them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from server.auth import AuthError, Identity
from server.cameras import CAMERAS
from server.config import CameraConfig
from server.errors import RequestError, http_error
from server.pages import _me, _render, _sites
from server.services import SERVICES
from server.web_auth import signed_in

FIELDS = ("id", "site", "name_zh", "name_en", "url", "username", "transport")


def _admin(request: web.Request) -> Identity:
    identity = signed_in(request)
    try:
        identity.require("admin")
    except AuthError as exc:
        raise http_error(exc) from None
    return identity


async def cameras_page(request: web.Request) -> web.Response:
    """`GET /cameras`: every camera in force, its state in each room it is pulled into, an add form."""
    identity = _admin(request)
    services = request.app[SERVICES]
    return _render(request, "cameras.html", me=_me(identity), cameras=request.app[CAMERAS].rows(),
                   sites=_sites(services), site_list=services.config.sites, rooms=services.config.rooms, error=request.query.get("error", ""),
                   token=request.query.get("token", ""))


async def cameras_json(request: web.Request) -> web.Response:
    """`GET /api/cameras`: the same as JSON (no credentials)."""
    _admin(request)
    return web.json_response({"cameras": request.app[CAMERAS].rows()})


async def camera_add(request: web.Request) -> web.Response:
    """`POST /cameras`: add a camera (checked like the configuration; the password is sealed)."""
    identity = _admin(request)
    post = await request.post()
    raw: dict[str, Any] = {k: str(post[k]).strip() for k in FIELDS if str(post.get(k, "")).strip()}
    rooms = [r for r in str(post.get("rooms", "")).replace(",", " ").split() if r]
    if rooms:
        raw["rooms"] = rooms
    password = str(post.get("password", ""))
    try:
        config = msgspec.convert(raw, type=CameraConfig)
        await request.app[CAMERAS].add(config, password, actor=identity.identity)
    except (msgspec.ValidationError, RequestError) as exc:
        message = exc.message if isinstance(exc, RequestError) else str(exc)
        raise web.HTTPSeeOther(f"/cameras?error={quote(message)}") from None
    raise web.HTTPSeeOther("/cameras")


async def camera_remove(request: web.Request) -> web.Response:
    """`POST /cameras/{id}/delete`."""
    identity = _admin(request)
    try:
        await request.app[CAMERAS].remove(request.match_info["cid"], actor=identity.identity)
    except RequestError as exc:
        raise http_error(exc) from None
    raise web.HTTPSeeOther("/cameras")


def add_routes(app: web.Application) -> None:
    """Register the camera pages."""
    app.router.add_get("/cameras", cameras_page)
    app.router.add_post("/cameras", camera_add)
    app.router.add_get("/api/cameras", cameras_json)
    app.router.add_post("/cameras/{cid}/delete", camera_remove)
