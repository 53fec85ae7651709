"""Records, errors and the `Store` protocol shared by every store implementation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec import Struct

from .nodes import NodeRecord, RoomPart

__all__ = [
    "DeviceLinkRecord",
    "EventIdInvalid",
    "PresenceRecord",
    "RecordInvalid",
    "RevocationRecord",
    "RoomRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "StreamMoved",
    "encode_event_data",
    "event_id_key",
    "redact_url",
]

_EVENT_ID = re.compile(r"^(\d+)-(\d+)$")


class StoreError(Exception):
    """Base class of every error a store raises."""


class StoreUnavailable(StoreError):
    """The backing service (Redis) cannot be reached."""


class StreamMoved(StoreError):
    """A conditional append found the stream past where the writer had read it (another node wrote)."""

    def __init__(self, stream: str, expected: str | None, last: str | None) -> None:
        super().__init__(f"stream {stream!r} is at {last or 'its start'}, not {expected or 'its start'}")
        self.stream = stream
        self.expected = expected
        self.last = last

    def behind(self, folded: str | None) -> bool:
        """Whether the stream ends before `folded`, the last event the writer folded: the store lost
        events it had read (a failover to a replica that had not taken them)."""
        return folded is not None and (self.last is None or event_id_key(self.last) < event_id_key(folded))


class RecordInvalid(StoreError):
    """A record or event payload cannot be encoded for storage."""


class EventIdInvalid(StoreError):
    """An event id is not of the form `<ms>-<seq>`."""


class RoomRecord(Struct, frozen=True):
    """A room as configured or created at run time."""

    id: str
    name_zh: str
    name_en: str
    created_at: float
    locked: bool = False
    configured: bool = True


class PresenceRecord(Struct, frozen=True):
    """One live participant session in a room, on a node."""

    room: str
    identity: str
    site: str
    name: str
    node: str
    session_id: str
    joined_at: float
    role: str = "participant"


class StoredEvent(Struct, frozen=True):
    """One event of an append-only stream; ids increase within a stream."""

    id: str
    stream: str
    at: float
    actor: str
    kind: str
    data: dict[str, object]


class RevocationRecord(Struct, frozen=True):
    """A token refused before its own expiry (a logout, a lost device); kept until that expiry."""

    token_id: str
    expires_at: float
    revoked_at: float
    identity: str = ""
    kind: str = ""  # "user", "device", or "" when only the token id was known
    by: str = ""
    reason: str = ""
    seq: int = 0  # the store's order of revocations, set when read back


class DeviceLinkRecord(Struct, frozen=True):
    """A device token that was issued (a link for a phone or a wall, an encoder's token); kept until it expires."""

    token_id: str
    identity: str
    name: str
    site: str
    room: str
    grants: tuple[str, ...]
    issued_at: float
    expires_at: float
    issued_by: str = ""


class Store(Protocol):
    """State shared by the server: rooms, placement, presence and event logs."""

    node_id: str
    durable: bool

    async def start(self) -> None:
        """Connect (if needed); raises `StoreUnavailable` when the backend is unreachable."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...

    async def put_room(self, room: RoomRecord) -> None:
        """Insert or replace a room."""
        ...

    async def get_room(self, room_id: str) -> RoomRecord | None:
        """Return the room or None."""
        ...

    async def list_rooms(self) -> list[RoomRecord]:
        """Return every room, sorted by id."""
        ...

    async def delete_room(self, room_id: str) -> None:
        """Delete a room and its placement; a missing room is not an error."""
        ...

    async def set_presence(self, presence: PresenceRecord, ttl: float) -> None:
        """Insert or refresh a presence; it expires after ttl seconds unless refreshed."""
        ...

    async def remove_presence(self, room: str, identity: str) -> None:
        """Remove a presence; a missing one is not an error."""
        ...

    async def list_presence(self, room: str) -> list[PresenceRecord]:
        """Return the live presences of a room, sorted by joined_at."""
        ...

    async def append_event(
        self, stream: str, *, actor: str, kind: str, data: Mapping[str, object]
    ) -> StoredEvent:
        """Append an event; returns only once the store holds it."""
        ...

    async def append_events_at(
        self, stream: str, last: str | None, events: list[tuple[str, str, Mapping[str, object]]]
    ) -> list[StoredEvent]:
        """Append the (actor, kind, data) events, in order, only if the stream's last event is `last`
        (None: the stream is empty), all or none, atomically; raises `StreamMoved` otherwise. A writer
        that folded the stream up to `last` appends changes it checked against that state, and no
        other writer's change can come in between; several changes go in one round trip."""
        ...

    async def read_events(
        self, stream: str, *, after: str | None = None, limit: int = 1000
    ) -> list[StoredEvent]:
        """Return up to limit events strictly after the given id, oldest first."""
        ...

    async def wait_events(
        self, positions: Mapping[str, str | None], *, block: float, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events after each stream's position (None: from its start), stream by stream, oldest first
        within each; waits up to `block` seconds for one to arrive when there is none yet."""
        ...

    async def revoke_token(self, record: RevocationRecord) -> int:
        """Keep a revocation until its `expires_at` (replacing one of the same token); return its sequence number."""
        ...

    async def revocations_after(self, seq: int) -> tuple[list[RevocationRecord], int]:
        """Unexpired revocations numbered above seq, in order, and the latest number the store gave."""
        ...

    async def put_device_link(self, record: DeviceLinkRecord) -> None:
        """Keep an issued device token's record until its `expires_at`."""
        ...

    async def get_device_link(self, token_id: str) -> DeviceLinkRecord | None:
        """Return the unexpired device link with this token id, or None."""
        ...

    async def list_device_links(self) -> list[DeviceLinkRecord]:
        """Return the unexpired device links, newest first."""
        ...

    async def claim_once(self, key: str, ttl: float) -> bool:
        """Claim `key` for this node if no node has in the last `ttl` seconds: scheduled work every
        node watches (a roll-call schedule's occurrence) is done by the node whose claim succeeds."""
        ...

    async def ping(self) -> bool:
        """Return whether the backend answers."""
        ...

    @property
    def undecodable_entries(self) -> int:
        """How many stream entries were found that are not events of ours (each read as kind `undecodable`)."""
        ...

    # --- nodes and placement across nodes (server/nodes.py) -------------------------------------
    # Kept at the end of the protocol: a node registry with expiry, and the claim on a room that
    # treats a placement on a node no longer registered as free.

    async def heartbeat_node(self, record: NodeRecord, ttl: float) -> None:
        """Insert or refresh a node's record; it stops being live after ttl seconds unless refreshed."""
        ...

    async def list_nodes(self) -> list[NodeRecord]:
        """Return the live nodes, sorted by node id, dropping the expired ones."""
        ...

    async def forget_node(self, node_id: str) -> None:
        """Remove a node's record (a clean shutdown): its rooms are free at once."""
        ...

    async def claim_room(self, room_id: str, node_id: str, ttl: float) -> str:
        """Place the room on node_id unless a live node other than it holds an unexpired placement;
        return the owner. Refreshing node_id's own placement never shortens it."""
        ...

    async def room_owner(self, room_id: str) -> str | None:
        """The node holding an unexpired placement of the room while that node is live, else None."""
        ...

    async def put_room_part(self, part: RoomPart, ttl: float, *, notify: bool = True) -> None:
        """Insert or refresh a node's part of a room (gone after ttl unless refreshed); with `notify`
        (it changed), note the change on `room_parts_stream` for the nodes that follow it."""
        ...

    async def room_parts(self, room_id: str) -> list[RoomPart]:
        """The unexpired parts of a room, sorted by node id."""
        ...

    async def drop_room_part(self, room_id: str, node_id: str) -> None:
        """Remove a node's part of a room (its last participant left), noting the change."""
        ...


def event_id_key(event_id: str) -> tuple[int, int]:
    """Return a sortable key for an event id (`"<ms>-<seq>"`), as Redis orders stream ids."""
    match = _EVENT_ID.match(event_id)
    if match is None:
        raise EventIdInvalid(f"event id {event_id!r} is not of the form <ms>-<seq>")
    return int(match.group(1)), int(match.group(2))


def encode_event_data(data: Mapping[str, object]) -> bytes:
    """Encode an event payload as JSON, raising `RecordInvalid` for what JSON cannot hold."""
    try:
        return msgspec.json.encode(dict(data))
    except (TypeError, msgspec.EncodeError) as exc:
        raise RecordInvalid(f"event data cannot be stored: {exc}") from exc


def redact_url(url: str) -> str:
    """Return the URL without any password, safe to log or show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    if "," in parts.netloc:  # several hosts (sentinels): no single host and port to rebuild from
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
