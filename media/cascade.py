"""`CascadeIn`: this node's end of a link that brings publications of another node into the room.

A room that spans nodes sends each publication once from its node to every other node with
subscribers for it, never once per subscriber, and all of one node's publications on one link: the
other node is, to the node the publications were made on, one more subscriber (a `SubscriberPeer`
whose offers follow publications as they come and go). Here that link is answered like a client
answers its subscriber connection, and each track it carries becomes a `Publication` under the
origin's id, to which local subscribers subscribe as to any other. Repair runs over the link as
over any hop: losses on it are NACKed to the origin node, which answers from its send history, and
keyframe requests from subscribers here travel to the origin node, which passes them on to the
publisher (throttled there, per publication).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiortc import RTCRtpTransceiver, RTCSessionDescription

from media.aiortc.ice import close_peer_connection
from media.aiortc.transceivers import media_codecs, remote_sends
from media.counters import RelayCounters
from media.liveness import LivenessSettings, PeerHealth, StateCallback
from media.peers import NegotiationError, codec_info, ignore_health, make_peer_connection
from media.publication import CodecInfo, Publication, PublicationId
from media.tasks import TaskGroup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """A publication on another node, as this node knows it: its id, owner, source and codec."""

    publication_id: str
    owner: str
    source: str
    codec: str = ""  # the codec's name as the origin sends it ("H264", "VP8", "opus"); "" unknown


class CascadeIn:
    """One link from another node: its offers answered, its tracks received as publications."""

    def __init__(
        self,
        node: str,
        *,
        counters: RelayCounters,
        ice_servers: Sequence[str] = (),
        liveness: LivenessSettings = LivenessSettings(),
        on_health: StateCallback = ignore_health,
    ) -> None:
        self.node = node
        self.pc = make_peer_connection(ice_servers)
        self.health = PeerHealth(self.pc, settings=liveness, on_change=on_health, label=f"cascade:{node}")
        self.publications: dict[str, Publication] = {}  # by mid
        self._counters = counters
        self._tasks = TaskGroup(f"cascade:{node}")
        self._lock = asyncio.Lock()  # one offer at a time, in the order they come
        self._started = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    async def answer(
        self, offer_sdp: str, tracks: Mapping[str, str], origin: Callable[[str], Origin | None]
    ) -> tuple[str, list[Publication]]:
        """Answer the origin node's offer (`tracks`: mid -> publication id); the publications it
        starts sending. One it stopped sending on a mid (or sends another on it) is closed."""
        async with self._lock:
            if self._closed:
                raise NegotiationError("link_closed", "the link was closed")
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            except Exception as exc:  # noqa: BLE001 - aiortc raises several types for a bad offer
                raise NegotiationError("bad_sdp", f"cascade offer rejected: {exc}") from None
            if not self._started:
                self._started = True
                self.health.start()
            return self.pc.localDescription.sdp, self._bind(tracks, origin)

    def _bind(self, tracks: Mapping[str, str], origin: Callable[[str], Origin | None]) -> list[Publication]:
        added: list[Publication] = []
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None:
                continue
            wanted = tracks.get(mid) if remote_sends(transceiver) else None
            held = self.publications.get(mid)
            if held is not None and held.id != wanted:
                del self.publications[mid]
                held.close()  # a transceiver the origin freed, or reuses for another publication
            if wanted is None or (held is not None and held.id == wanted):
                continue
            known = origin(wanted) or Origin(wanted, "", "camera" if transceiver.kind == "video" else "microphone")
            publication = Publication(
                owner=known.owner,
                kind=transceiver.kind,
                source=known.source,
                codec=_sent_codec(transceiver, known.codec),
                receiver=transceiver.receiver,
                counters=self._counters,
                tasks=self._tasks,
                publication_id=PublicationId(wanted),
            )
            self.publications[mid] = publication
            added.append(publication)
        return added

    async def close(self) -> None:
        """Close the publications and the link (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for publication in list(self.publications.values()):
            publication.close()
        await self.health.close()
        await self._tasks.close()
        await close_peer_connection(self.pc)


def _sent_codec(transceiver: RTCRtpTransceiver, name: str) -> CodecInfo:
    """The negotiated codec the origin sends on the track (an m-line offers several: the first is
    not necessarily the one sent, and subscribers here must be told the right one)."""
    for codec in media_codecs(transceiver):
        if codec.mimeType.split("/", 1)[-1].lower() == name.lower():
            return CodecInfo(mime_type=codec.mimeType, clock_rate=codec.clockRate, parameters=dict(codec.parameters))
    return codec_info(transceiver)
