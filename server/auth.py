"""Who is calling: signed device tokens and session cookies (PyJWT, HS256), password checks (argon2)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import argon2
import jwt

from server.config import GRANTS, UserConfig

logger = logging.getLogger(__name__)

ALGORITHM: Final[str] = "HS256"
ISSUER: Final[str] = "command-platform"
DEVICE_AUDIENCE: Final[str] = "device"
SESSION_AUDIENCE: Final[str] = "session"
MIN_SECRET_BYTES: Final[int] = 32
# Nodes' clocks drift a little; a token issued "slightly in the future" by a peer node is still fine.
IAT_SKEW_SECONDS: Final[int] = 60

IdentityKind = Literal["user", "device"]


class AuthError(Exception):
    """A request that is not authenticated or not allowed; `code` is the wire error code."""

    code: ClassVar[str] = "unauthenticated"


class TokenMissing(AuthError):
    """No token or cookie was presented."""

    code = "unauthenticated"


class TokenInvalid(AuthError):
    """The token is malformed, badly signed, for another audience, or carries unknown claims."""

    code = "invalid_token"


class TokenExpired(AuthError):
    """The token's expiry has passed."""

    code = "token_expired"


class TokenRevoked(AuthError):
    """The token was revoked on this server."""

    code = "token_revoked"


class WrongRoom(AuthError):
    """The identity is not allowed into this room."""

    code = "wrong_room"


class BadCredentials(AuthError):
    """Unknown user or wrong password (deliberately not told apart)."""

    code = "bad_credentials"


class Forbidden(AuthError):
    """The identity lacks the grant for this action."""

    code = "forbidden"


class WeakSecret(ValueError):
    """The signing secret is too short for HS256."""


class TokenRequestError(ValueError):
    """A token was asked for with bad arguments (unknown grant, empty identity, non-positive ttl)."""


@dataclass(frozen=True)
class Identity:
    """A verified caller: a logged-in user or a device; `rooms` empty means every room."""

    identity: str
    site: str
    name: str
    grants: frozenset[str]
    rooms: frozenset[str]
    kind: IdentityKind
    expires_at: int
    token_id: str

    @property
    def room(self) -> str | None:
        """The one room a device token is bound to; None for users."""
        if self.kind == "device" and len(self.rooms) == 1:
            return next(iter(self.rooms))
        return None

    def can(self, grant: str) -> bool:
        """Whether this identity holds the grant."""
        return grant in self.grants

    def require(self, grant: str) -> None:
        """Raise Forbidden unless this identity holds the grant."""
        if grant not in self.grants:
            raise Forbidden(f"{self.identity!r} lacks grant {grant!r}")

    def check_room(self, room_id: str) -> None:
        """Raise WrongRoom unless this identity may enter the room."""
        if self.rooms and room_id not in self.rooms:
            raise WrongRoom(f"{self.identity!r} is not allowed in room {room_id!r}")


class TokenService:
    """Issues and verifies device tokens and session cookies; remembers revocations in this process only."""

    def __init__(self, secret: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise WeakSecret(f"signing secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._clock = clock
        self._revoked: set[str] = set()

    def issue_device_token(
        self,
        *,
        identity: str,
        site: str,
        room: str,
        grants: Iterable[str],
        ttl: int,
        name: str | None = None,
    ) -> str:
        """Sign a token that lets a device (encoder, camera, field unit) into one room with the given grants."""
        if not identity or not site or not room:
            raise TokenRequestError("identity, site and room must be non-empty")
        claims = {"site": site, "name": name or identity, "grants": _checked_grants(grants), "rooms": [room]}
        return self._issue(identity, DEVICE_AUDIENCE, ttl, claims)

    def verify_device_token(self, token: str) -> Identity:
        """Return the identity a device token proves, or raise an AuthError."""
        return self._verify(token, DEVICE_AUDIENCE, "device")

    def issue_session(self, user: UserConfig, ttl: int) -> str:
        """Sign a session cookie value for a user who has just logged in."""
        claims = {
            "site": user.site,
            "name": user.display_name,
            "grants": _checked_grants(user.grants),
            "rooms": list(user.rooms),
        }
        return self._issue(user.username, SESSION_AUDIENCE, ttl, claims)

    def verify_session(self, cookie: str) -> Identity:
        """Return the identity a session cookie proves, or raise an AuthError."""
        return self._verify(cookie, SESSION_AUDIENCE, "user")

    def revoke(self, token_id: str) -> None:
        """Refuse the token with this id from now on (in this process)."""
        self._revoked.add(token_id)
        logger.info("token revoked token_id=%s", token_id)

    def is_revoked(self, token_id: str) -> bool:
        """Whether the token id has been revoked here."""
        return token_id in self._revoked

    def _issue(self, subject: str, audience: str, ttl: int, claims: dict[str, Any]) -> str:
        """Sign the common claims plus the given ones."""
        if ttl <= 0:
            raise TokenRequestError(f"ttl must be positive, got {ttl}")
        now = int(self._clock())
        payload = {
            **claims,
            "iss": ISSUER,
            "aud": audience,
            "sub": subject,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def _verify(self, token: str, audience: str, kind: IdentityKind) -> Identity:
        """Check signature, audience, issuer, times, revocation and claim types."""
        if not token:
            raise TokenMissing("no token presented")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                # Times are checked below against the injectable clock, not PyJWT's wall clock.
                options={
                    "require": ["exp", "iat", "sub", "jti", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "strict_aud": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"token rejected: {type(exc).__name__}") from None
        identity = _identity_from(payload, kind)
        now = self._clock()
        if payload["iat"] > now + IAT_SKEW_SECONDS:
            raise TokenInvalid("token issued in the future")
        if identity.expires_at <= now:
            raise TokenExpired("token expired")
        if identity.token_id in self._revoked:
            raise TokenRevoked("token revoked")
        return identity


class PasswordVerifier:
    """Checks passwords against argon2 hashes without revealing whether the user exists."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        # Unknown users cost one verification too, so response time does not tell who exists.
        self._dummy_hash = self._hasher.hash(uuid.uuid4().hex)

    def verify(self, user: UserConfig | None, password: str) -> None:
        """Return if the password matches the user's hash, else raise BadCredentials (CPU-bound: ~50 ms)."""
        encoded = self._dummy_hash if user is None else user.password_hash
        try:
            self._hasher.verify(encoded, password)
        except argon2.exceptions.VerificationError:
            raise BadCredentials("bad username or password") from None
        except argon2.exceptions.InvalidHashError:
            logger.warning("unusable password hash user=%s", user.username if user else "-")
            raise BadCredentials("bad username or password") from None
        if user is None:
            raise BadCredentials("bad username or password")

    def hash(self, password: str) -> str:
        """Return an argon2id hash of the password, for configuration files."""
        return self._hasher.hash(password)


def _checked_grants(grants: Iterable[str]) -> list[str]:
    """Refuse unknown grants when issuing; keep a stable order."""
    wanted = set(grants)
    unknown = wanted - GRANTS
    if unknown:
        raise TokenRequestError(f"unknown grants: {', '.join(sorted(unknown))}")
    return sorted(wanted)


def _identity_from(payload: dict[str, Any], kind: IdentityKind) -> Identity:
    """Build an Identity from decoded claims, refusing wrong types and unknown grants."""
    site, name, grants, rooms = (payload.get(k) for k in ("site", "name", "grants", "rooms"))
    if not (isinstance(site, str) and site and isinstance(name, str)):
        raise TokenInvalid("token lacks site or name")
    if not (isinstance(grants, list) and all(isinstance(g, str) for g in grants)):
        raise TokenInvalid("token grants malformed")
    if not set(grants) <= GRANTS:
        raise TokenInvalid("token carries unknown grants")
    if not (isinstance(rooms, list) and all(isinstance(r, str) and r for r in rooms)):
        raise TokenInvalid("token rooms malformed")
    if kind == "device" and len(rooms) != 1:
        raise TokenInvalid("device token must name exactly one room")
    exp, iat = payload["exp"], payload["iat"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
        raise TokenInvalid("token times malformed")
    return Identity(
        identity=payload["sub"],
        site=site,
        name=name,
        grants=frozenset(grants),
        rooms=frozenset(rooms),
        kind=kind,
        expires_at=exp,
        token_id=payload["jti"],
    )
