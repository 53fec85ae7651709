"""`command_subscribe`'s replay: the stored log after the client's last event, as its site may see it.

A county session once froze the server by subscribing 40 times over a log of 2,000 directives:
each replay built every message in one go, without yielding, into an outbox that overflowed.
Now a replay reads the log a page at a time and yields to the loop between pages, waits for the
socket to take what it sent (the outbox's `room()`), and holds back the live events that arrive
meanwhile so that they follow it in order. A socket replays once: one replay at a time (another
subscribe meanwhile is refused), and a subscribe on a socket that is already in sync replays
nothing, since everything after its replay reached it live.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from server.command.domain import Event, IllegalTransition
from server.command.listeners import Listener
from server.command.service import CommandService
from server.command.views import Viewer
from server.errors import wire_error
from server.outbox import Outbox
from server.store import event_id_key
from signaling.command import CommandEvent, CommandSynced
from signaling.messages import Error, ServerMessage

logger = logging.getLogger(__name__)

PAGE = 200  # events read, and messages built, between two yields to the event loop
BUSY = "subscribe_in_progress"


@dataclass
class _Socket:
    """What one socket has replayed."""

    running: bool = False
    synced: bool = False


@dataclass(frozen=True)
class Request:
    """One `command_subscribe`: who asks, where the replay goes, and from where."""

    listener: Listener
    outbox: Outbox | None
    after: str | None
    request_id: str | None


class Replays:
    """The replays of one command service: at most one running per socket."""

    def __init__(self, service: CommandService) -> None:
        self.service = service
        self._sockets: WeakKeyDictionary[Any, _Socket] = WeakKeyDictionary()

    @property
    def running(self) -> int:
        """How many replays are running now."""
        return sum(socket.running for socket in self._sockets.values())

    def start(self, session: object, request: Request) -> ServerMessage | None:
        """Start replaying to `session`'s socket; the reply now (busy, or in sync already), or None
        when the replay will send `command_synced` itself once done."""
        socket = self._sockets.setdefault(session, _Socket())
        service = self.service
        if socket.running:
            # Not a RequestError: the session would count it as a bad message and drop the client.
            return Error(id=request.request_id, code=BUSY, message="a subscribe is already replaying on this socket")
        if socket.synced:
            return CommandSynced(id=request.request_id, last_event_id=service.last_event_id, replayed=0)
        socket.running = True
        # From here on every event folded is pushed live (fold and push run without a pause), so
        # the replay ends at the last event folded now: nothing is sent twice, nothing is missed.
        until = service.last_event_id
        if request.outbox is not None:
            request.outbox.hold(lambda message: isinstance(message, CommandEvent))
        task = service.services.background.spawn(self._run(socket, request, until), name="command-replay")
        if task is None:  # the server is shutting down
            self._finish(socket, request)
            return Error(id=request.request_id, code="unavailable", message="the server is shutting down")
        return None

    async def _run(self, socket: _Socket, request: Request, until: str | None) -> None:
        service, listener = self.service, request.listener
        try:
            replayed = await self._replay(request, until)
            if replayed is None:
                return  # the socket went away
            self._finish(socket, request)
            socket.synced = True
            await self._mark_delivered(listener.viewer.site)
            listener.send(CommandSynced(id=request.request_id, last_event_id=service.last_event_id, replayed=replayed))
        except Exception as exc:  # noqa: BLE001 - the client gets an answer whatever failed
            code, text = wire_error(exc)
            logger.warning("command replay failed site=%s code=%s error=%r", listener.viewer.site, code, exc)
            listener.send(Error(id=request.request_id, code=code, message=text))
        finally:
            self._finish(socket, request)

    @staticmethod
    def _finish(socket: _Socket, request: Request) -> None:
        if socket.running:
            socket.running = False
            if request.outbox is not None:
                request.outbox.release()

    async def _replay(self, request: Request, until: str | None) -> int | None:
        """Send what the listener may see of the log after `after` up to `until`; how many, or None
        if the socket went away meanwhile."""
        if until is None or (request.after is not None and event_id_key(request.after) >= event_id_key(until)):
            return 0
        viewer, outbox, listener = request.listener.viewer, request.outbox, request.listener
        replayed = 0
        async for page in self.service.read_pages(request.after, until, PAGE):
            for event in page:
                message = self._message(event, viewer)
                if message is None:
                    continue
                if outbox is None:
                    listener.send(message)
                elif not await outbox.room():
                    return None
                else:
                    outbox.send_ahead(message)
                replayed += 1
            if listener.closed:
                return None
            await asyncio.sleep(0)  # a page at a time: other clients are served in between
        return replayed

    def _message(self, event: Event, viewer: Viewer) -> CommandEvent | None:
        service = self.service
        target_id = event.text("directive_id") or event.text("incident_id")
        changed = service.ledger.directives.get(target_id) or service.board.incidents.get(target_id)
        if changed is None:
            return None
        try:
            return service.message_for(event, changed, viewer)
        except IllegalTransition:
            return None  # a record the fold skipped (and counted): it costs only itself

    async def _mark_delivered(self, site: str) -> None:
        """The site's live socket now holds every active directive: record those not yet delivered."""
        pending = [d.id for d in list(self.service.ledger.directives.values())
                   if d.status == "active" and site in d.recipients and d.recipients[site].delivered_at is None]
        for n, directive_id in enumerate(pending, 1):
            await self.service.mark_delivered(directive_id, [site])
            if n % PAGE == 0:
                await asyncio.sleep(0)
