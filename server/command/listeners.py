"""Who is connected for command pushes: room `/ws` sessions and console sockets, indexed by site and identity."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol

from server.command.views import Viewer
from server.services import ClientSession, Services
from signaling.messages import ServerMessage


class Listener(Protocol):
    """Something that receives command pushes."""

    viewer: Viewer

    def send(self, message: ServerMessage) -> None:
        """Queue a message to the client."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the connection is gone."""
        ...


class SessionListener:
    """A room's `/ws` session as a command listener."""

    def __init__(self, session: ClientSession) -> None:
        assert session.participant is not None
        identity = session.participant.identity
        self.session = session
        self.viewer = Viewer(identity.identity, identity.site, identity.can("issue"))
        # whether a person's page reads directives here (it asked with command_subscribe), not a
        # send-only camera or encoder: only a reader counts its site as delivered to
        self.reads = False

    def send(self, message: ServerMessage) -> None:
        """Queue on the session's outbox."""
        self.session.send(message)

    @property
    def closed(self) -> bool:
        """The session's socket is closed."""
        return self.session.closed


class Listeners:
    """Live listeners by site and by identity; closed ones are dropped when next looked up."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._by_site: dict[str, set[Listener]] = {}
        self._by_identity: dict[str, set[Listener]] = {}
        self._sessions: dict[ClientSession, SessionListener] = {}

    def add(self, listener: Listener) -> None:
        """Start pushing to `listener`."""
        self._by_site.setdefault(listener.viewer.site, set()).add(listener)
        self._by_identity.setdefault(listener.viewer.identity, set()).add(listener)

    def remove(self, listener: Listener) -> None:
        """Stop pushing to `listener`."""
        self._by_site.get(listener.viewer.site, set()).discard(listener)
        self._by_identity.get(listener.viewer.identity, set()).discard(listener)
        if isinstance(listener, SessionListener):
            self._sessions.pop(listener.session, None)

    def session(self, session: ClientSession) -> SessionListener:
        """The listener of a room session, registering it on first use."""
        listener = self._sessions.get(session)
        if listener is None:
            listener = SessionListener(session)
            self._sessions[session] = listener
            self.add(listener)
        return listener

    def adopt_sessions(self, sites: Collection[str]) -> None:
        """Register every room session of these sites (they receive directives without subscribing)."""
        for session in list(self.services.sessions):
            participant = session.participant
            if participant is not None and session not in self._sessions and participant.identity.site in sites:
                self.session(session)

    def _live(self, found: Iterable[Listener]) -> set[Listener]:
        live: set[Listener] = set()
        for listener in list(found):
            if listener.closed:
                self.remove(listener)
            else:
                live.add(listener)
        return live

    def for_sites(self, sites: Iterable[str]) -> set[Listener]:
        """Live listeners whose identity belongs to one of `sites`."""
        found: list[Listener] = []
        for site in sites:
            found.extend(self._by_site.get(site, ()))
        return self._live(found)

    def for_identity(self, identity: str) -> set[Listener]:
        """Live listeners of one identity."""
        return self._live(self._by_identity.get(identity, ()))

    def connected_sites(self) -> set[str]:
        """Sites with at least one live listener."""
        return {site for site, listeners in self._by_site.items() if self._live(listeners)}
