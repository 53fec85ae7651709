"""`CascadeIn`: this node's end of a link that brings publications of another node into the room.

A room that spans nodes sends each publication once from its node to every other node with
subscribers for it, never once per subscriber. The node that needs a publication offers a
receive-only connection; the publication's node answers it as it answers a WHEP player (an
`EgressPeer`: one more subscription of the publication, no decode); here each received track is a
`Publication` under the origin's id, to which local subscribers subscribe as to any other. Repair
runs over the link as over any hop: losses on the link are NACKed to the origin node, which answers
from its send history, and keyframe requests from subscribers here travel to the origin node,
which passes them on to the publisher (throttled there, per publication).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import RTCSessionDescription

from media import aiortc_hooks as hooks
from media.liveness import LivenessSettings, PeerHealth, StateCallback
from media.peers import NegotiationError, codec_info, ignore_health, make_peer_connection
from media.router import Publication, PublicationId, RelayCounters
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """A publication on another node, as this node knows it: its id, owner, kind and source."""

    publication_id: str
    owner: str
    kind: str
    source: str


class CascadeIn:
    """One receive-only link from another node, carrying the publications named in its offer."""

    def __init__(
        self,
        node: str,
        origins: Sequence[Origin],
        *,
        counters: RelayCounters,
        ice_servers: Sequence[str] = (),
        liveness: LivenessSettings = LivenessSettings(),
        on_health: StateCallback = ignore_health,
    ) -> None:
        self.node = node
        self.origins = tuple(origins)
        self.pc = make_peer_connection(ice_servers)
        self.health = PeerHealth(self.pc, settings=liveness, on_change=on_health, label=f"cascade:{node}")
        self.publications: list[Publication] = []
        self._counters = counters
        self._tasks = TaskGroup(f"cascade:{node}")
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    async def offer(self) -> str:
        """The offer to send to the origin node: one receive-only m-line per origin, in order."""
        for origin in self.origins:
            self.pc.addTransceiver(origin.kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> list[Publication]:
        """Apply the origin node's answer; the publications it sends, under their origin ids."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises several types for a bad answer
            raise NegotiationError("bad_sdp", f"cascade answer rejected: {exc}") from None
        self.health.start()
        for transceiver, origin in zip(self.pc.getTransceivers(), self.origins, strict=True):
            if transceiver.currentDirection not in ("recvonly", "sendrecv"):
                continue  # the origin had nothing to send on it (the publication ended meanwhile)
            publication = Publication(
                owner=origin.owner,
                kind=origin.kind,
                source=origin.source,
                codec=codec_info(transceiver),
                receiver=transceiver.receiver,
                counters=self._counters,
                tasks=self._tasks,
                publication_id=PublicationId(origin.publication_id),
            )
            self.publications.append(publication)
        return list(self.publications)

    async def close(self) -> None:
        """Close the publications and the link (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for publication in self.publications:
            publication.close()
        await self.health.close()
        await self._tasks.close()
        await hooks.close_peer_connection(self.pc)
