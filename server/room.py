"""A consultation room's business: who is in it, how they got in, what they publish, who receives what.

Every way in (server/connection.py) goes through here: `join` for a `/ws` session, `ingest` for a
WHIP encoder, `play` for a WHEP player. Each is admitted once (`admit`: this room, the grant the way
in needs, the room's control: lock and removal) and registered under its identity; a newer
connection in the same slot replaces the older one.

Liveness: a participant whose session dropped without leaving, or one of whose peer connections is
stalled or failed, is "reconnecting": everyone is told, its tiles stay, and its publications stay
published. The same identity coming back within the grace period takes over: the new connection's
tracks continue the old publications (same ids, same subscriber transceivers), so subscribers see
the picture resume, not a participant leave and another join. When the grace period runs out it is
ended: every connection closed, publications removed, a ghost cleaned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from media.cascade import CascadeIn
from media.counters import RelayCounters
from media.liveness import Failure, LivenessSettings, PeerState, StateCallback
from media.publication import CodecInfo, Publication
from media.router import RoomRouter
from media.tasks import TaskGroup
from server.auth import Identity
from server.connection import (
    GRANT_FOR, CloseReason, Connection, ConnectionKind, ConnectionRegistry, LifecycleCounters, log_failure,
)
from server.errors import RequestError
from server.participant import Orphan, Participant, SignalingConnection, publication_info, role_for
from server.players import Players
from signaling.messages import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PublicationAdded,
    PublicationMuted,
    PublicationPaused,
    PublicationRemoved,
    ServerMessage,
    SubscribeOffer,
    Welcome,
)

if TYPE_CHECKING:
    from server.follow import LogTail
    from server.span import Span

logger = logging.getLogger(__name__)


class RoomHooks(Protocol):
    """The room's control (server/control/), created with the room: it may refuse a way in or an unmute."""

    def admit(self, identity: Identity) -> None:
        """Raise RequestError to refuse `identity` any way in (locked room, removed identity)."""

    def assign_role(self, participant: Participant) -> None:
        """Give a participant its role as it comes in (before it is welcomed)."""

    def joined(self, participant: Participant) -> None:
        """A participant is in (new, or back on a new session)."""

    def left(self, participant: Participant) -> None:
        """A participant is gone."""

    def publication_added(self, publication: Publication) -> None:
        """A new track, before anyone subscribes to it."""

    def check_self_unmute(self, participant: Participant, kind: str) -> None:
        """Raise RequestError if a server mute forbids the participant to unmute itself."""

    async def resume(self) -> None:
        """Take the state up where the store left it, before anyone comes in (the room was on
        another node, or this node restarted)."""

    def follow(self, tail: LogTail) -> None:
        """The room spans nodes: take up, live, what is done to it on the other nodes."""

    def unfollow(self, tail: LogTail) -> None:
        """Stop following."""


class OpenRoom:
    """The hooks of a room without control: everyone admitted, roles from grants."""

    def admit(self, identity: Identity) -> None:
        """Admit everyone."""

    def assign_role(self, participant: Participant) -> None:
        """Role from grants."""
        participant.role = role_for(participant.identity)

    def joined(self, participant: Participant) -> None:
        """Nobody to tell."""

    def left(self, participant: Participant) -> None:
        """Nothing to forget."""

    def publication_added(self, publication: Publication) -> None:
        """Nothing to block."""

    def check_self_unmute(self, participant: Participant, kind: str) -> None:
        """Anyone may unmute."""

    async def resume(self) -> None:
        """Nothing kept."""

    def follow(self, tail: LogTail) -> None:
        """Nothing to follow."""

    def unfollow(self, tail: LogTail) -> None:
        """Nothing followed."""


class Room:
    """One room: its participants, their connections and their media router."""

    def __init__(
        self,
        room_id: str,
        name: str,
        *,
        counters: RelayCounters,
        lifecycle: LifecycleCounters | None = None,
        ice_servers: tuple[str, ...] = (),
        max_tracks: int = 8,
        liveness: LivenessSettings = LivenessSettings(),
        grace: float = 30.0,
        control: Callable[[Room], RoomHooks] | None = None,
        alternates: Callable[[], list[str]] = list,
    ) -> None:
        self.id = room_id
        self._alternates = alternates  # the live nodes' public URLs, for the welcome
        self.name = name
        self.router = RoomRouter(room_id, counters=counters, ice_servers=ice_servers, liveness=liveness)
        self.participants: dict[str, Participant] = {}
        self.max_tracks = max_tracks
        self.grace = grace
        self.lifecycle = lifecycle or LifecycleCounters()
        self._registry = ConnectionRegistry()
        self._tasks = TaskGroup(f"room:{room_id}")
        self.players = Players(
            room_id, router=self.router, registry=self._registry, lifecycle=self.lifecycle, grace=grace, spawn=self._spawn
        )
        self._closed = False
        self.control: RoomHooks = control(self) if control is not None else OpenRoom()
        self.span: Span | None = None  # this node's part of the room, when the room spans nodes

    # --- admission and the registry of connections -----------------------------------------------

    def admit(self, identity: Identity, kind: ConnectionKind) -> None:
        """The one admission check of every way in: this room, the grant the way in needs, and the
        room's control (lock, removal). Raises AuthError or RequestError."""
        identity.check_room(self.id)
        grant = GRANT_FOR.get(kind)
        if grant is not None:
            identity.require(grant)
        if self._closed:
            raise RequestError("room_closed", "the room is closing")
        self.control.admit(identity)

    def is_current(self, connection: Connection) -> bool:
        """Whether `connection` is still its identity's connection in its slot (not replaced or ended)."""
        return self._registry.is_current(connection)

    def identities(self) -> list[str]:
        """Every identity in the room: participants and those with a connection (players)."""
        return list({*self.participants, *self._registry.identities()})

    def connections_of(self, identity: str) -> list[Connection]:
        """Every registered connection of `identity`."""
        return self._registry.of(identity)

    @property
    def connection_count(self) -> int:
        """How many connections are registered."""
        return len(self._registry)

    async def _register(self, connection: Connection) -> None:
        previous = self._registry.put(connection)
        if previous is None:
            return
        self.lifecycle.replaced += 1
        logger.info(
            "connection replaced room=%s identity=%s slot=%s old=%s new=%s remote=%s",
            self.id, connection.identity.identity, connection.slot, previous.id, connection.id, connection.remote,
        )
        participant = self.participants.get(connection.identity.identity)
        if participant is not None:
            self._orphan(participant, previous)
        await previous.close(CloseReason.REPLACED)

    def _unregister(self, connection: Connection) -> bool:
        return self._registry.remove(connection)

    # --- a /ws session ---------------------------------------------------------------------------

    async def join(self, session: SignalingConnection, request_id: str | None) -> Participant:
        """Admit a `/ws` session, welcome it, and make it a participant: a new one, or the same
        identity taking over its tiles (an older session of it is replaced and closed)."""
        identity = session.identity
        self.admit(identity, ConnectionKind.SESSION)
        await self._register(session)
        if not self.is_current(session):  # replaced again while the older one was closing
            raise RequestError("session_replaced", "this identity joined again elsewhere")
        participant = self.participants.get(identity.identity)
        returning = participant is not None
        if participant is None:
            participant = Participant(identity=identity, role=role_for(identity))
            self.participants[identity.identity] = participant
        participant.identity = identity
        participant.session = session
        participant.session_lost = False
        if participant.subscriber is not None:  # the lost session's: the client makes a new connection
            await self.router.close_subscriber(participant.id, participant.subscriber)
            participant.subscriber = None
        self.control.assign_role(participant)
        session.send(self.welcome(participant, request_id))
        self.control.joined(participant)
        if identity.can("subscribe"):
            self._subscribe_all(participant, session)
        if returning:
            self._update_state(participant)
            logger.info("rejoined room=%s identity=%s session=%s", self.id, participant.id, session.id)
        else:
            self.broadcast(ParticipantJoined(participant=participant.info()), skip=participant.id)
            logger.info("joined room=%s identity=%s session=%s remote=%s", self.id, participant.id, session.id, session.remote)
        return participant

    def _subscribe_all(self, participant: Participant, session: SignalingConnection) -> None:
        async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
            session.send(SubscribeOffer(sdp=sdp, tracks=tracks))

        def paused(publication_id: str, paused: bool) -> None:
            session.send(PublicationPaused(publication_id=publication_id, paused=paused))

        watch = self._watcher(participant, session, "subscriber")
        participant.subscriber = self.router.new_subscriber(participant.id, send_offer, on_health=watch, on_paused=paused)
        for publication in self.router.publications.values():
            if publication.owner != participant.id:
                participant.subscriber.subscribe(publication)

    async def leave(self, session: SignalingConnection, *, lost: bool) -> None:
        """A session ended: its client left (`lost` False) or its socket dropped (`lost` True).

        A lost participant keeps its tiles for the grace period; one that left is gone at once.
        A session that was replaced or whose participant was ended already leaves nothing to do.
        """
        if not self._unregister(session):
            return
        participant = self.participants.get(session.identity.identity)
        if participant is None or participant.session is not session:
            return
        participant.session = None
        if participant.subscriber is not None:
            await self.router.close_subscriber(participant.id, participant.subscriber)
            participant.subscriber = None
        if lost:
            # Its publisher connection may still be carrying media (only the socket dropped): it goes
            # on forwarding, waiting for the identity's next session to continue its tracks.
            participant.session_lost = True
            self._orphan(participant, session)
            logger.info("session lost room=%s identity=%s session=%s", self.id, participant.id, session.id)
            self._update_state(participant)
            return
        await self._drop_connection(participant, session)

    # --- publishing (a session or a WHIP encoder) -----------------------------------------------

    async def publish(self, participant: Participant, connection: Connection, sdp: str, sources: dict[str, str]) -> str:
        """Apply a publisher offer made on `connection`; returns the answer. Tracks continue the
        participant's orphaned publications of the same kind and source where there are any."""
        participant.identity.require("publish")
        if not self.is_current(connection):
            raise RequestError("session_replaced", "this connection was replaced by a newer one")
        if len(self.router.publications) >= self.max_tracks * 64:
            raise RequestError("room_full", "the room carries as many tracks as it can")
        peer = participant.publishers.get(connection.id)
        if peer is None:
            peer = self.router.new_publisher(
                participant.id,
                on_publication=self._on_publication,
                adopt=lambda kind, source, codec: self._adopt(participant, connection.kind, kind, source, codec),
                on_health=self._watcher(participant, connection, "publisher"),
            )
            participant.publishers[connection.id] = peer
        try:
            answer = await peer.answer(sdp, sources)
        except Exception:
            # A refused offer leaves nothing behind: a new connection is closed, and so is one that
            # can no longer negotiate (aiortc cannot roll an applied offer back).
            if not peer.publications or peer.pc.signalingState != "stable":
                participant.publishers.pop(connection.id, None)
                await self.router.close_publisher(participant.id, peer)
                self._update_state(participant)
            raise
        await self._settle_orphans(participant, connection.kind)
        return answer

    def _adopt(self, participant: Participant, via: ConnectionKind, kind: str, source: str, codec: CodecInfo) -> Publication | None:
        for orphan in participant.orphans:
            if orphan.kind is not via:
                continue
            for publication in list(orphan.peer.publications.values()):
                if publication.kind == kind and publication.source == source and _same_codec(publication.codec, codec):
                    orphan.peer.release(publication)
                    if publication.muted:  # the client says again whether it is muted
                        publication.muted = False
                        self.broadcast(PublicationMuted(publication_id=publication.id, muted=False))
                    logger.info("publication continued room=%s identity=%s publication=%s", self.id, participant.id, publication.id)
                    return publication
        return None

    async def _settle_orphans(self, participant: Participant, via: ConnectionKind) -> None:
        """The new connection published what it has: the rest of the old one's tracks are gone."""
        await self._close_orphans(participant, via)
        self._update_state(participant)

    async def _close_orphans(self, participant: Participant, kind: ConnectionKind | None) -> None:
        """Close the orphaned publisher connections that came in as `kind` (None: all of them)."""
        for orphan in [o for o in participant.orphans if kind is None or o.kind is kind]:
            participant.orphans.remove(orphan)
            await self.router.close_publisher(participant.id, orphan.peer)

    def _orphan(self, participant: Participant, connection: Connection) -> None:
        peer = participant.publishers.pop(connection.id, None)
        if peer is not None and not peer.closed:
            participant.orphans.append(Orphan(connection.kind, peer))

    def _on_publication(self, publication: Publication) -> None:
        self.control.publication_added(publication)  # a muted site's new track is blocked before anyone gets it
        publication.on_close(self._on_publication_closed)
        if self.span is not None:
            self.span.links.publication_added(publication)
        for other in self.participants.values():
            if other.id != publication.owner and other.subscriber is not None:
                other.subscriber.subscribe(publication)
        self.broadcast(PublicationAdded(publication=publication_info(publication)))

    def _on_publication_closed(self, publication: Publication) -> None:
        if self.span is not None:
            self.span.links.publication_closed(publication)
        for other in self.participants.values():
            if other.subscriber is not None:
                other.subscriber.unsubscribe(publication.id)
        self.broadcast(PublicationRemoved(publication_id=publication.id))
        self.players.target_gone(publication.owner)

    def set_muted(self, participant: Participant, kind: str, muted: bool) -> None:
        """The publisher turned its own camera or microphone off or on (unless the chair's mute forbids it)."""
        if not muted:
            self.control.check_self_unmute(participant, kind)
        for publication in list(self.router.publications.values()):
            if publication.owner == participant.id and publication.kind == kind and publication.muted != muted:
                publication.muted = muted
                self.broadcast(PublicationMuted(publication_id=publication.id, muted=muted))

    # --- a WHIP encoder ----------------------------------------------------------------------------

    async def ingest(self, connection: Connection, sdp: str, sources: dict[str, str]) -> str:
        """Admit a WHIP encoder and apply its offer; returns the answer. A newer WHIP connection
        of the same identity replaces the older one and continues its tracks."""
        identity = connection.identity
        self.admit(identity, ConnectionKind.WHIP)
        await self._register(connection)
        participant = self.participants.get(identity.identity)
        if participant is None:
            participant = Participant(identity=identity, role=role_for(identity))
            self.participants[identity.identity] = participant
            self.control.assign_role(participant)
            self.control.joined(participant)
            self.broadcast(ParticipantJoined(participant=participant.info()), skip=participant.id)
        try:
            answer = await self.publish(participant, connection, sdp, sources)
        except BaseException:
            await self.stop_ingest(connection)
            raise
        logger.info("whip publishing room=%s identity=%s connection=%s remote=%s", self.id, participant.id, connection.id, connection.remote)
        return answer

    async def stop_ingest(self, connection: Connection) -> None:
        """The encoder stopped on purpose (DELETE): its tracks are gone at once."""
        if not self._unregister(connection):
            return
        participant = self.participants.get(connection.identity.identity)
        if participant is not None:
            await self._drop_connection(participant, connection)

    # --- a WHEP player -----------------------------------------------------------------------------

    async def play(self, connection: Connection, target: str, sdp: str) -> str:
        """Admit a WHEP player and answer its offer with `target`'s camera video and audio."""
        self.admit(connection.identity, ConnectionKind.WHEP)
        return await self.players.start(connection, target, sdp)

    async def stop_playing(self, connection: Connection) -> None:
        """The player stopped on purpose (DELETE)."""
        await self.players.stop(connection)

    # --- liveness --------------------------------------------------------------------------------

    def _watcher(self, participant: Participant, connection: Connection, what: str) -> StateCallback:
        def changed(state: PeerState, failure: Failure | None) -> None:
            if failure is not None:
                peer = participant.subscriber if what == "subscriber" else participant.publishers.get(connection.id)
                media = peer.health.remote_address if peer is not None else None
                log_failure(self.id, self.lifecycle, connection, what, media, failure.detail, failure.code)
            if self.participants.get(participant.id) is participant:
                self._update_state(participant)

        return changed

    @staticmethod
    def is_lost(participant: Participant) -> bool:
        """Whether the participant's session or one of its media connections is gone or silent."""
        if participant.session_lost or participant.orphans:
            return True
        return any(health.state in ("stalled", "failed") for health in participant.healths())

    @staticmethod
    def _silent_for(participant: Participant) -> float:
        """How long its longest-silent stalled or failed media connection has not been heard from."""
        return max((h.quiet_for for h in participant.healths() if h.state in ("stalled", "failed")), default=0.0)

    def _update_state(self, participant: Participant) -> None:
        state = "reconnecting" if self.is_lost(participant) else "connected"
        if state == "reconnecting" and participant.grace is None:
            # The grace period counts from when the participant was last heard, not from when its
            # silence was noticed: a dead encoder's tiles go `reconnect_grace` after it died.
            delay = max(0.0, self.grace - self._silent_for(participant))
            participant.grace = asyncio.get_running_loop().call_later(
                delay, lambda: self._spawn(self._grace_expired(participant))
            )
        elif state == "connected" and participant.grace is not None:
            participant.grace.cancel()
            participant.grace = None
        if state != participant.state:
            participant.state = state  # type: ignore[assignment]
            logger.info("participant %s room=%s identity=%s", state, self.id, participant.id)
            self.broadcast(ParticipantUpdated(participant=participant.info()), skip=participant.id)

    async def _grace_expired(self, participant: Participant) -> None:
        participant.grace = None
        if self.participants.get(participant.id) is not participant:
            return
        await self._close_orphans(participant, None)  # tracks nobody continued
        if self.is_lost(participant):
            self.lifecycle.ghosts_cleaned += 1
            logger.warning("participant ended after the grace period room=%s identity=%s grace=%.0fs",
                           self.id, participant.id, self.grace)
            await self.end_identity(participant.id, CloseReason.LOST)
        else:
            self._update_state(participant)

    # --- ending ----------------------------------------------------------------------------------

    async def _drop_connection(self, participant: Participant, connection: Connection) -> None:
        """A connection of `participant` ended on purpose: its tracks go; so does the participant
        when it has no other way in left."""
        peer = participant.publishers.pop(connection.id, None)
        if peer is not None:
            await self.router.close_publisher(participant.id, peer)
        await self._close_orphans(participant, connection.kind)
        others = [c for c in self.connections_of(participant.id) if c.kind is not ConnectionKind.WHEP]
        if others or participant.session_lost:
            self._update_state(participant)
            return
        await self._end_participant(participant)

    async def end_identity(self, identity: str, reason: CloseReason) -> None:
        """Close every connection of `identity` (removed, room ended, grace over): its participant
        leaves, its players stop, each connection is told why."""
        participant = self.participants.get(identity)
        if participant is not None:
            await self._end_participant(participant)
        for connection in self._registry.of(identity):
            if connection.kind is ConnectionKind.WHEP:
                await self.players.end(connection, reason)
        for connection in self._registry.pop(identity):
            await connection.close(reason)

    async def end_all(self, reason: CloseReason) -> None:
        """Close every connection of the room."""
        for identity in self.identities():
            await self.end_identity(identity, reason)

    async def _end_participant(self, participant: Participant) -> None:
        if self.participants.get(participant.id) is not participant:
            return
        del self.participants[participant.id]
        self.lifecycle.ended += 1
        if participant.grace is not None:
            participant.grace.cancel()
            participant.grace = None
        self.broadcast(ParticipantLeft(identity=participant.id))
        self.control.left(participant)
        logger.info("left room=%s identity=%s", self.id, participant.id)
        for peer in participant.all_publishers():
            await self.router.close_publisher(participant.id, peer)
        participant.publishers.clear()
        participant.orphans.clear()
        if participant.subscriber is not None:
            await self.router.close_subscriber(participant.id, participant.subscriber)
            participant.subscriber = None
        participant.session = None

    # --- messages --------------------------------------------------------------------------------

    def welcome(self, participant: Participant, request_id: str | None) -> Welcome:
        """The room as the newcomer sees it."""
        return Welcome(
            id=request_id,
            room=self.id,
            room_name=self.name,
            you=participant.info(),
            grants=sorted(participant.identity.grants),
            participants=[p.info() for p in self.participants.values() if p is not participant] + self._remote_infos(),
            publications=[publication_info(p) for p in self.router.publications.values()],
            reconnect_grace=self.grace,
            nodes=self._alternates(),
        )

    def _remote_infos(self) -> list[ParticipantInfo]:
        if self.span is None:
            return []
        return [m.info() for i, m in self.span.members.items() if i not in self.participants]

    def broadcast(self, message: ServerMessage, *, skip: str | None = None) -> None:
        """Send `message` to every participant with a session, except `skip`."""
        for participant in list(self.participants.values()):
            if participant.id != skip:
                participant.send(message)
        if self.span is not None:  # whatever the room tells its participants, the other nodes learn
            self.span.changed()

    def publication_muted(self, publication: Publication) -> None:
        """A publication's muted flag changed (its publisher's own switch): everyone is told."""
        self.broadcast(PublicationMuted(publication_id=publication.id, muted=publication.muted))

    def add_cascaded(self, link: CascadeIn, publication: Publication) -> None:
        """A publication of another node brought in over a link: subscribed to like any other."""
        self.router.add_cascaded(link, publication)
        if publication.id in self.router.publications:
            self._on_publication(publication)

    def add_camera(self, participant: Participant, publication: Publication) -> None:
        """A camera the server pulls (server/cameras.py): in the room as a participant of its own
        (no connection, never lost by liveness), its publication subscribed to like any other."""
        self.participants[participant.id] = participant
        self.broadcast(ParticipantJoined(participant=participant.info()), skip=participant.id)
        self.router.publications[publication.id] = publication

        def forget(closed: Publication) -> None:
            if self.router.publications.get(closed.id) is closed:
                del self.router.publications[closed.id]

        publication.on_close(forget)
        self._on_publication(publication)

    def camera_changed(self, participant: Participant) -> None:
        """A camera's state changed: everyone is told."""
        if self.participants.get(participant.id) is participant:
            self.broadcast(ParticipantUpdated(participant=participant.info()), skip=participant.id)

    async def remove_camera(self, participant: Participant) -> None:
        """The camera is no longer pulled into this room (its publication is closed by its owner)."""
        await self._end_participant(participant)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(coro, name="lifecycle")

    async def close(self) -> None:
        """End every connection and close the room's media (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.span is not None:
            await self.span.close()
        await self.end_all(CloseReason.SHUTDOWN)
        await self._tasks.close()
        await self.router.close()


def _same_codec(a: CodecInfo, b: CodecInfo) -> bool:
    """Whether subscribers negotiated for `a` can take `b` as it is (same payload type mapping)."""
    if a.mime_type.lower() != b.mime_type.lower() or a.clock_rate != b.clock_rate:
        return False
    if a.name.upper() == "H264":
        return a.parameters.get("packetization-mode") == b.parameters.get("packetization-mode")
    return True
