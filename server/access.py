"""Access that ends while connected: revocations and configuration changes reach live connections.

- A revocation (a logout, a lost phone's link revoked on `/admin/devices` or with `python -m server
  token --revoke`) is kept in the store until the token's own expiry and refused from then on by
  every node (server/revocations.py). The connections holding that token end: on the node that
  revoked it at once, on the others at their next read of the store (`revocation_poll` seconds).
- Every `access_recheck` seconds each live connection's identity is checked again
  (`TokenService.recheck`): expired, revoked, its user or its device's site gone from the
  configuration, a grant or a room taken away: it ends, and a page that reconnects is admitted, or
  refused, by what the configuration says now. The configuration's users are reloaded on SIGHUP.

How a connection ends. In a room, the identity whose connection (or participant) holds the token is
ended in that room (`Room.end_identity`): a room keeps one participant per identity, whose session,
tracks and players hang together, so its way in cannot be cut out alone; its other tokens, in other
rooms and on console sockets, are untouched, and a way in with a valid token comes straight back.
Console sockets (`/command/ws`) and sockets that have not said hello yet end one by one, by token.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, Protocol

import msgspec
from aiohttp import web

from server.auth import AuthError, Identity, TokenExpired, TokenRevoked
from server.config import Config, ConfigError, load_config
from server.connection import CloseReason
from server.room import Room
from server.services import SERVICES, Services
from server.store import RevocationRecord, StoreError
from signaling.messages import Error

logger = logging.getLogger(__name__)

# What a client is told when the server ends its socket for an access reason.
NOTICES: Final[dict[CloseReason, tuple[str, str]]] = {
    CloseReason.REVOKED: ("token_revoked", "此登录或链接已被吊销 This sign-in or link was revoked"),
    CloseReason.EXPIRED: ("token_expired", "登录或链接已过期 This sign-in or link has expired"),
    CloseReason.ACCESS_WITHDRAWN: ("access_withdrawn", "权限已变更，请重新进入 Your access changed: join again"),
}

Doom = Callable[[Identity], CloseReason | None]


def ended_notice(reason: CloseReason) -> Error | None:
    """The error message a socket gets before the server closes it for `reason`, if it is an access reason."""
    notice = NOTICES.get(reason)
    return None if notice is None else Error(code=notice[0], message=notice[1])


class Guarded(Protocol):
    """A socket outside any room that holds an identity (a console socket)."""

    @property
    def identity(self) -> Identity:
        """The verified identity behind it."""
        ...

    async def close(self, reason: CloseReason) -> None:
        """End it from the server's side, telling the client why."""
        ...


class Access:
    """Ends what a revocation, an expiry or a configuration change leaves without access."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._consoles: set[Guarded] = set()

    def track(self, console: Guarded) -> None:
        """Watch a console socket until `untrack`."""
        self._consoles.add(console)

    def untrack(self, console: Guarded) -> None:
        """Stop watching a console socket (it ended)."""
        self._consoles.discard(console)

    async def revoke(self, record: RevocationRecord, *, best_effort: bool = False) -> int:
        """Keep the revocation in the store (StoreError if it cannot) and end what holds the token here; how many ended."""
        revocations = self._services.tokens.revocations
        try:
            await revocations.revoke(record)
        except StoreError:
            if not best_effort:
                raise
            # A logout still ends here and clears the cookie: refusing to log out would be worse.
            logger.warning("revocation kept on this node only: the store is unreachable token_id=%s", record.token_id, exc_info=True)
            revocations.remember(record)
        return await self.end_token(record.token_id)

    async def sync(self) -> int:
        """Learn the revocations other nodes made and end what holds those tokens here; how many ended."""
        ended = 0
        for record in await self._services.tokens.revocations.sync():
            ended += await self.end_token(record.token_id)
        return ended

    async def end_token(self, token_id: str) -> int:
        """End every live connection that holds this token."""
        return await self.end_where(lambda identity: CloseReason.REVOKED if identity.token_id == token_id else None)

    async def recheck(self) -> int:
        """Check every live connection's identity again; end those that lost their access."""
        return await self.end_where(self._recheck)

    async def reload(self, config: Config) -> int:
        """Take the users of a reloaded configuration, then check every live connection."""
        services = self._services
        # Only the users change while running (logins read them here); the sites, rooms and the rest
        # were built into the running services and need a restart.
        services.config = msgspec.structs.replace(services.config, users=config.users)
        directory = services.tokens.directory
        if directory is not None:
            directory.load(services.config)
        logger.info("configuration users reloaded users=%d", len(config.users))
        return await self.recheck()

    async def end_where(self, doom: Doom) -> int:
        """End every live connection whose identity `doom` gives a reason for; how many ended."""
        ended = 0
        for room in list(self._services.rooms.rooms.values()):
            ended += await _end_in_room(room, doom)
        for session in list(self._services.sessions):
            identity = getattr(session, "cookie_identity", None)  # not joined yet: only its cookie is known
            reason = doom(identity) if session.participant is None and isinstance(identity, Identity) else None
            if reason is not None:
                await session.close(reason)
                ended += 1
        for console in list(self._consoles):
            reason = doom(console.identity)
            if reason is not None:
                self._consoles.discard(console)
                await console.close(reason)
                ended += 1
        if ended:
            logger.info("connections ended for access count=%d", ended)
        return ended

    def _recheck(self, identity: Identity) -> CloseReason | None:
        try:
            self._services.tokens.recheck(identity)
        except TokenRevoked:
            return CloseReason.REVOKED
        except TokenExpired:
            return CloseReason.EXPIRED
        except AuthError:
            return CloseReason.ACCESS_WITHDRAWN
        return None


async def _end_in_room(room: Room, doom: Doom) -> int:
    """End, in one room, each identity one of whose connections (or whose participant) `doom` names."""
    ended = 0
    for principal in room.identities():
        held = [connection.identity for connection in room.connections_of(principal)]
        participant = room.participants.get(principal)
        if participant is not None:
            held.append(participant.identity)
        reason = next((r for r in map(doom, held) if r is not None), None)
        if reason is not None:
            logger.info("identity ended room=%s identity=%s why=%s", room.id, principal, reason.value)
            await room.end_identity(principal, reason)
            ended += 1
    return ended


ACCESS = web.AppKey("access", Access)


def install(app: web.Application, services: Services) -> Access:
    """Keep live connections in step with revocations and the configuration; call after the store's lifecycle."""
    access = Access(services)
    app[ACCESS] = access
    from server.device_links import add_routes  # the page revokes through `ACCESS`

    add_routes(app)
    app.cleanup_ctx.append(_follow)
    return access


def reload_on_hangup(app: web.Application, config_path: Path) -> None:
    """Reload the configuration's users from `config_path` when the process gets SIGHUP."""

    async def hangups(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        services = app[SERVICES]

        def hangup() -> None:
            services.background.spawn(_reload(app[ACCESS], config_path), name="config-reload")

        loop.add_signal_handler(signal.SIGHUP, hangup)
        yield
        loop.remove_signal_handler(signal.SIGHUP)

    app.cleanup_ctx.append(hangups)


async def _reload(access: Access, config_path: Path) -> None:
    try:
        config = await asyncio.get_running_loop().run_in_executor(None, load_config, config_path)
    except ConfigError as exc:
        logger.error("configuration not reloaded, the previous one stays: %s", exc)
        return
    await access.reload(config)


async def _follow(app: web.Application) -> AsyncIterator[None]:
    """Read every revocation at start (a restarted node refuses what was revoked before), then follow."""
    services, access = app[SERVICES], app[ACCESS]
    await services.tokens.revocations.sync()
    settings = services.config.server
    tasks = [
        asyncio.get_running_loop().create_task(_every(settings.revocation_poll, access.sync, "revocations"), name="revocation-poll"),
        asyncio.get_running_loop().create_task(_every(settings.access_recheck, access.recheck, "recheck"), name="access-recheck"),
    ]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _every(interval: float, work: Callable[[], Awaitable[int]], what: str) -> None:
    """Run `work` every `interval` seconds; a failure is logged once per streak, and retried."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await work()
        except StoreError:
            if not failing:
                logger.warning("access %s failed, the store is unreachable; retrying every %.1f s", what, interval)
            failing = True
            continue
        except Exception:  # noqa: BLE001 - the watch must outlive any one bad round
            logger.exception("access %s failed", what)
        failing = False
