"""The record a node keeps in the store while it runs: where it is reached and how loaded it is."""

from __future__ import annotations

from msgspec import Struct

__all__ = ["NodeRecord"]


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
