"""The record a node keeps in the store while it runs: where it is reached and how loaded it is."""

from __future__ import annotations

from msgspec import Struct

__all__ = ["MemberRecord", "NodeRecord", "PartPublication", "RoomPart", "room_parts_stream"]


class NodeRecord(Struct, frozen=True):
    """One live server node, refreshed by its heartbeat; gone from the store once it stops beating."""

    node_id: str
    url: str  # where other nodes reach it (signaling relayed to the rooms it hosts)
    public_url: str  # where browsers reach it (a page whose own node died tries these)
    started_at: float
    participants: int = 0
    publications: int = 0
    forwarded: int = 0  # streams forwarded to subscribers (publication deliveries)
    rooms: int = 0

    @property
    def load(self) -> tuple[int, int, int]:
        """What placement compares: forwarded streams (the CPU), then participants, then rooms."""
        return (self.forwarded + self.publications, self.participants, self.rooms)


class MemberRecord(Struct, frozen=True):
    """A participant of a room as the other nodes see it."""

    identity: str
    site: str
    name: str
    role: str
    state: str = "connected"
    base_role: str = ""  # the role its grants give (what it is when it does not hold the chair)


class PartPublication(Struct, frozen=True):
    """A publication made on a node, as the other nodes of its room see it."""

    publication_id: str
    owner: str
    kind: str
    source: str
    codec: str
    muted: bool = False


class RoomPart(Struct, frozen=True):
    """The part of a room one node holds when the room spans nodes: its participants there and the
    publications made there (the ones it brought in from other nodes are not its own)."""

    room_id: str
    node_id: str
    url: str  # where the other nodes ask it for its publications
    members: tuple[MemberRecord, ...] = ()
    publications: tuple[PartPublication, ...] = ()
    at: float = 0.0


def room_parts_stream(room_id: str) -> str:
    """The stream on which a node says its part of a room changed (the others read the parts again)."""
    return f"room-parts:{room_id}"
