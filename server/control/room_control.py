"""A room's control state and the chair's actions on it, enforced by the server and logged in the store.

Every action is checked against the actor's role (server/control/permissions.py), applied to the
media at once (a mute blocks the publication at the router, whatever the client sends), appended
to the room's control log `room:{id}:control` (who, what, whom, when), and the new state is sent
to everyone in the room. A room that comes up on a node (placed there after its node failed, or
the node restarted) takes its state up from that log: since the room last ended, the lock and who
may come back through it, removals, server mutes, the spotlight, the layout and a handed-over chair.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from media.publication import Publication
from server.auth import Identity
from server.connection import CloseReason
from server.control.permissions import check_target, require
from server.control.roles import Role, base_role, can_hold_chair, claims_chair
from server.control.speaker import DominantSpeaker, SpeakerSettings
from server.errors import Refused, RequestError
from server.participant import Participant
from server.room import Room
from server.store import Store, StoredEvent
from signaling.control import (
    ActiveSpeaker,
    ControlNotice,
    ControlState,
    HandInfo,
    MuteInfo,
    RoomEnded,
    YouWereRemoved,
)

if TYPE_CHECKING:
    from server.follow import LogTail

logger = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any]], object]

# The notices a node shows its participants for an action taken on another node, by event kind.
_NOTICES = {"mute": "muted", "unmute": "unmuted", "mute_all": "muted_all", "remove": "removed",
            "grant_floor": "floor_granted", "hand_over": "chair_handed_over"}


def control_stream(room_id: str) -> str:
    """The store stream holding a room's control log."""
    return f"room:{room_id}:control"


@dataclass(frozen=True)
class MuteRecord:
    """A server mute on one identity's microphone or camera."""

    by: str
    by_name: str
    at: float
    self_unmute: bool


MAX_CELLS = 16          # the largest fixed layout, 4x4
MAX_CELL_ID = 64
MAX_ROTATE_EVERY = 3600

class RoomControl:
    """Roles, spotlight, mutes, hands, lock, layout and active speaker of one room."""

    def __init__(
        self,
        room: Room,
        *,
        store: Store,
        spawn: Spawn,
        host_site: str | None = None,
        locked: bool = False,
        clock: Callable[[], float] = time.time,
        speaker_settings: SpeakerSettings | None = None,
    ) -> None:
        self.room = room
        self.store = store
        self.host_site = host_site
        self.configured_lock = locked
        self.locked = locked
        self.chair: str | None = None
        self.spotlight: str | None = None
        self.layout = "grid"
        self.follow_speaker = False
        self.cells: list[str] = []       # site ids placed in a fixed layout's cells by the chair
        self.rotate_every = 0            # seconds between turns of the free cells (0: none)
        self.rotate_group = ""           # the saved group the free cells turn through ("" for all)
        self.hands: dict[str, HandInfo] = {}
        self.mutes: dict[tuple[str, str], MuteRecord] = {}
        self.members: set[str] = set()
        self.removed: set[str] = set()
        self.speaker = DominantSpeaker(speaker_settings)
        self._spawn = spawn
        self._clock = clock
        self._folded: str | None = None  # the last control event folded (resume, then the live tail)

    # --- hooks the room calls ----------------------------------------------------------------------

    @property
    def chair_present(self) -> bool:
        """Whether the chair is in the room now."""
        return self.chair is not None and self._role_of(self.chair) is not None

    def admit(self, identity: Identity) -> None:
        """Refuse any way in (a session, an encoder, a player) to a locked room or to one removed from it."""
        moderator = identity.can("moderate")
        if identity.identity in self.removed and not moderator:
            self._log_refused_join(identity, "removed")
            raise Refused("removed_from_room", "您已被移出会商室 You were removed from this room")
        if self.locked and identity.identity not in self.members and not moderator:
            self._log_refused_join(identity, "locked")
            raise Refused("room_locked", "会商室已锁定 The room is locked: ask the chair to let you in")

    def joined(self, participant: Participant) -> None:
        """A participant is in (or back on a new session): everyone is told the roles."""
        self.members.add(participant.id)
        self.broadcast_state()

    def assign_role(self, participant: Participant) -> None:
        """The role of a newcomer (or of one back on a new session): the chair's, or its grants'."""
        identity = participant.identity
        if self.chair == participant.id:
            participant.role = "chair"
            return
        participant.role = base_role(identity.grants)
        chair = self.chair if self.chair is not None and self._role_of(self.chair) is not None else None
        chair_is_host = chair is not None and self._site_of(chair) == self.host_site
        if claims_chair(identity.grants, identity.site, host_site=self.host_site,
                        chair_present=chair is not None, chair_is_host=chair_is_host):
            self._seat_chair(participant.id)
            if self.room.span is not None:  # the other nodes of the room learn who holds the chair, in log order
                self._spawn(self._record(participant.id, "chair_taken", {"target": participant.id, "previous": chair}))

    def _seat_chair(self, identity: str) -> None:
        """Make `identity` the chair; whoever held it here takes the role its grants give."""
        for participant in self.room.participants.values():
            if participant.id == identity:
                participant.role = "chair"
            elif participant.id == self.chair:
                participant.role = base_role(participant.identity.grants)
        self.chair = identity

    def _site_of(self, identity: str) -> str | None:
        present = self.room.participants.get(identity)
        if present is not None:
            return present.identity.site
        remote = self.room.span.members.get(identity) if self.room.span is not None else None
        return remote.record.site if remote is not None else None

    def left(self, participant: Participant) -> None:
        """A participant is gone."""
        self.speaker.remove(participant.id)
        self.hands.pop(participant.id, None)
        self.broadcast_state()

    def publication_added(self, publication: Publication) -> None:
        """A new track: block it at once if its owner is muted; listen to its audio levels."""
        if (publication.owner, publication.kind) in self.mutes:
            publication.block(True)
        if publication.kind == "audio":
            publication.on_audio_level = self._on_audio_level

    def check_self_unmute(self, participant: Participant, kind: str) -> None:
        """A participant unmutes itself: allowed only if no server mute forbids it."""
        record = self.mutes.get((participant.id, kind))
        if record is None:
            return
        if not record.self_unmute:
            logger.info("self-unmute refused room=%s identity=%s kind=%s by=%s", self.room.id, participant.id, kind, record.by)
            raise RequestError(
                "unmute_refused",
                f"{record.by_name} 已将您静音，请举手申请发言 You were muted by {record.by_name}: raise your hand to speak",
            )
        self._set_mute(participant.id, kind, None)
        self._spawn(self._record(participant.id, "self_unmuted", {"target": participant.id, "kind": kind}))
        self.broadcast_state()

    # --- the state on the wire ---------------------------------------------------------------------

    def state(self) -> ControlState:
        """The whole control state as clients see it."""
        return ControlState(
            chair=self.chair,
            spotlight=self.spotlight,
            layout=self.layout,  # type: ignore[arg-type]
            follow_speaker=self.follow_speaker,
            cells=list(self.cells),
            rotate_every=self.rotate_every,
            rotate_group=self.rotate_group,
            locked=self.locked,
            active_speaker=self.speaker.current,
            roles={**self._remote_roles(), **{p.id: p.role for p in self.room.participants.values()}},
            hands=list(self.hands.values()),
            mutes=[
                MuteInfo(identity=identity, kind=kind, by=r.by, by_name=r.by_name, at=r.at, self_unmute=r.self_unmute)  # type: ignore[arg-type]
                for (identity, kind), r in self.mutes.items()
            ],
        )

    def broadcast_state(self) -> None:
        """Send the control state to everyone in the room."""
        self.room.broadcast(self.state())

    def send_state(self, participant: Participant) -> None:
        """Send the control state to one participant."""
        participant.send(self.state())

    # --- actions -----------------------------------------------------------------------------------

    async def authorize(self, actor: Participant, action: str, target: str | None = None) -> None:
        """Raise (and log the refusal) unless `actor` may do `action` to `target`."""
        try:
            require(actor.role, action, who=actor.id, chair_present=self.chair_present)  # type: ignore[arg-type]
            if target is not None:
                target_role: Role | None = self._role_of(target)  # type: ignore[assignment]
                if target_role is None and any(i == target for i, _ in self.mutes):
                    target_role = "participant"  # a muted site that dropped out can still be unmuted
                check_target(actor.role, action, actor=actor.id, target=target, target_role=target_role)  # type: ignore[arg-type]
        except RequestError as exc:
            logger.warning(
                "control refused room=%s actor=%s role=%s action=%s target=%s code=%s",
                self.room.id, actor.id, actor.role, action, target, exc.code,
            )
            await self._record(actor.id, "refused", {"action": action, "target": target, "code": exc.code})
            raise

    async def set_spotlight(self, actor: Participant, identity: str | None) -> str:
        """Put `identity` on every main screen (None: back to the grid)."""
        await self.authorize(actor, "spotlight")
        if identity is not None and self._role_of(identity) is None:
            raise RequestError("unknown_participant", f"{identity!r} is not in this room")
        self.spotlight = identity
        return await self._done(actor, "spotlight", identity)

    async def mute(self, actor: Participant, identity: str, kind: str, muted: bool, allow_self_unmute: bool) -> str:
        """Mute or unmute a participant's microphone or camera at the server."""
        await self.authorize(actor, "mute" if muted else "unmute", identity)
        record = MuteRecord(actor.id, actor.identity.name, self._clock(), allow_self_unmute) if muted else None
        self._set_mute(identity, kind, record)
        self._notify(actor, "muted" if muted else "unmuted", identity, kind)
        return await self._done(actor, "mute" if muted else "unmute", identity, kind=kind, allow_self_unmute=allow_self_unmute,
                                by_name=actor.identity.name)

    async def allow_self_unmute(self, actor: Participant, identity: str, kind: str, allowed: bool) -> str:
        """Allow or refuse a muted participant to unmute itself."""
        await self.authorize(actor, "allow_self_unmute", identity)
        record = self.mutes.get((identity, kind))
        if record is None:
            raise RequestError("not_muted", f"{identity!r} is not muted")
        self.mutes[(identity, kind)] = MuteRecord(record.by, record.by_name, record.at, allowed)
        return await self._done(actor, "allow_self_unmute", identity, kind=kind, allowed=allowed)

    async def mute_all(self, actor: Participant, allow_self_unmute: bool) -> str:
        """Mute every microphone but the chair's (and the actor's own)."""
        await self.authorize(actor, "mute_all")
        record = MuteRecord(actor.id, actor.identity.name, self._clock(), allow_self_unmute)
        muted = []
        for identity in self._everyone():
            if identity in (self.chair, actor.id) or self._role_of(identity) == "observer":
                continue
            self._set_mute(identity, "audio", record)
            muted.append(identity)
        self._notify(actor, "muted_all", None, "audio")
        return await self._done(actor, "mute_all", None, muted=muted, allow_self_unmute=allow_self_unmute,
                                by_name=actor.identity.name)

    async def remove(self, actor: Participant, identity: str, reason: str) -> str:
        """Send a participant out; it cannot come back (without "moderate") until the room ends."""
        await self.authorize(actor, "remove", identity)
        target = self.room.participants.get(identity)
        self.removed.add(identity)
        self.members.discard(identity)
        self.hands.pop(identity, None)
        if self.spotlight == identity:
            self.spotlight = None
        event_id = await self._record(actor.id, "remove", {"target": identity, "reason": reason})
        if target is not None:
            target.send(YouWereRemoved(by=actor.id, by_name=actor.identity.name, reason=reason))
        await self.room.end_identity(identity, CloseReason.REMOVED)  # every way in: session, encoder, players
        self._notify(actor, "removed", identity, None)
        self.broadcast_state()
        return event_id

    async def lock(self, actor: Participant, locked: bool) -> str:
        """Lock or unlock the room; who is in stays in and may come back after a network drop."""
        await self.authorize(actor, "lock")
        self.locked = locked
        self.members.update(self._everyone())
        record = await self.store.get_room(self.room.id)
        if record is not None and record.locked != locked:
            await self.store.put_room(msgspec.structs.replace(record, locked=locked))
        return await self._done(actor, "lock" if locked else "unlock", None, members=sorted(self.members))

    async def end(self, actor: Participant) -> str:
        """End the consultation for everyone: all sessions close, the control state starts afresh."""
        await self.authorize(actor, "end")
        event_id = await self._record(actor.id, "end", {"participants": sorted(self.room.participants)})
        self.room.broadcast(RoomEnded(by=actor.id, by_name=actor.identity.name))
        for identity in self.room.identities():
            if identity != actor.id:
                await self.room.end_identity(identity, CloseReason.ROOM_ENDED)
        self._reset()
        record = await self.store.get_room(self.room.id)
        if record is not None and record.locked != self.locked:
            await self.store.put_room(msgspec.structs.replace(record, locked=self.locked))
        # The actor's own connections after this request's acknowledgement, which its session
        # queues when we return: nothing awaited after this (a store's await let it run first).
        self._spawn(self.room.end_identity(actor.id, CloseReason.ROOM_ENDED))
        return event_id

    def _reset(self) -> None:
        for key in list(self.mutes):
            self._set_mute(key[0], key[1], None)
        self.spotlight, self.chair, self.layout, self.follow_speaker = None, None, "grid", False
        self.cells, self.rotate_every, self.rotate_group = [], 0, ""
        self.hands.clear()
        self.members.clear()
        self.removed.clear()
        self.locked = self.configured_lock

    # --- the log read back ---------------------------------------------------------------------------

    async def resume(self) -> None:
        """Fold the room's control log (a page at a time) into the state, before anyone is admitted."""
        after: str | None = None
        while True:
            page = await self.store.read_events(control_stream(self.room.id), after=after, limit=1000)
            for event in page:
                self._replay_logged(event)
            if page:
                self._folded = page[-1].id
            if len(page) < 1000:
                break
            after = page[-1].id
        if self.locked or self.removed or self.mutes:
            logger.info("control resumed room=%s locked=%s removed=%d mutes=%d", self.room.id, self.locked,
                        len(self.removed), len(self.mutes))

    def _remote_roles(self) -> dict[str, str]:
        # The chair as this node folded it (the other node's part may not say so yet), else their own.
        members = self.room.span.members if self.room.span is not None else {}
        return {identity: "chair" if identity == self.chair else (m.record.base_role or m.record.role)
                for identity, m in members.items()}

    def _everyone(self) -> list[str]:
        """Everyone in the room: here and (a room across nodes) on the other nodes."""
        remote = list(self.room.span.members) if self.room.span is not None else []
        return [*self.room.participants, *(i for i in remote if i not in self.room.participants)]

    def _role_of(self, identity: str) -> str | None:
        """The role of someone in the room, here or (a room across nodes) on another node."""
        present = self.room.participants.get(identity)
        if present is not None:
            return present.role
        remote = self.room.span.members.get(identity) if self.room.span is not None else None
        return remote.record.role if remote is not None else None

    def _replay_logged(self, event: StoredEvent) -> None:
        try:
            self._replay(event)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("control event not replayed room=%s id=%s error=%r", self.room.id, event.id, exc)

    # --- a room across nodes: the other nodes' actions, from the log -----------------------------

    def follow(self, tail: LogTail) -> None:
        """The room spans nodes: take up, live, what the chair does on the other nodes."""
        tail.follow(control_stream(self.room.id), self._folded, self._followed)

    def unfollow(self, tail: LogTail) -> None:
        """Stop following the control log."""
        tail.unfollow(control_stream(self.room.id))

    def _followed(self, events: list[StoredEvent]) -> None:
        changed = False
        for event in events:
            if event.data.get("node") != self.store.node_id:  # ours are applied already ...
                self._apply_elsewhere(event)
                changed = True
            elif event.kind in ("chair_taken", "hand_over") and isinstance(event.data.get("target"), str):
                # ... but the chair goes to whoever took it last in the log, on every node alike
                # (two nodes seating two moderators at once end up agreeing)
                changed |= self.chair != event.data["target"]
                self._seat_chair(str(event.data["target"]))
        if changed:
            self.broadcast_state()

    def _apply_elsewhere(self, event: StoredEvent) -> None:
        """Fold another node's action and apply it to this node's participants and publications."""
        before = dict(self.mutes)
        chair = self.chair
        self._replay_logged(event)
        for identity, kind in set(before) | set(self.mutes):
            if before.get((identity, kind)) != self.mutes.get((identity, kind)):
                self._block(identity, kind, (identity, kind) in self.mutes)
        target, by_name = event.data.get("target"), str(event.data.get("by_name") or event.actor)
        if event.kind == "raise_hand":
            self.hands[event.actor] = HandInfo(identity=event.actor, name=str(event.data.get("name") or event.actor),
                                               site=str(event.data.get("site") or ""), raised_at=event.at)
        elif event.kind == "lower_hand" or (event.kind in ("grant_floor", "remove") and isinstance(target, str)):
            self.hands.pop(event.actor if event.kind == "lower_hand" else str(target), None)
        if event.kind == "remove" and isinstance(target, str) and target in self.room.participants:
            self.room.participants[target].send(YouWereRemoved(by=event.actor, by_name=by_name, reason=str(event.data.get("reason") or "")))
            self._spawn(self.room.end_identity(target, CloseReason.REMOVED))
        elif event.kind == "end":
            self.room.broadcast(RoomEnded(by=event.actor, by_name=by_name))
            for identity in self.room.identities():
                self._spawn(self.room.end_identity(identity, CloseReason.ROOM_ENDED))
        elif event.kind in ("hand_over", "chair_taken") and self.chair is not None:
            seated, self.chair = self.chair, chair
            self._seat_chair(seated)
        if event.kind in _NOTICES:
            notice_kind = event.data.get("kind") or ("audio" if event.kind in ("mute_all", "grant_floor") else None)
            self.room.broadcast(ControlNotice(action=_NOTICES[event.kind], actor=event.actor, actor_name=by_name,
                                              target=target if isinstance(target, str) else None,
                                              kind=notice_kind if isinstance(notice_kind, str) else None))

    def _replay(self, event: StoredEvent) -> None:
        data, kind, target = event.data, event.kind, event.data.get("target")
        by_name = str(data.get("by_name") or event.actor)
        if kind in ("lock", "unlock"):
            self.locked = kind == "lock"
            self.members.update(str(m) for m in data.get("members") or [])  # type: ignore[attr-defined]
        elif kind == "remove" and isinstance(target, str):
            self.removed.add(target)
            self.members.discard(target)
            self.spotlight = None if self.spotlight == target else self.spotlight
        elif kind == "mute" and isinstance(target, str):
            self.mutes[(target, str(data["kind"]))] = MuteRecord(event.actor, by_name, event.at, bool(data.get("allow_self_unmute")))
        elif kind in ("unmute", "self_unmuted") and isinstance(target, str):
            self.mutes.pop((target, str(data["kind"])), None)
        elif kind == "grant_floor" and isinstance(target, str):
            self.mutes.pop((target, "audio"), None)
        elif kind == "allow_self_unmute" and isinstance(target, str):
            record = self.mutes.get((target, str(data["kind"])))
            if record is not None:
                self.mutes[(target, str(data["kind"]))] = MuteRecord(record.by, record.by_name, record.at, bool(data.get("allowed")))
        elif kind == "mute_all":
            for identity in data.get("muted") or []:  # type: ignore[attr-defined]
                self.mutes[(str(identity), "audio")] = MuteRecord(event.actor, by_name, event.at, bool(data.get("allow_self_unmute")))
        elif kind == "spotlight":
            self.spotlight = target if isinstance(target, str) else None
        elif kind == "layout":
            self.layout, self.follow_speaker = str(data["layout"]), bool(data.get("follow_speaker"))
            cells, rotate = data.get("cells"), data.get("rotate_every")
            self.cells = [str(c) for c in cells] if isinstance(cells, list) else self.cells
            self.rotate_every = int(rotate) if isinstance(rotate, (int, float)) else self.rotate_every
            group = data.get("rotate_group")
            self.rotate_group = group if isinstance(group, str) else self.rotate_group
        elif kind in ("hand_over", "chair_taken") and isinstance(target, str):
            self.chair = target
        elif kind == "end":
            self._reset()

    async def raise_hand(self, actor: Participant, raised: bool) -> str:
        """Ask for the floor, or withdraw the request."""
        await self.authorize(actor, "raise_hand")
        if raised and actor.id not in self.hands:
            self.hands[actor.id] = HandInfo(identity=actor.id, name=actor.identity.name, site=actor.identity.site, raised_at=self._clock())
        elif not raised:
            self.hands.pop(actor.id, None)
        return await self._done(actor, "raise_hand" if raised else "lower_hand", None, name=actor.identity.name,
                                site=actor.identity.site)

    async def grant_floor(self, actor: Participant, identity: str) -> str:
        """Give the floor: the hand goes down and the microphone opens."""
        await self.authorize(actor, "grant_floor", identity)
        self.hands.pop(identity, None)
        self._set_mute(identity, "audio", None)
        self._notify(actor, "floor_granted", identity, "audio")
        return await self._done(actor, "grant_floor", identity)

    async def hand_over(self, actor: Participant, identity: str) -> str:
        """Make `identity` the chair; the old chair keeps the role its grants give."""
        await self.authorize(actor, "hand_over")
        role = self._role_of(identity)  # here, or on another node of the room
        if role is None:
            raise RequestError("unknown_participant", f"{identity!r} is not in this room")
        if not can_hold_chair(role):  # type: ignore[arg-type]
            raise RequestError("invalid_target", f"{identity!r} only watches and cannot take the chair")
        previous = self.chair
        self._seat_chair(identity)
        self._notify(actor, "chair_handed_over", identity, None)
        return await self._done(actor, "hand_over", identity, previous=previous)

    async def set_layout(self, actor: Participant, layout: str, follow_speaker: bool | None,
                         cells: list[str] | None = None, rotate_every: int | None = None,
                         rotate_group: str | None = None) -> str:
        """Set the walls' layout, whether they follow the active speaker, the sites placed in its
        cells and how often the free cells turn."""
        await self.authorize(actor, "layout")
        if cells is not None:
            if len(cells) > MAX_CELLS or any(len(c) > MAX_CELL_ID for c in cells):
                raise RequestError("invalid_cells", f"at most {MAX_CELLS} cells of site ids")
            self.cells = list(cells)
        if rotate_every is not None:
            if not 0 <= rotate_every <= MAX_ROTATE_EVERY:
                raise RequestError("invalid_rotation", f"rotate_every must be 0 to {MAX_ROTATE_EVERY} seconds")
            self.rotate_every = rotate_every
        if rotate_group is not None:
            if len(rotate_group) > MAX_CELL_ID:
                raise RequestError("invalid_rotation", f"rotate_group must be a group id of at most {MAX_CELL_ID} characters")
            self.rotate_group = rotate_group
        self.layout = layout
        if follow_speaker is not None:
            self.follow_speaker = follow_speaker
        return await self._done(actor, "layout", None, layout=layout, follow_speaker=self.follow_speaker,
                                cells=list(self.cells), rotate_every=self.rotate_every, rotate_group=self.rotate_group)

    # --- inside ----------------------------------------------------------------------------------

    def _set_mute(self, identity: str, kind: str, record: MuteRecord | None) -> None:
        if record is None:
            self.mutes.pop((identity, kind), None)
        else:
            self.mutes[(identity, kind)] = record
            if kind == "audio":
                self.speaker.remove(identity)
        self._block(identity, kind, record is not None)

    def _block(self, identity: str, kind: str, blocked: bool) -> None:
        for publication in list(self.room.router.publications.values()):
            if publication.owner == identity and publication.kind == kind:
                publication.block(blocked)
        logger.info("server mute room=%s identity=%s kind=%s muted=%s", self.room.id, identity, kind, blocked)

    def _on_audio_level(self, publication: Publication, level: int, arrival_ms: int) -> None:
        # Runs for every audio packet inside aiortc's receive loop: cheap, and it must never raise.
        try:
            if publication.blocked or publication.muted:
                return
            changed = self.speaker.add(publication.owner, level, time.monotonic() * 1000)
            if changed is not None:
                self.room.broadcast(ActiveSpeaker(identity=changed))
        except Exception:  # noqa: BLE001
            logger.exception("audio level handling failed room=%s", self.room.id)

    def _notify(self, actor: Participant, action: str, target: str | None, kind: str | None) -> None:
        self.room.broadcast(ControlNotice(action=action, actor=actor.id, actor_name=actor.identity.name, target=target, kind=kind))

    async def _done(self, actor: Participant, action: str, target: str | None, **data: object) -> str:
        event_id = await self._record(actor.id, action, {"target": target, **data})
        self.broadcast_state()
        return event_id

    async def _record(self, actor: str, action: str, data: dict[str, object]) -> str:
        # The node that acted: the others (a room across nodes) apply what they read of it, it does not.
        event = await self.store.append_event(control_stream(self.room.id), actor=actor, kind=action,
                                              data={**data, "node": self.store.node_id})
        logger.info("control room=%s actor=%s action=%s target=%s event=%s", self.room.id, actor, action, data.get("target"), event.id)
        return event.id

    def _log_refused_join(self, identity: Identity, why: str) -> None:
        logger.warning("join refused room=%s identity=%s why=%s", self.room.id, identity.identity, why)
        self._spawn(self._record(identity.identity, "join_refused", {"target": identity.identity, "why": why}))
