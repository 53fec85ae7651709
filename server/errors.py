"""Errors of the server's own making, each with its wire code and HTTP status, mapped in one place."""

from __future__ import annotations

from aiohttp import web

from media.peers import NegotiationError
from server.auth import AuthError, BadCredentials, Forbidden, TokenMissing, WrongRoom
from server.store import StoreUnavailable
from signaling.codec import ProtocolError


class RequestError(Exception):
    """A request that cannot be carried out; `code` is the wire error code."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(RequestError):
    """The named room, participant or resource does not exist."""

    status = 404


class Refused(RequestError):
    """The room refuses this identity: locked, removed from it, or someone else's resource."""

    status = 403


class UnsupportedMediaType(RequestError):
    """A body of a type the endpoint does not take (the JSON API takes JSON only)."""

    status = 415


class RateLimited(RequestError):
    """Too many requests of one kind from an identity or an address; `retry_after` says how long to wait."""

    status = 429

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__("rate_limited", f"too many {what} requests: try again in {retry_after} s")
        self.retry_after = retry_after


class RoomMoved(RequestError):
    """The room is hosted by another node than the one a relayed request reached, or its node went
    away: the client connects again (at once) and is sent where the room is now (503, Retry-After 1)."""

    status = 503
    retry_after = 1

    def __init__(self, message: str) -> None:
        super().__init__("room_moved", message)


def wire_error(exc: Exception) -> tuple[str, str]:
    """The (code, message) pair an exception becomes on the wire."""
    if isinstance(exc, (RequestError, ProtocolError)):
        return exc.code, exc.message
    if isinstance(exc, AuthError):
        return exc.code, str(exc)
    if isinstance(exc, NegotiationError):
        return exc.code, str(exc)
    if isinstance(exc, StoreUnavailable):
        return "store_unavailable", STORE_UNAVAILABLE_MESSAGE
    return "internal", "internal error"


def http_status(exc: Exception) -> int:
    """The HTTP status an exception becomes."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, (TokenMissing, BadCredentials)):
        return 401
    if isinstance(exc, (Forbidden, WrongRoom)):
        return 403
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, (ProtocolError, NegotiationError)):
        return 400
    if isinstance(exc, StoreUnavailable):
        return 503
    return 500


# How long a client is asked to wait before it retries what the store could not take.
STORE_RETRY_AFTER = 2
STORE_UNAVAILABLE_MESSAGE = f"记录存储暂不可用，请 {STORE_RETRY_AFTER} 秒后重试 The record store is unavailable: retry in {STORE_RETRY_AFTER} s"


def http_error(exc: Exception) -> web.HTTPException:
    """An aiohttp HTTP exception with a plain-text body naming the error."""
    code, message = wire_error(exc)
    status = http_status(exc)
    error = _STATUS[status](text=f"{code}: {message}\n")
    if isinstance(exc, (RateLimited, RoomMoved)):
        error.headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, StoreUnavailable):
        error.headers["Retry-After"] = str(STORE_RETRY_AFTER)
    return error


class _TooLarge(web.HTTPRequestEntityTooLarge):
    """413 with our text (aiohttp's own wants the size for a text of its making)."""

    def __init__(self, *, text: str) -> None:
        super().__init__(max_size=0, text=text)


_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: _TooLarge,
    415: web.HTTPUnsupportedMediaType,
    429: web.HTTPTooManyRequests,
    500: web.HTTPInternalServerError,
    503: web.HTTPServiceUnavailable,
    507: web.HTTPInsufficientStorage,
}
