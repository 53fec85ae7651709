"""Someone in a room, as the room's business sees it: identity, role, state and media connections."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from media.liveness import PeerHealth
from media.peers import PublisherPeer, SubscriberPeer
from media.publication import Publication
from server.auth import Identity
from server.connection import Connection, ConnectionKind
from signaling.messages import ParticipantInfo, PublicationInfo, ServerMessage

ParticipantState = Literal["connected", "reconnecting"]


class SignalingConnection(Connection, Protocol):
    """A connection that carries the participant's signaling (a `/ws` session)."""

    def send(self, message: ServerMessage) -> None:
        """Queue a message for the client."""
        ...


@dataclass(frozen=True)
class Orphan:
    """A publisher connection whose connection was replaced or lost: its publications wait for the
    same identity's next connection of the same kind to continue them, until the grace period ends."""

    kind: ConnectionKind
    peer: PublisherPeer


@dataclass(eq=False)
class Participant:
    """Someone in a room: a browser or Python client on `/ws`, or a WHIP encoder (or both)."""

    identity: Identity
    role: str
    joined_at: float = field(default_factory=time.time)
    state: ParticipantState = "connected"
    session: SignalingConnection | None = None  # the /ws session that carries its signaling, if any
    session_lost: bool = False  # its session went away without leaving: waiting for it to come back
    publishers: dict[str, PublisherPeer] = field(default_factory=dict)  # by the id of the connection that made it
    orphans: list[Orphan] = field(default_factory=list)
    subscriber: SubscriberPeer | None = None
    grace: asyncio.TimerHandle | None = None  # ends the participant if it is still lost when it fires
    status: str = ""  # a camera's state and reason (server/cameras.py)

    @property
    def id(self) -> str:
        """The participant's identity string (user name or device identity)."""
        return self.identity.identity

    @property
    def session_id(self) -> str:
        """The current session's id ("" for an encoder without one)."""
        return self.session.id if self.session is not None else ""

    def info(self) -> ParticipantInfo:
        """How other participants see this one."""
        return ParticipantInfo(
            identity=self.id, site=self.identity.site, name=self.identity.name, role=self.role, state=self.state,
            status=self.status,
        )

    def send(self, message: ServerMessage) -> None:
        """Queue a message on the current session (dropped when there is none: an encoder, or lost)."""
        if self.session is not None:
            self.session.send(message)

    def healths(self) -> list[PeerHealth]:
        """The liveness of its current media connections (orphans are lost by definition)."""
        healths = [peer.health for peer in self.publishers.values()]
        if self.subscriber is not None:
            healths.append(self.subscriber.health)
        return healths

    def all_publishers(self) -> list[PublisherPeer]:
        """Every publisher connection, orphaned ones included."""
        return [*self.publishers.values(), *(orphan.peer for orphan in self.orphans)]


def publication_info(publication: Publication) -> PublicationInfo:
    """The wire view of a publication."""
    return PublicationInfo(
        publication_id=publication.id,
        identity=publication.owner,
        kind=publication.kind,  # type: ignore[arg-type]
        source=publication.source,  # type: ignore[arg-type]
        codec=publication.codec.name,
        muted=publication.muted,
    )


def role_for(identity: Identity) -> str:
    """A participant's base role in the room, from its grants."""
    if identity.can("moderate"):
        return "moderator"
    if not identity.can("publish"):
        return "observer"
    return "participant"
