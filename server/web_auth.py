"""Who is asking: the session cookie of a logged-in user, or a device token in the URL or header."""

from __future__ import annotations

from aiohttp import web

from server.auth import AuthError, Identity, TokenMissing
from server.services import SERVICES

SESSION_COOKIE = "cp_session"


def cookie_identity(request: web.Request) -> Identity | None:
    """The logged-in user behind the request's session cookie, or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return request.app[SERVICES].tokens.verify_session(cookie)
    except AuthError:
        return None


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
