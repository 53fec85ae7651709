"""A consultation room's business: who is in it, what they publish, who receives what."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from media.peers import PublisherPeer, SubscriberPeer
from media.room import RoomRouter
from media.router import Publication, RelayCounters
from signaling.messages import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    PublicationAdded,
    PublicationInfo,
    PublicationMuted,
    PublicationRemoved,
    ServerMessage,
    SubscribeOffer,
    Welcome,
)
from server.auth import Identity
from server.errors import RequestError

logger = logging.getLogger(__name__)

Send = Callable[[ServerMessage], None]  # enqueues; the session's writer task delivers in order


@dataclass
class Participant:
    """Someone in a room: a browser session, a WHIP encoder or a Python client."""

    identity: Identity
    send: Send | None
    role: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    joined_at: float = field(default_factory=time.time)
    publishers: list[PublisherPeer] = field(default_factory=list)
    subscriber: SubscriberPeer | None = None
    disconnect: Callable[[], None] | None = None  # ends the session (a removed participant, an ended room)

    @property
    def id(self) -> str:
        """The participant's identity string (user name or device identity)."""
        return self.identity.identity

    def info(self) -> ParticipantInfo:
        """How other participants see this one."""
        return ParticipantInfo(identity=self.id, site=self.identity.site, name=self.identity.name, role=self.role)


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
    """A participant's role in the room, from its grants."""
    if identity.can("moderate"):
        return "moderator"
    if not identity.can("publish"):
        return "observer"
    return "participant"


class RoomHooks(Protocol):
    """What the room's control (server/control/room_control.py) is told; it may refuse a join or an unmute."""

    def admit(self, participant: Participant) -> None:
        """Raise RequestError to refuse a newcomer; set its role."""

    def joined(self, participant: Participant) -> None:
        """A participant is in."""

    def left(self, participant: Participant, *, replaced: bool) -> None:
        """A participant left (or its new session replaced it)."""

    def publication_added(self, publication: Publication) -> None:
        """A new track, before anyone subscribes to it."""

    def check_self_unmute(self, participant: Participant, kind: str) -> None:
        """Raise RequestError if a server mute forbids the participant to unmute itself."""


class Room:
    """One room: its participants and their media router; every participant sees every track."""

    def __init__(
        self,
        room_id: str,
        name: str,
        *,
        counters: RelayCounters,
        ice_servers: tuple[str, ...] = (),
        max_tracks: int = 8,
    ) -> None:
        self.id = room_id
        self.name = name
        self.router = RoomRouter(room_id, counters=counters, ice_servers=ice_servers)
        self.participants: dict[str, Participant] = {}
        self.max_tracks = max_tracks
        self.control: RoomHooks | None = None

    def welcome(self, participant: Participant, request_id: str | None) -> Welcome:
        """The room as the newcomer sees it."""
        return Welcome(
            id=request_id,
            room=self.id,
            room_name=self.name,
            you=participant.info(),
            grants=sorted(participant.identity.grants),
            participants=[p.info() for p in self.participants.values() if p is not participant],
            publications=[publication_info(p) for p in self.router.publications.values()],
        )

    async def join(self, participant: Participant) -> Participant | None:
        """Add a participant; an earlier session of the same identity is replaced and returned."""
        if self.control is not None:
            self.control.admit(participant)
        previous = self.participants.get(participant.id)
        if previous is not None:
            await self.leave(previous, announce=False)
        self.participants[participant.id] = participant
        if participant.identity.can("subscribe") and participant.send is not None:
            participant.subscriber = self._new_subscriber(participant)
            for publication in self.router.publications.values():
                if publication.owner != participant.id:
                    participant.subscriber.subscribe(publication)
        if previous is None:
            self.broadcast(ParticipantJoined(participant=participant.info()), skip=participant.id)
        if self.control is not None:
            self.control.joined(participant)
        logger.info("joined room=%s identity=%s session=%s", self.id, participant.id, participant.session_id)
        return previous

    def _new_subscriber(self, participant: Participant) -> SubscriberPeer:
        send = participant.send
        assert send is not None

        async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
            send(SubscribeOffer(sdp=sdp, tracks=tracks))

        return self.router.new_subscriber(participant.id, send_offer)

    async def leave(self, participant: Participant, *, announce: bool = True) -> None:
        """Remove a participant and close its connections (only if it is still the current session)."""
        current = self.participants.get(participant.id) is participant
        if current:
            del self.participants[participant.id]
            if announce:
                self.broadcast(ParticipantLeft(identity=participant.id))
                logger.info("left room=%s identity=%s", self.id, participant.id)
            if self.control is not None:
                self.control.left(participant, replaced=not announce)
        for peer in participant.publishers:
            await self.router.close_publisher(participant.id, peer)
        participant.publishers.clear()
        if participant.subscriber is not None:
            await self.router.close_subscriber(participant.id, participant.subscriber)
            participant.subscriber = None

    async def publish(self, participant: Participant, sdp: str, sources: dict[str, str]) -> str:
        """Apply a publisher offer from `participant`; returns the answer."""
        participant.identity.require("publish")
        if len(self.router.publications) >= self.max_tracks * 64:
            raise RequestError("room_full", "the room carries as many tracks as it can")
        if participant.publishers:
            peer = participant.publishers[0]
        else:
            peer = self.router.new_publisher(
                participant.id, on_publication=self._on_publication, on_failed=lambda: None
            )
            participant.publishers.append(peer)
        return await peer.answer(sdp, sources)

    def _on_publication(self, publication: Publication) -> None:
        if self.control is not None:
            self.control.publication_added(publication)  # a muted site's new track is blocked before anyone gets it
        publication.on_close(self._on_publication_closed)
        for other in self.participants.values():
            if other.id != publication.owner and other.subscriber is not None:
                other.subscriber.subscribe(publication)
        self.broadcast(PublicationAdded(publication=publication_info(publication)))

    def _on_publication_closed(self, publication: Publication) -> None:
        for other in self.participants.values():
            if other.subscriber is not None:
                other.subscriber.unsubscribe(publication.id)
        self.broadcast(PublicationRemoved(publication_id=publication.id))

    def set_muted(self, participant: Participant, kind: str, muted: bool) -> None:
        """The publisher turned its own camera or microphone off or on (unless the chair's mute forbids it)."""
        if not muted and self.control is not None:
            self.control.check_self_unmute(participant, kind)
        for publication in list(self.router.publications.values()):
            if publication.owner == participant.id and publication.kind == kind and publication.muted != muted:
                publication.muted = muted
                self.broadcast(PublicationMuted(publication_id=publication.id, muted=muted))

    def broadcast(self, message: ServerMessage, *, skip: str | None = None) -> None:
        """Send `message` to every connected participant except `skip`."""
        for participant in list(self.participants.values()):
            if participant.id != skip and participant.send is not None:
                participant.send(message)

    async def close(self) -> None:
        """Close the room's media (idempotent)."""
        self.participants.clear()
        await self.router.close()
