"""The ICE servers clients are told about: STUN as configured, TURN with time-limited coturn credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from server.keys import MIN_SECRET_CHARS, SecretError

TURN_SCHEMES: Final[tuple[str, ...]] = ("turn:", "turns:")
ICE_SCHEMES: Final[tuple[str, ...]] = ("stun:", "stuns:", *TURN_SCHEMES)


class TurnSecretMissing(SecretError):
    """TURN URLs are configured but neither TURN_SECRET nor TURN_SECRET_FILE is set."""


class TurnSecretUnusable(SecretError):
    """The TURN secret is too short or its file cannot be read."""


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN URL, with the credentials a TURN URL needs."""

    url: str
    username: str | None = None
    credential: str | None = None

    def as_rtc(self) -> dict[str, str]:
        """The browser's RTCIceServer dictionary for this server."""
        if self.username is None or self.credential is None:
            return {"urls": self.url}
        return {"urls": self.url, "username": self.username, "credential": self.credential}


def is_turn(url: str) -> bool:
    """Whether the URL names a TURN server (RFC 7065), which needs credentials."""
    return url.lower().startswith(TURN_SCHEMES)


def peer_ice_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """The URLs the server's own aiortc peers may use: not TURN, which they would try without credentials."""
    return tuple(url for url in urls if not is_turn(url))


def turn_username(expiry: int, identity: str) -> str:
    """The coturn REST API user name: `<unix expiry>:<identity>`."""
    return f"{expiry}:{identity}"


def turn_credential(secret: bytes, username: str) -> str:
    """The coturn REST API password: base64(HMAC-SHA1(static-auth-secret, username))."""
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def load_turn_secret(env: Mapping[str, str]) -> bytes | None:
    """The coturn static-auth-secret from TURN_SECRET, else the file TURN_SECRET_FILE names; None if neither is set."""
    if env.get("TURN_SECRET"):
        return _checked(env["TURN_SECRET"], "environment TURN_SECRET")
    if env.get("TURN_SECRET_FILE"):
        path = Path(env["TURN_SECRET_FILE"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TurnSecretUnusable(f"TURN_SECRET_FILE {path}: cannot read: {exc}") from None
        return _checked(text, f"TURN_SECRET_FILE {path}")
    return None


def _checked(secret: str, source: str) -> bytes:
    # A guessable secret lets anyone mint relay credentials: the same floor as the signing secret.
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise TurnSecretUnusable(f"{source}: secret must be at least {MIN_SECRET_CHARS} characters, got {len(secret)}")
    return secret.encode()


class IceServers:
    """The configured ICE servers, handed out per identity with fresh TURN credentials."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        turn_secret: bytes | None,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if turn_secret is None and any(is_turn(url) for url in urls):
            raise TurnSecretMissing("ice_servers lists TURN URLs but neither TURN_SECRET nor TURN_SECRET_FILE is set")
        self.urls = tuple(urls)
        self.ttl = ttl
        self._secret = turn_secret
        self._clock = clock

    def for_identity(self, identity: str) -> tuple[IceServer, ...]:
        """Every configured server; TURN ones with credentials for this identity, valid for `ttl` seconds."""
        username = turn_username(int(self._clock()) + self.ttl, identity)
        return tuple(self._server(url, username) for url in self.urls)

    def _server(self, url: str, username: str) -> IceServer:
        if not is_turn(url) or self._secret is None:
            return IceServer(url)
        return IceServer(url, username, turn_credential(self._secret, username))


ICE_SERVERS: Final = web.AppKey("ice_servers", IceServers)


def browser_ice_servers(app: web.Application, identity: str) -> list[dict[str, str]]:
    """The RTCIceServer list a page embeds for this identity."""
    return [server.as_rtc() for server in app[ICE_SERVERS].for_identity(identity)]
