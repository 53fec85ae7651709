"""The application's typed state: everything a handler needs, built once at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from media.counters import RelayCounters
from media.tasks import TaskGroup
from server.auth import PasswordVerifier, TokenService
from server.config import Config
from server.connection import CloseReason, LifecycleCounters
from server.errors import RequestError
from server.follow import LogTail
from server.nodes import Nodes
from server.participant import Participant
from server.rate_limits import RateLimits
from server.registry import RoomRegistry
from server.relay import Relays
from server.room import Room
from server.scheduler import Scheduler, SystemClock
from server.sites import SiteTree
from server.skipped import SkippedRecords
from server.store import Store
from signaling.messages import ServerMessage


class ClientSession(Protocol):
    """Who sent a client message: a room's `/ws` session (server/session.py) or a console socket."""

    @property
    def id(self) -> str:
        """The session id, for the event log."""
        ...

    @property
    def remote(self) -> str:
        """The client's address, for the event log."""
        ...

    @property
    def room(self) -> Room | None:
        """The room the session joined (None for a console socket)."""
        ...

    @property
    def participant(self) -> Participant | None:
        """The verified participant behind the session (None before hello)."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the socket is gone."""
        ...

    def send(self, message: ServerMessage) -> None:
        """Queue a message for the client."""
        ...

    async def close(self, reason: CloseReason) -> None:
        """End the session from the server's side."""
        ...


# A handler for one client message type beyond the room's own: gets the caller (its verified
# participant, room, address) and the message; returns the reply or None. Feature modules
# register theirs in `Services.handlers` from create_app, the one dispatch point.
Handler = Callable[[ClientSession, Any], Awaitable[ServerMessage | None]]


class Limits:
    """Size limits on what clients send, beyond the wire parser's own."""

    def __init__(self, max_sdp_bytes: int, max_media_lines: int) -> None:
        self.max_sdp_bytes = max_sdp_bytes
        self.max_media_lines = max_media_lines

    def check_sdp(self, sdp: str, *, offer: bool = True) -> None:
        """Raise RequestError for an SDP that is too large or is not SDP; an offer may not carry
        more m-lines than the track limit (answers mirror the server's own offers), nor a BUNDLE
        group naming a mid no m-section has (aiortc would leave that m-section without a transport).
        Lines are split the way any parser might split them (CR, LF, or Unicode line breaks)."""
        if len(sdp.encode("utf-8", "surrogatepass")) > self.max_sdp_bytes:
            raise RequestError("sdp_too_large", f"SDP exceeds {self.max_sdp_bytes} bytes")
        if not sdp.startswith("v=0"):
            raise RequestError("bad_sdp", "not an SDP description (must start with v=0)")
        if not offer:
            return
        lines = sdp.splitlines()
        media_lines = sum(line.startswith("m=") for line in lines)
        if media_lines > self.max_media_lines:
            raise RequestError("too_many_tracks", f"SDP has {media_lines} m-lines, at most {self.max_media_lines} allowed")
        mids = _section_mids(lines)
        for line in lines:
            if line.startswith("a=group:BUNDLE"):
                unknown = [mid for mid in line[len("a=group:BUNDLE"):].split() if mid not in mids]
                if unknown:
                    raise RequestError("bad_sdp", f"the BUNDLE group names mid {unknown[0]!r}, which no m-section has")


def _section_mids(lines: list[str]) -> set[str]:
    """The mid of each m-section as aiortc reads it (the last `a=mid` of the section; one before
    the first m-line belongs to the session and names nothing)."""
    mids: list[str | None] = []
    for line in lines:
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[len("a=mid:"):]
    return {mid for mid in mids if mid is not None}


class SessionSet:
    """The open signaling sessions; `wait_empty()` lets shutdown and tests wait for them to end."""

    def __init__(self) -> None:
        self._sessions: set[ClientSession] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def __iter__(self) -> Iterator[ClientSession]:
        return iter(list(self._sessions))

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: ClientSession) -> None:
        """A session opened."""
        self._sessions.add(session)
        self._empty.clear()

    def discard(self, session: ClientSession) -> None:
        """A session ended (its cleanup is complete)."""
        self._sessions.discard(session)
        if not self._sessions:
            self._empty.set()

    async def wait_empty(self, timeout: float) -> None:
        """Wait until no session is open."""
        await asyncio.wait_for(self._empty.wait(), timeout)


@dataclass
class Services:
    """Configuration, store, rooms, auth and counters of one running server."""

    config: Config
    store: Store
    tokens: TokenService
    passwords: PasswordVerifier
    rooms: RoomRegistry
    counters: RelayCounters
    limits: Limits
    nodes: Nodes  # this node among the others: heartbeat, placement, relay headers
    relays: Relays  # signaling relayed to the node that hosts a room
    lifecycle: LifecycleCounters = field(default_factory=LifecycleCounters)
    # Every log folded at start-up registers what it had to skip, and domains their own totals
    # (name -> help text, reader), for /metrics.
    skipped: list[SkippedRecords] = field(default_factory=list)
    domain_counters: dict[str, tuple[str, Callable[[], int]]] = field(default_factory=dict)
    sessions: SessionSet = field(default_factory=SessionSet)
    handlers: dict[type, Handler] = field(default_factory=dict)
    scheduler: Scheduler = field(default_factory=lambda: Scheduler(SystemClock()))
    background: TaskGroup = field(default_factory=lambda: TaskGroup("server"))
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # The streams every node folds, followed live (server/follow.py); read from once the store starts.
    tail: LogTail = field(init=False)
    # The configured site tree, indexed once; sites change only with a restart.
    sites: SiteTree = field(init=False)

    def __post_init__(self) -> None:
        self.tail = LogTail(self.store)
        self.sites = SiteTree(self.config.sites)
        self.domain_counters["cp_log_tail_read_failures"] = (
            "Reads of the followed event streams that failed (the store away)", lambda: self.tail.failures,
        )


SERVICES = web.AppKey("services", Services)
