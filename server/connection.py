"""One lifecycle for every way in: a `/ws` session, a WHIP encoder, a WHEP player (later an RTSP pull).

Each is a `Connection` of one verified identity into one room. The room admits it once (membership,
lock, removal, grants), registers it under its identity in a slot, and a newer connection in the
same slot replaces the older one, which the room closes. The room ends connections for a reason
(`CloseReason`) when the identity is removed, the room ends, or a lost participant's grace period
runs out; the connection ends itself when its client goes away and tells the room whether that
was on purpose (a `leave`, a DELETE) or a loss (a dropped socket, a dead peer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Mapping
from typing import Final, Protocol

from server.auth import Identity

logger = logging.getLogger(__name__)


class ConnectionKind(str, Enum):
    """How a connection came in."""

    SESSION = "session"  # a browser page or Python client on /ws: signaling, publisher and subscriber peers
    WHIP = "whip"  # an encoder publishing over WHIP
    WHEP = "whep"  # a player receiving one participant over WHEP


# The grant each HTTP way in needs beyond the room (a session's requests check theirs one by one).
GRANT_FOR: Final[Mapping[ConnectionKind, str]] = {ConnectionKind.WHIP: "publish", ConnectionKind.WHEP: "subscribe"}


class CloseReason(str, Enum):
    """Why the server ends a connection."""

    REPLACED = "replaced"  # the same identity connected again in the same slot
    REMOVED = "removed"  # the chair removed the identity
    ROOM_ENDED = "room_ended"  # the chair ended the room
    LOST = "lost"  # the grace period of a lost participant ran out
    TARGET_GONE = "target_gone"  # a WHEP player's participant left
    SHUTDOWN = "shutdown"  # the server is stopping
    REVOKED = "revoked"  # its token was revoked (a logout, a lost device's link), on any node
    EXPIRED = "expired"  # its token expired while it was connected
    ACCESS_WITHDRAWN = "access_withdrawn"  # its user, its device's site or a grant it used left the configuration
    ROOM_MOVED = "room_moved"  # another node holds the room now: the client connects again and is relayed there


class Connection(Protocol):
    """One admitted way in of an identity into a room."""

    @property
    def id(self) -> str:
        """Unique among the server's connections."""
        ...

    @property
    def kind(self) -> ConnectionKind:
        """How it came in."""
        ...

    @property
    def slot(self) -> str:
        """Connections of one identity in the same slot replace each other ("session", "whip", "whep:<target>")."""
        ...

    @property
    def identity(self) -> Identity:
        """The verified identity behind it."""
        ...

    @property
    def remote(self) -> str:
        """The client's address, for the operator's log."""
        ...

    async def close(self, reason: CloseReason) -> None:
        """End it from the server's side (idempotent); the client is told why where it can be."""
        ...


@dataclass
class LifecycleCounters:
    """What `/metrics` counts of connections coming and going, one instance per server."""

    failures: dict[str, int] = field(default_factory=dict)  # peer connection failures by reason code
    ghosts_cleaned: int = 0  # participants ended because their grace period ran out
    ended: int = 0  # participants and players ended, for any reason
    replaced: int = 0  # connections closed because the same identity connected again
    refused: dict[str, int] = field(default_factory=dict)  # admissions refused, by error code

    def failed(self, code: str) -> None:
        """Count one peer connection failure."""
        self.failures[code] = self.failures.get(code, 0) + 1

    def refusal(self, code: str) -> None:
        """Count one refused admission."""
        self.refused[code] = self.refused.get(code, 0) + 1


class ConnectionRegistry:
    """The admitted connections of one room, by identity and slot."""

    def __init__(self) -> None:
        self._by_identity: dict[str, dict[str, Connection]] = {}

    def __len__(self) -> int:
        return sum(len(slots) for slots in self._by_identity.values())

    def put(self, connection: Connection) -> Connection | None:
        """Register `connection`; the one it replaces in its slot, if any (still to be closed)."""
        slots = self._by_identity.setdefault(connection.identity.identity, {})
        previous = slots.get(connection.slot)
        slots[connection.slot] = connection
        return previous if previous is not connection else None

    def remove(self, connection: Connection) -> bool:
        """Forget `connection` if it is still current in its slot; whether it was."""
        if not self.is_current(connection):
            return False
        slots = self._by_identity[connection.identity.identity]
        del slots[connection.slot]
        if not slots:
            del self._by_identity[connection.identity.identity]
        return True

    def is_current(self, connection: Connection) -> bool:
        """Whether `connection` is still its identity's connection in its slot."""
        return self._by_identity.get(connection.identity.identity, {}).get(connection.slot) is connection

    def of(self, identity: str) -> list[Connection]:
        """Every connection of `identity`."""
        return list(self._by_identity.get(identity, {}).values())

    def pop(self, identity: str) -> list[Connection]:
        """Forget every connection of `identity`, and return them."""
        return list(self._by_identity.pop(identity, {}).values())

    def identities(self) -> set[str]:
        """Every identity with a connection."""
        return set(self._by_identity)


def log_failure(room: str, lifecycle: LifecycleCounters, connection: Connection, peer: str, media: str | None, detail: str, code: str) -> None:
    """The one WARNING line an operator reads when a peer connection fails, and its count."""
    lifecycle.failed(code)
    logger.warning(
        "peer connection failed room=%s identity=%s connection=%s peer=%s remote=%s media=%s reason=%s",
        room, connection.identity.identity, connection.id, peer, connection.remote, media or "-", detail,
    )
