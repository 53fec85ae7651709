"""What browsers are held to, in one middleware: who may use the cookie, JSON bodies, headers, device links.

- A WebSocket upgrade or a state-changing request (POST, PUT, PATCH, DELETE) must come from this
  server's own pages or an allowed origin (server/origins.py): the Origin rule is the CSRF
  protection of every form, the login form included, and of `/ws` and `/command/ws`.
- The JSON API (`/api/`) takes `application/json` bodies only: a cross-site form or a `no-cors`
  fetch cannot send that type.
- Every response carries a Content-Security-Policy without inline script, `frame-ancestors
  'none'`, `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`.
- A device link (`/rooms/x?token=...`) opened in a browser sets the token as the session cookie and
  redirects to the same address without it: the token leaves the address bar, history and
  bookmarks, and the page joins as before.

`/whip/` and `/whep/` are left alone: they answer any origin, by Bearer token only (server/http_media.py).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from server.auth import AuthError
from server.config import ServerSettings
from server.errors import Refused, UnsupportedMediaType, http_error
from server.http_media import MEDIA_PREFIXES
from server.origins import Origin, OriginPolicy, cross_origin_reason, forwarded_client, request_origin, trusted_address
from server.relay_auth import RELAY_HEADER, RelayedFrom, RelayForged
from server.services import SERVICES
from server.store import StoreUnavailable
from server.web_auth import SESSION_COOKIE, set_session_cookie

logger = logging.getLogger(__name__)

STATE_CHANGING: Final[frozenset[str]] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_API_PREFIX: Final[str] = "/api/"
# Pages load their script and styles from /static only; media elements play MediaStreams
# (srcObject, not a URL) and blob: URLs; pictures are snapshots, photos and data: icons.
CSP_DIRECTIVES: Final[tuple[str, ...]] = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
SECURITY_HEADERS: Final[dict[str, str]] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


class CrossOrigin(Refused):
    """A WebSocket upgrade or a state-changing request from a page of another origin (403)."""


class WebSecurity:
    """The origin policy and the proxies whose forwarding headers are believed."""

    def __init__(self, settings: ServerSettings) -> None:
        self.policy = OriginPolicy(settings.allowed_origins, public_host=settings.public_host, port=settings.port)
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)

    def as_the_client_sees_it(self, request: web.Request) -> web.Request:
        """The request with the client's address, scheme and host when a trusted proxy forwarded it."""
        if not self.proxies:
            return request
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        address = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""
        if not trusted_address(address, self.proxies):
            return request
        headers = request.headers
        changes: dict[str, str] = {}
        client = forwarded_client(headers.get("X-Forwarded-For", ""), self.proxies)
        if client is not None:
            changes["remote"] = client
        proto = _last(headers.get("X-Forwarded-Proto", "")).lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        host = _last(headers.get("X-Forwarded-Host", ""))
        if host and request_origin("http", host) is not None:
            changes["host"] = host
        return request.clone(**changes) if changes else request  # type: ignore[arg-type]


WEB_SECURITY = web.AppKey("web_security", WebSecurity)


def install(app: web.Application, settings: ServerSettings) -> None:
    """Add the middleware (outermost, so every handler sees the client's own address) and the headers."""
    app[WEB_SECURITY] = WebSecurity(settings)
    app.middlewares.insert(0, web_security_middleware)
    app.on_response_prepare.append(add_security_headers)


@web.middleware
async def web_security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-origin use of the cookie and non-JSON API bodies; turn device links into cookies."""
    if RELAY_HEADER in request.headers:
        request = _as_relayed(request)
    else:
        request = request.app[WEB_SECURITY].as_the_client_sees_it(request)
    if not request.path.startswith(MEDIA_PREFIXES):
        _check_origin(request)
        _check_json(request)
    try:
        response = await handler(request)
    except StoreUnavailable as exc:  # a page or an API call while Redis is away: 503, retry in N s
        logger.info("request refused method=%s path=%s error=store_unavailable", request.method, request.path)
        raise http_error(exc) from None
    return _device_link_to_cookie(request, response)


RELAYED = web.RequestKey("relayed_from", RelayedFrom)


def relayed_from(request: web.Request) -> RelayedFrom | None:
    """The client another node relayed this request for (server/relay.py), or None for a direct one."""
    return request.get(RELAYED)


def _as_relayed(request: web.Request) -> web.Request:
    """The request as the client sent it to the relaying node, when the header's signature checks out."""
    try:
        relayed = request.app[SERVICES].nodes.verify_relay(request.headers[RELAY_HEADER])
    except RelayForged as exc:
        logger.warning("relay header refused method=%s path=%s remote=%s reason=%s", request.method, request.path, request.remote, exc)
        raise http_error(Refused("relay_forged", "the relay header is not signed by a node of this deployment")) from None
    changes: dict[str, str] = {"remote": relayed.address}
    if relayed.scheme in ("http", "https"):
        changes["scheme"] = relayed.scheme
    if request_origin("http", relayed.host) is not None:
        changes["host"] = relayed.host
    clone = request.clone(**changes)  # type: ignore[arg-type]
    clone[RELAYED] = relayed
    return clone


def _check_origin(request: web.Request) -> None:
    upgrade = request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
    if not upgrade and request.method not in STATE_CHANGING:
        return
    reason = cross_origin_reason(
        request.headers.get("Origin"),
        request.headers.get("Sec-Fetch-Site"),
        has_cookie=SESSION_COOKIE in request.cookies,
        own=request_origin(request.scheme, request.host),
        policy=request.app[WEB_SECURITY].policy,
    )
    if reason is not None:
        logger.info("cross-origin request refused method=%s path=%s remote=%s reason=%s",
                    request.method, request.path, request.remote, reason)
        raise http_error(CrossOrigin("cross_origin", reason))


def _check_json(request: web.Request) -> None:
    if request.method not in STATE_CHANGING or not request.path.startswith(JSON_API_PREFIX):
        return
    kind = request.content_type.lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise http_error(UnsupportedMediaType("unsupported_media_type", f"send application/json, not {kind[:60]!r}"))


def _device_link_to_cookie(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """A page opened by a device link: 303 to the same address without the token, which becomes the cookie."""
    token = request.query.get("token")
    if (request.method != "GET" or not token or response.status != 200 or not isinstance(response, web.Response)
            or response.content_type != "text/html" or not _is_navigation(request)):
        return response
    try:
        identity = request.app[SERVICES].tokens.verify_device_token(token)
    except AuthError:
        return response  # the page did not take it either (it would have answered 401)
    clean = request.rel_url.with_query([(k, v) for k, v in request.query.items() if k != "token"])
    redirect = web.Response(status=303, headers={"Location": str(clean), "Cache-Control": "no-store"})
    set_session_cookie(redirect, request, token, identity.expires_at - int(time.time()))
    return redirect


def _is_navigation(request: web.Request) -> bool:
    """A browser loading a page (not a script, nor a non-browser client, which may keep no cookies)."""
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest == "document"
    return "text/html" in request.headers.get("Accept", "")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The policy headers on every response (a handler may set its own first)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    peers = request.app[WEB_SECURITY].policy.peers
    response.headers.setdefault("Content-Security-Policy", content_security_policy(request.scheme, request.host, peers))


def content_security_policy(scheme: str, host: str, peers: Iterable[Origin] = ()) -> str:
    """The page policy; connect-src names this host's ws:/wss: too (older browsers' 'self' does not cover
    them), and the other live nodes' (a page whose node died reconnects through them)."""
    connect = "connect-src 'self'"
    own = request_origin(scheme, host)
    for origin in ([own] if own is not None else []) + sorted(set(peers) - {own}, key=str):
        ws = "wss" if origin.scheme == "https" else "ws"
        connect += f" {ws}://{str(origin).split('://', 1)[1]}"
    return "; ".join((*CSP_DIRECTIVES, connect))


def _last(header: str) -> str:
    """The value our proxy appended: the last of a comma-separated list (earlier ones came from the client)."""
    return header.rsplit(",", 1)[-1].strip()
