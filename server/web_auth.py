"""Who is asking: the session cookie (a logged-in user or a device), or a device token in the URL or header."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from server.auth import AuthError, Identity, TokenExpired, TokenMissing, TokenRevoked
from server.errors import http_error
from server.services import SERVICES

SESSION_COOKIE = "cp_session"


def cookie_auth(request: web.Request) -> Identity | AuthError | None:
    """What the request's session cookie proves: a logged-in user, or a device whose link was opened
    here; a revoked or expired device link's refusal (so its page can say so); otherwise None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    tokens = request.app[SERVICES].tokens
    # A device link's token becomes the cookie as it is (server/web_security.py): its expiry,
    # grants and revocation stay the token's own.
    # A user's ended session (logged out, expired) is no session: the client is sent to log in.
    try:
        return tokens.verify_session(cookie)
    except AuthError:
        try:
            return tokens.verify_device_token(cookie)
        except (TokenRevoked, TokenExpired) as as_device:
            return as_device
        except AuthError:
            return None


def cookie_identity(request: web.Request) -> Identity | None:
    """Who the request's session cookie proves, or None."""
    found = cookie_auth(request)
    return found if isinstance(found, Identity) else None


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str, max_age: int) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax, Secure over TLS or when configured (a TLS proxy in front)."""
    secure = request.secure or request.app[SERVICES].config.server.secure_cookies
    response.set_cookie(SESSION_COOKIE, value, max_age=max(1, max_age), path="/", httponly=True, samesite="Lax", secure=secure)


def bearer_identity(request: web.Request) -> Identity:
    """The device behind an `Authorization: Bearer` header (WHIP/WHEP); raises AuthError."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenMissing("an Authorization: Bearer token is required")
    return request.app[SERVICES].tokens.verify_device_token(token.strip())


def page_identity(request: web.Request) -> tuple[Identity | None, str | None]:
    """For pages: the device token in `?token=` (verified) or the cookie user; (None, None) if neither."""
    token = request.query.get("token")
    if token:
        return request.app[SERVICES].tokens.verify_device_token(token), token
    return cookie_identity(request), None


def signed_in(request: web.Request) -> Identity:
    """For pages: who asks (as `page_identity`); a refusal as its HTTP error, nobody sent to log in and come back."""
    try:
        identity, _ = page_identity(request)
    except AuthError as exc:
        raise http_error(exc) from None
    if identity is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    return identity
