"""HTTP conventions of the WHIP (RFC 9725) and WHEP paths: CORS, `Link: rel="ice-server"`, `WWW-Authenticate`, PATCH.

A middleware rather than code in the handlers: it sees OPTIONS and PATCH before the router answers
405, and it decorates every response on these paths, the handlers' errors included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from server.auth import AuthError
from server.config import ServerSettings
from server.connection import GRANT_FOR, ConnectionKind
from server.ice_servers import ICE_SERVERS, IceServer, IceServers, is_turn, load_turn_secret
from server.services import SERVICES
from server.web_auth import bearer_identity

logger = logging.getLogger(__name__)

MEDIA_PREFIXES: Final[tuple[str, ...]] = ("/whip/", "/whep/")
SDP_TYPE: Final[str] = "application/sdp"
REALM: Final[str] = "command-platform"
ALLOW_HEADERS: Final[str] = "Authorization, Content-Type, If-Match"
EXPOSE_HEADERS: Final[str] = "Location, Link, ETag, Accept-Post, Accept-Patch, Allow, WWW-Authenticate, Retry-After"
# Chromium caps a preflight's cache at two hours; more would only be ignored.
PREFLIGHT_MAX_AGE: Final[str] = "7200"
PATCH_REFUSAL: Final[str] = (
    "not_implemented: this server supports neither trickle ICE nor ICE restart (PATCH); "
    "put every candidate in the offer, and after a network change POST a new offer\n"
)


def install(app: web.Application, settings: ServerSettings, env: Mapping[str, str]) -> None:
    """Hand out the configured ICE servers (TURN secret from `env`) and decorate the WHIP/WHEP paths."""
    urls = settings.ice_servers
    secret = load_turn_secret(env) if any(is_turn(url) for url in urls) else None  # checked only where used
    app[ICE_SERVERS] = IceServers(urls, turn_secret=secret, ttl=settings.turn_credential_ttl)
    app.middlewares.append(media_http_middleware)


@web.middleware
async def media_http_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for any origin on the WHIP/WHEP endpoints and sessions: they take Bearer tokens, never the cookie."""
    if not request.path.startswith(MEDIA_PREFIXES):
        return await handler(request)
    try:
        response = await _answer(request, handler)
    except web.HTTPException as exc:
        _add_cors(exc.headers)
        if exc.status == 401:
            exc.headers["WWW-Authenticate"] = _challenge(request)
        raise
    except Exception:
        # Answered here rather than by aiohttp so that a cross-origin client can read the 500.
        logger.exception("whip/whep request failed method=%s path=%s", request.method, request.path)
        error = web.HTTPInternalServerError(text="internal: internal error\n")
        _add_cors(error.headers)
        raise error from None
    _add_cors(response.headers)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    allowed = _route_methods(request)
    if request.method == "OPTIONS" and allowed:
        return _options(request, allowed)
    if request.method == "PATCH" and "DELETE" in allowed and "PATCH" not in allowed:
        # RFC 9725 section 4.3.1: a session that supports PATCH for no purpose answers 501, not 405.
        raise web.HTTPNotImplemented(text=PATCH_REFUSAL)
    response = await handler(request)
    if request.method == "POST" and response.status == 201:
        _add_links(request, response.headers)
    return response


def _route_methods(request: web.Request) -> frozenset[str]:
    """The methods the router has for this path (empty if none): it tells endpoints from sessions."""
    info = request.match_info
    refusal = info.http_exception
    if isinstance(refusal, web.HTTPMethodNotAllowed):
        return frozenset(refusal.allowed_methods)
    resource = info.route.resource
    if refusal is not None or resource is None:
        return frozenset()
    return frozenset(route.method for route in resource)


def _options(request: web.Request, allowed: frozenset[str]) -> web.Response:
    """204 with what the path accepts; a CORS preflight also gets the Access-Control grants."""
    headers: CIMultiDict[str] = CIMultiDict(Allow=", ".join(sorted(allowed | {"OPTIONS"})))
    if "POST" in allowed:
        headers["Accept-Post"] = SDP_TYPE
    if request.headers.get("Access-Control-Request-Method"):
        # PATCH is granted to scripts only so that they can read its 501 instead of a CORS failure.
        cors_methods = allowed | {"OPTIONS"} | ({"PATCH"} if "DELETE" in allowed else set())
        headers["Access-Control-Allow-Methods"] = ", ".join(sorted(cors_methods))
        headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    elif "POST" in allowed:
        # RFC 9725 section 4.6 lets an endpoint answer OPTIONS with its ICE servers, for clients that
        # cannot set them after their offer; a preflight carries no token, so only this kind does.
        _add_links(request, headers)
    return web.Response(status=204, headers=headers)


def _add_cors(headers: CIMultiDict[str]) -> None:
    # Any origin, never credentials: the cookie is not how these paths authenticate.
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS


def _add_links(request: web.Request, headers: CIMultiDict[str]) -> None:
    """One `Link: rel="ice-server"` per configured server, if the bearer may use this endpoint."""
    identity = _entitled_identity(request)
    if identity is None:
        return
    for server in request.app[ICE_SERVERS].for_identity(identity):
        headers.add("Link", link_value(server))


def _entitled_identity(request: web.Request) -> str | None:
    """The bearer's identity if it may publish (WHIP) or subscribe (WHEP) in the path's room."""
    parts = request.path.split("/")
    try:
        identity = bearer_identity(request)
        identity.check_room(parts[2])
        identity.require(GRANT_FOR[ConnectionKind(parts[1])])
    except AuthError:
        return None
    return identity.identity


def link_value(server: IceServer) -> str:
    """An RFC 8288 Link field value for one ICE server, as RFC 9725 section 4.6 spells it."""
    value = f'<{server.url}>; rel="ice-server"'
    if server.username is not None and server.credential is not None:
        value += f'; username={_quoted(server.username)}; credential={_quoted(server.credential)}; credential-type="password"'
    return value


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _challenge(request: web.Request) -> str:
    """The RFC 6750 challenge: `invalid_token` only when a Bearer token was given and refused."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return f'Bearer realm="{REALM}"'
    try:
        request.app[SERVICES].tokens.verify_device_token(token.strip())
        reason = "token refused"
    except AuthError as exc:
        reason = str(exc)
    # error_description allows printable ASCII except '"' and '\' (RFC 6750 section 3).
    description = "".join(c for c in reason if " " <= c <= "~" and c not in '"\\')
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
