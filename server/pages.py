"""HTML pages: login, the room list, the consultation room and the field-unit page."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web

from server.access import ACCESS
from server.auth import AuthError, Identity, PasswordsBusy
from server.ice_servers import browser_ice_servers
from server.login_throttle import LoginThrottle
from server.services import SERVICES, Services
from server.site_presence import presence_api
from server.store import RevocationRecord
from server.web_auth import SESSION_COOKIE, cookie_identity, page_identity, set_session_cookie

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TEMPLATES = web.AppKey("templates", jinja2.Environment)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
MAX_NEXT = 2048
MAX_USERNAME = 64
BUSY_RETRY_AFTER = 2


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
    context.setdefault("city", {"name_zh": city.name_zh, "name_en": city.name_en, "timezone": city.timezone})
    html = request.app[TEMPLATES].get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _me(identity: Identity) -> dict[str, Any]:
    # `kind` tells a page opened by a device link (joins at once) from a person's (joins on a click).
    return {"identity": identity.identity, "name": identity.name, "site": identity.site, "grants": sorted(identity.grants),
            "kind": identity.kind}


def _sites(services: Services) -> dict[str, dict[str, str | None]]:
    return {s.id: {"name_zh": s.name_zh, "name_en": s.name_en, "kind": s.kind, "parent": s.parent} for s in services.config.sites}


def safe_next(target: str | None) -> str:
    """Where to go after login: `target` if it is a path on this server, else `/` (never another site)."""
    # Browsers drop tabs and newlines anywhere in a URL and read a backslash as a slash, so
    # "/<tab>/x" and "/<backslash>x" mean "//x", another host: only printable ASCII, no backslash.
    if not target or len(target) > MAX_NEXT or any(not "!" <= c <= "~" or c == "\\" for c in target):
        return "/"
    if not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


async def login_page(request: web.Request) -> web.Response:
    """`GET /login`."""
    return _render(request, "login.html", error=None, next=safe_next(request.query.get("next")))


async def login_submit(request: web.Request) -> web.Response:
    """`POST /login`: throttled per address and user name; check the password, set the signed session cookie."""
    services = request.app[SERVICES]
    throttle = request.app[LOGIN_THROTTLE]
    form = await request.post()
    username = str(form.get("username", "")).strip()[:MAX_USERNAME]
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    address = request.remote or "?"
    wait = throttle.retry_after(address, username)
    if wait:
        logger.info("login throttled username=%s remote=%s retry_after=%d", username, address, wait)
        return _throttled(request, wait, target, username)
    user = services.config.user(username)
    try:
        await services.passwords.check(user, password)  # argon2 on a small pool: off the loop, bounded memory
    except PasswordsBusy:
        logger.warning("login refused: password checks queue full remote=%s", address)
        return _throttled(request, BUSY_RETRY_AFTER, target, username, status=503)
    except AuthError:
        wait = throttle.failed(address, username)
        logger.info("login refused username=%s remote=%s lockout=%d", username, address, wait)
        if wait:
            return _throttled(request, wait, target, username, wrong=True)
        return _render(request, "login.html", status=401, error="用户名或密码错误 Wrong user name or password", next=target,
                       username=username)
    assert user is not None
    throttle.succeeded(address, username)
    ttl = services.config.server.session_ttl
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, request, services.tokens.issue_session(user, ttl), ttl)
    logger.info("login username=%s remote=%s", username, address)
    raise response


def _throttled(request: web.Request, wait: int, target: str, username: str, *, status: int = 429, wrong: bool = False) -> web.Response:
    """The login page saying how long to wait, with `Retry-After`."""
    response = _render(request, "login.html", status=status, error=None, retry_after=wait, wrong=wrong, busy=status == 503,
                       next=target, username=username)
    response.headers["Retry-After"] = str(wait)
    return response


async def logout(request: web.Request) -> web.Response:
    """`POST /logout`: a user's session is revoked; a device's cookie is only dropped (its link stays valid)."""
    identity = cookie_identity(request)
    if identity is not None and identity.kind == "user":
        # Kept in the store, so every node refuses the cookie, and its open sockets end now.
        record = RevocationRecord(token_id=identity.token_id, expires_at=identity.expires_at, revoked_at=time.time(),
                                  identity=identity.identity, kind="user", by=identity.identity, reason="logout")
        await request.app[ACCESS].revoke(record, best_effort=True)
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
    # the rooms that expect this user's site first: that is where its people are called to
    def expects_me(room: dict[str, str]) -> bool:
        configured = services.config.room(room["id"])
        return configured is not None and identity.site in configured.sites
    rooms.sort(key=lambda room: not expects_me(room))
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
    configured = services.config.room(room_id)
    # the sites expected in the room, for its roster (every site when the configuration names none)
    expected = list(configured.sites) if configured is not None and configured.sites else [s.id for s in services.config.sites]
    room = {"id": record.id, "name_zh": record.name_zh, "name_en": record.name_en, "sites": expected}
    me = _me(identity)
    sites = _sites(services)
    ice = browser_ice_servers(request.app, identity.identity)  # TURN with this identity's credentials
    groups = [{"id": g.id, "name_zh": g.name_zh, "name_en": g.name_en, "sites": list(g.sites)} for g in services.config.groups]
    page_data = {"room": room, "me": me, "token": token, "ice_servers": ice, "sites": sites, "groups": groups,
                 "tz": services.config.city.timezone}
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


async def favicon(request: web.Request) -> web.Response:
    """`GET /favicon.ico`: browsers ask for it by that name; the icon is the SVG under /static/."""
    raise web.HTTPMovedPermanently("/static/favicon.svg")


def add_routes(app: web.Application) -> None:
    """Register the page routes and the static files."""
    app[TEMPLATES] = make_templates()
    app[LOGIN_THROTTLE] = LoginThrottle(app[SERVICES].scheduler.clock.now)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/rooms/{room}", room_page)
    app.router.add_get("/field/{room}", field_page)
    app.router.add_get("/wall/{room}", wall_page)
    app.router.add_get("/api/presence", presence_api)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", WEB_DIR / "static")
