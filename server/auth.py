"""Who is calling: signed device tokens and session cookies (PyJWT, HS256), password checks (argon2)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Final, Literal

import argon2
import jwt

from server.config import GRANTS, UserConfig
from server.directory import Directory
from server.revocations import RevocationList

logger = logging.getLogger(__name__)

ALGORITHM: Final[str] = "HS256"
ISSUER: Final[str] = "command-platform"
DEVICE_AUDIENCE: Final[str] = "device"
SESSION_AUDIENCE: Final[str] = "session"
MIN_SECRET_BYTES: Final[int] = 32
# Nodes' clocks drift a little; a token issued "slightly in the future" by a peer node is still fine,
# and so is one whose `nbf` is a few seconds ahead of this node's clock.
IAT_SKEW_SECONDS: Final[int] = 60
# A lost phone's link must die on its own even if nobody revokes it.
DEFAULT_MAX_DEVICE_TTL: Final[int] = 30 * 86400
# A device named like a configured user is this user's namesake, never the user: its identity
# string takes this prefix, which no user name can have (names match config.ID_PATTERN).
DEVICE_PREFIX: Final[str] = "device:"

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


class TokenNotYetValid(AuthError):
    """The token's `nbf` (not before) lies in the future."""

    code = "token_not_yet_valid"


class TokenTooLong(TokenInvalid):
    """The device token lives longer (exp - iat) than the server's cap allows."""

    code = "token_lifetime_too_long"


class AccessWithdrawn(AuthError):
    """The configuration no longer has the user, the device's site, or the grants a live session holds."""

    code = "access_withdrawn"


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
    subject: str = ""  # the token's `sub` as signed (a device's identity may carry DEVICE_PREFIX)
    issued_at: int = 0

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


@dataclass(frozen=True)
class TokenFacts:
    """What a signed token says about itself, read without judging its times (to revoke it)."""

    token_id: str
    kind: IdentityKind
    subject: str
    expires_at: int


class TokenService:
    """Issues and verifies device tokens and session cookies, against the configuration and the revocations."""

    # With a `directory` (the loaded configuration's users and sites) a session's grants and rooms
    # are the configuration's, not the cookie's, and a device named like a user gets DEVICE_PREFIX.
    # Revocations are asked of `revocations` (kept in the store by the server; this process only
    # by default). Device tokens may live at most `max_device_ttl` seconds (exp - iat).

    def __init__(
        self,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
        directory: Directory | None = None,
        revocations: RevocationList | None = None,
        max_device_ttl: int = DEFAULT_MAX_DEVICE_TTL,
        previous_secrets: Sequence[bytes] = (),
    ) -> None:
        for key in (secret, *previous_secrets):
            if len(key) < MIN_SECRET_BYTES:
                raise WeakSecret(f"signing secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        # Secret rotation: what the previous secrets signed is still accepted (until it expires);
        # everything new is signed with `secret`.
        self._verifying = (secret, *previous_secrets)
        self._clock = clock
        self.directory = directory
        self.revocations = revocations if revocations is not None else RevocationList(clock=clock)
        self.max_device_ttl = max_device_ttl

    def derived_keys(self, purpose: str) -> list[bytes]:
        """32-byte keys for `purpose` (sealing a camera's password) derived from the signing secret,
        then from the previous secrets (what was sealed before a rotation still opens)."""
        return [hashlib.sha256(purpose.encode() + b"\0" + key).digest() for key in self._verifying]

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
        if identity.startswith(DEVICE_PREFIX):
            raise TokenRequestError(f"device identity {identity!r} may not start with {DEVICE_PREFIX!r}")
        if ttl > self.max_device_ttl:
            raise TokenRequestError(f"ttl {ttl} s exceeds the device token cap of {self.max_device_ttl} s")
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

    def is_revoked(self, token_id: str) -> bool:
        """Whether the token id has been revoked (as far as this node has heard)."""
        return self.revocations.contains(token_id)

    def facts(self, token: str) -> TokenFacts:
        """The id, kind, subject and expiry of a token this server signed, whatever its times; raises TokenInvalid."""
        payload = self._decode(
            token, [DEVICE_AUDIENCE, SESSION_AUDIENCE],
            {"require": ["exp", "sub", "jti", "aud"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        exp, sub, jti = payload["exp"], payload["sub"], payload["jti"]
        if not (isinstance(exp, int) and isinstance(sub, str) and isinstance(jti, str)):
            raise TokenInvalid("token claims malformed")
        return TokenFacts(jti, "device" if payload["aud"] == DEVICE_AUDIENCE else "user", sub, exp)

    def recheck(self, identity: Identity) -> Identity:
        """A live identity checked again: AuthError once it must end (expired, revoked, removed, a grant or room lost)."""
        if identity.expires_at <= self._clock():
            raise TokenExpired("token expired")
        if self.revocations.contains(identity.token_id):
            raise TokenRevoked("token revoked")
        current = self._as_configured(identity)
        lost_rooms = bool(current.rooms) and (not identity.rooms or not identity.rooms <= current.rooms)
        if current.identity != identity.identity or current.site != identity.site or not identity.grants <= current.grants or lost_rooms:
            raise AccessWithdrawn(f"the configuration changed what {identity.identity!r} may do")
        return current

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

    def _decode(self, token: str, audience: str | list[str], options: dict[str, Any]) -> dict[str, Any]:
        """The claims of a token signed with the current secret or a previous one; raises TokenInvalid."""
        error: jwt.PyJWTError | None = None
        for key in self._verifying:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=[ALGORITHM], audience=audience, issuer=ISSUER, options=options,  # type: ignore[arg-type]
                )
                return claims
            except jwt.InvalidSignatureError as exc:
                error = exc  # perhaps signed with another of the secrets
            except jwt.PyJWTError as exc:
                raise TokenInvalid(f"token rejected: {type(exc).__name__}") from None
        raise TokenInvalid(f"token rejected: {type(error).__name__}")

    def _verify(self, token: str, audience: str, kind: IdentityKind) -> Identity:
        """Check signature, audience, issuer, times, revocation and claim types."""
        if not token:
            raise TokenMissing("no token presented")
        # Times are checked below against the injectable clock, not PyJWT's wall clock.
        payload = self._decode(token, audience, {
            "require": ["exp", "iat", "sub", "jti", "iss", "aud"],
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
            "strict_aud": True,
        })
        identity = _identity_from(payload, kind)
        now = self._clock()
        if identity.issued_at > now + IAT_SKEW_SECONDS:
            raise TokenInvalid("token issued in the future")
        nbf = payload.get("nbf")
        if nbf is not None and (isinstance(nbf, bool) or not isinstance(nbf, (int, float))):
            raise TokenInvalid("token nbf malformed")
        if nbf is not None and nbf > now + IAT_SKEW_SECONDS:
            raise TokenNotYetValid("token not valid yet (nbf)")
        if identity.expires_at <= now:
            raise TokenExpired("token expired")
        if kind == "device" and identity.expires_at - identity.issued_at > self.max_device_ttl:
            raise TokenTooLong(f"device token lives longer than the cap of {self.max_device_ttl} s")
        if self.revocations.contains(identity.token_id):
            raise TokenRevoked("token revoked")
        return self._as_configured(identity)

    def _as_configured(self, identity: Identity) -> Identity:
        """The identity as the configuration has it now (a user's entry; a device's site, and a user's name not its own)."""
        directory = self.directory
        if directory is None:
            return identity
        subject = identity.subject or identity.identity
        if identity.kind == "user":
            user = directory.user(subject)
            if user is None:
                raise AccessWithdrawn(f"user {subject!r} is no longer configured")
            return replace(identity, site=user.site, name=user.display_name, grants=frozenset(user.grants), rooms=frozenset(user.rooms))
        if not directory.has_site(identity.site):
            raise AccessWithdrawn(f"site {identity.site!r} is no longer configured")
        return replace(identity, identity=DEVICE_PREFIX + subject if directory.is_user(subject) else subject)


class PasswordsBusy(AuthError):
    """More logins wait for a password check than the queue holds; try again in a moment."""

    code = "busy"


class PasswordVerifier:
    """Checks passwords against argon2 hashes without revealing whether the user exists.

    `check()` runs at most `workers` verifications at once, on threads of its own: each argon2
    verification takes 64 MiB, so parallel logins queue (up to `max_queued`) instead of each
    allocating it; beyond that they are refused at once.
    """

    def __init__(self, hasher: argon2.PasswordHasher | None = None, *, workers: int = 2, max_queued: int = 32) -> None:
        self._hasher = hasher or argon2.PasswordHasher()
        # Unknown users cost one verification too, so response time does not tell who exists.
        self._dummy_hash = self._hasher.hash(uuid.uuid4().hex)
        self._max_pending = workers + max_queued
        self._pending = 0
        # Threads start on first use and end with the verifier (the pool's workers hold it weakly).
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    @property
    def pending(self) -> int:
        """Verifications asked for and not finished (running or queued)."""
        return self._pending

    async def check(self, user: UserConfig | None, password: str) -> None:
        """`verify()` on the bounded pool; raises BadCredentials, or PasswordsBusy when the queue is full."""
        if self._pending >= self._max_pending:
            raise PasswordsBusy("too many sign-ins at once")
        self._pending += 1
        try:
            # A cancelled caller's queued verification is dropped; a running one ends on its own
            # thread, and the pool's size still bounds how many run.
            await asyncio.get_running_loop().run_in_executor(self._pool, self.verify, user, password)
        finally:
            self._pending -= 1

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
    subject = payload["sub"]
    if not isinstance(subject, str) or not subject or (kind == "device" and subject.startswith(DEVICE_PREFIX)):
        raise TokenInvalid("token subject malformed")
    exp, iat = payload["exp"], payload["iat"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (exp, iat)):
        raise TokenInvalid("token times malformed")
    return Identity(
        identity=subject,
        site=site,
        name=name,
        grants=frozenset(grants),
        rooms=frozenset(rooms),
        kind=kind,
        expires_at=exp,
        token_id=payload["jti"],
        subject=subject,
        issued_at=iat,
    )
