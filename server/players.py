"""A room's WHEP players: each plays one participant's camera and microphone until it stops,
its peer fails or stays silent past the grace period, its participant leaves, or the room ends it.

A player has no tile to keep, so a failed one goes at once; a newer player of the same identity
for the same participant replaces the older one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from media.egress import EgressPeer
from media.liveness import Failure, PeerState
from media.router import RoomRouter
from server.connection import CloseReason, Connection, ConnectionRegistry, LifecycleCounters, log_failure
from server.errors import NotFound

logger = logging.getLogger(__name__)

_PLAYED_FIRST = ("camera", "microphone", "whip")

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class Player:
    """One WHEP player: its connection, the participant it plays, its peer and its grace timer."""

    def __init__(self, connection: Connection, target: str, peer: EgressPeer) -> None:
        self.connection = connection
        self.target = target
        self.peer = peer
        self.grace: asyncio.TimerHandle | None = None


class Players:
    """The WHEP players of one room, registered with the room's other connections."""

    def __init__(
        self,
        room_id: str,
        *,
        router: RoomRouter,
        registry: ConnectionRegistry,
        lifecycle: LifecycleCounters,
        grace: float,
        spawn: Spawn,
    ) -> None:
        self._room_id = room_id
        self._router = router
        self._registry = registry
        self._lifecycle = lifecycle
        self._grace = grace
        self._spawn = spawn
        self._players: dict[str, Player] = {}  # by connection id

    @property
    def count(self) -> int:
        """How many players play in the room."""
        return len(self._players)

    async def start(self, connection: Connection, target: str, sdp: str) -> str:
        """Answer an (admitted) player's offer with `target`'s camera video and audio."""
        owned = [p for p in self._router.publications.values() if p.owner == target]
        if not owned:
            raise NotFound("not_publishing", f"{target!r} publishes nothing in room {self._room_id!r}")
        preferred = sorted(owned, key=lambda p: p.source not in _PLAYED_FIRST)
        holder: list[Player] = []
        peer = self._router.new_egress(connection.identity.identity, on_health=lambda s, f: self._health(holder, s, f))
        try:
            answer = await peer.answer(sdp, preferred)
        except BaseException:
            await self._router.close_egress(peer)
            raise
        player = Player(connection, target, peer)
        holder.append(player)
        previous = self._registry.put(connection)
        self._players[connection.id] = player
        if previous is not None:
            self._lifecycle.replaced += 1
            await self.end(previous, CloseReason.REPLACED)
        logger.info("whep playing room=%s identity=%s target=%s connection=%s remote=%s",
                    self._room_id, connection.identity.identity, target, connection.id, connection.remote)
        return answer

    async def stop(self, connection: Connection) -> None:
        """The player stopped on purpose (DELETE)."""
        self._registry.remove(connection)
        player = self._players.pop(connection.id, None)
        if player is not None:
            await self._close(player)

    async def end(self, connection: Connection, reason: CloseReason) -> None:
        """End a player from the server's side (its connection is told why)."""
        player = self._players.pop(connection.id, None)
        if player is None:
            return
        if reason is CloseReason.LOST:
            self._lifecycle.ghosts_cleaned += 1
            logger.warning("player ended room=%s identity=%s connection=%s why=%s",
                           self._room_id, connection.identity.identity, connection.id, reason.value)
        self._registry.remove(connection)
        await self._close(player)
        await connection.close(reason)

    def target_gone(self, owner: str) -> None:
        """A publication of `owner` closed: players left with nothing to play end."""
        for player in list(self._players.values()):
            if player.target == owner and not player.peer.live:
                self._spawn(self.end(player.connection, CloseReason.TARGET_GONE))

    def _health(self, holder: list[Player], state: PeerState, failure: Failure | None) -> None:
        if not holder or holder[0].connection.id not in self._players:
            return
        player = holder[0]
        if failure is not None:
            log_failure(self._room_id, self._lifecycle, player.connection, "player", player.peer.health.remote_address,
                        failure.detail, failure.code)
            self._spawn(self.end(player.connection, CloseReason.LOST))
        elif state == "stalled" and player.grace is None:
            delay = max(0.0, self._grace - player.peer.health.quiet_for)  # from when it was last heard
            player.grace = asyncio.get_running_loop().call_later(
                delay, lambda: self._spawn(self.end(player.connection, CloseReason.LOST))
            )
        elif state == "alive" and player.grace is not None:
            player.grace.cancel()
            player.grace = None

    async def _close(self, player: Player) -> None:
        self._lifecycle.ended += 1
        if player.grace is not None:
            player.grace.cancel()
            player.grace = None
        await self._router.close_egress(player.peer)
