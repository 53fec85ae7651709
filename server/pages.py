"""HTML pages: login, the room list, the consultation room and the field-unit page."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from server.auth import AuthError, Identity
from server.ice_servers import browser_ice_servers
from server.services import SERVICES, Services
from server.web_auth import SESSION_COOKIE, cookie_identity, page_identity

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def make_templates() -> jinja2.Environment:
    """The Jinja2 environment over web/templates, autoescaping HTML."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.ChainableUndefined,
    )


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    services = request.app[SERVICES]
    city = services.config.city
    context.setdefault("city", {"name_zh": city.name_zh, "name_en": city.name_en})
    html = request.app[TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _me(identity: Identity) -> dict[str, Any]:
    return {"identity": identity.identity, "name": identity.name, "site": identity.site, "grants": sorted(identity.grants)}


def _sites(services: Services) -> dict[str, dict[str, str]]:
    return {s.id: {"name_zh": s.name_zh, "name_en": s.name_en, "kind": s.kind} for s in services.config.sites}


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an absolute URL here would make the login page an open redirect.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def login_page(request: web.Request) -> web.Response:
    """`GET /login`."""
    return _render(request, "login.html", error=None, next=_safe_next(request.query.get("next")))


async def login_submit(request: web.Request) -> web.Response:
    """`POST /login`: check the password, set the signed session cookie."""
    services = request.app[SERVICES]
    form = await request.post()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    user = services.config.user(username)
    try:
        # argon2 costs tens of milliseconds of CPU: keep it off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, services.passwords.verify, user, password)
    except AuthError:
        logger.info("login refused username=%s remote=%s", username[:64], request.remote)
        return _render(request, "login.html", status=401, error="用户名或密码错误 Wrong user name or password", next=target)
    assert user is not None
    ttl = services.config.server.session_ttl
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        services.tokens.issue_session(user, ttl),
        max_age=ttl,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
    logger.info("login username=%s remote=%s", username, request.remote)
    raise response


async def logout(request: web.Request) -> web.Response:
    """`POST /logout`."""
    identity = cookie_identity(request)
    if identity is not None:
        request.app[SERVICES].tokens.revoke(identity.token_id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE)
    raise response


async def index(request: web.Request) -> web.Response:
    """`GET /`: the rooms the logged-in user may enter."""
    identity = cookie_identity(request)
    if identity is None:
        raise web.HTTPSeeOther("/login")
    services = request.app[SERVICES]
    rooms = [
        {"id": r.id, "name_zh": r.name_zh, "name_en": r.name_en}
        for r in await services.store.list_rooms()
        if not identity.rooms or r.id in identity.rooms
    ]
    return _render(request, "index.html", me=_me(identity), rooms=rooms, sites=_sites(services))


async def _room_context(request: web.Request) -> dict[str, Any]:
    services = request.app[SERVICES]
    room_id = request.match_info["room"]
    try:
        identity, token = page_identity(request)
    except AuthError as exc:
        raise web.HTTPUnauthorized(text=f"{exc.code}: {exc}\n") from None
    if identity is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    try:
        identity.check_room(room_id)
    except AuthError as exc:
        raise web.HTTPForbidden(text=f"{exc.code}: {exc}\n") from None
    record = await services.store.get_room(room_id)
    if record is None:
        raise web.HTTPNotFound(text=f"unknown_room: no room {room_id!r}\n")
    room = {"id": record.id, "name_zh": record.name_zh, "name_en": record.name_en}
    me = _me(identity)
    sites = _sites(services)
    ice = browser_ice_servers(request.app, identity.identity)  # TURN with this identity's credentials
    page_data = {"room": room, "me": me, "token": token, "ice_servers": ice, "sites": sites}
    return {"room": room, "me": me, "token": token, "ice_servers": ice, "sites": sites, "page_data": page_data}


async def room_page(request: web.Request) -> web.Response:
    """`GET /rooms/{room}`: the consultation room's video wall."""
    return _render(request, "room.html", **await _room_context(request))


async def field_page(request: web.Request) -> web.Response:
    """`GET /field/{room}`: the field unit's phone page."""
    return _render(request, "field.html", **await _room_context(request))


async def wall_page(request: web.Request) -> web.Response:
    """`GET /wall/{room}`: a video wall display (observer): video and names only, full screen."""
    return _render(request, "wall.html", **await _room_context(request))


def add_routes(app: web.Application) -> None:
    """Register the page routes and the static files."""
    app[TEMPLATES] = make_templates()
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/rooms/{room}", room_page)
    app.router.add_get("/field/{room}", field_page)
    app.router.add_get("/wall/{room}", wall_page)
    app.router.add_static("/static/", WEB_DIR / "static")
