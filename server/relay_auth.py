"""Who a relayed request came from: the header one node adds when it relays a client's signaling to
the node that hosts the room, signed with the server secret (pure, no I/O).

The owner believes the client's address, scheme and host from this header only when its HMAC
checks out, so rate limits, logs and the login throttle see the real client, and a client that
sends the header itself is refused. A relayed request is never relayed again (the loop guard).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import Final

import msgspec

RELAY_HEADER: Final[str] = "X-CP-Relayed"
# A header older (or newer, clocks differ) than this is refused: it cannot be replayed for long.
MAX_AGE: Final[float] = 60.0
_CONTEXT: Final[bytes] = b"cp-node-relay-v1\x00"


class RelayForged(Exception):
    """A relay header whose signature, form or age does not check out."""


class RelayedFrom(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The client as the relaying node saw it, and that node."""

    node: str
    address: str
    scheme: str
    host: str
    at: float


def relay_key(secret: bytes) -> bytes:
    """The key relay headers are signed with, derived from the server secret (never the secret itself)."""
    return hmac.new(secret, _CONTEXT, hashlib.sha256).digest()


def sign(key: bytes, relayed: RelayedFrom) -> str:
    """The header value: the payload in base64url, a dot, its HMAC-SHA256 in hex."""
    payload = base64.urlsafe_b64encode(msgspec.json.encode(relayed)).decode("ascii")
    return f"{payload}.{_mac(key, payload)}"


def verify(keys: Iterable[bytes], value: str, *, now: float) -> RelayedFrom:
    """The relayed client if `value` was signed with one of `keys` within MAX_AGE; RelayForged otherwise."""
    payload, _, mac = value.strip().partition(".")
    if not payload or not mac or not any(hmac.compare_digest(_mac(key, payload), mac) for key in keys):
        raise RelayForged("relay header signature does not match")
    try:
        relayed = msgspec.json.decode(base64.urlsafe_b64decode(payload.encode("ascii")), type=RelayedFrom)
    except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
        raise RelayForged(f"relay header unreadable: {exc}") from None
    if abs(now - relayed.at) > MAX_AGE:
        raise RelayForged("relay header expired")
    return relayed


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii", "replace"), hashlib.sha256).hexdigest()
