"""The server under benchmark, in its own process: the project's relay (`relay`) or aiortc's
`MediaRelay` (`mediarelay`: decode once, encode per subscriber), behind the same tiny HTTP
signaling, so that the load tool drives both alike.

    python -m bench.server --mode relay --port 8701
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from media.aiortc.guard import check_hooks
from media.cascade import CascadeIn, Origin
from media.counters import RelayCounters
from media.publication import Publication
from media.recording import Recorder, RecordingEvent
from media.router import RoomRouter

logger = logging.getLogger(__name__)


class RelayBackend:
    """The project's packet relay: a RoomRouter with server-offered subscriber connections."""

    def __init__(self, record: str | None = None) -> None:
        self.counters = RelayCounters()
        self.router = RoomRouter("bench", counters=self.counters)
        self.record = record  # a directory to record every publication into (bench.recording), or None
        self.recorder: Recorder | None = None
        self.segments: list[RecordingEvent] = []
        self._offers: dict[str, asyncio.Future[tuple[str, dict[str, str]]]] = {}
        self.links: dict[str, CascadeIn] = {}  # links this server receives on (bench.cascade), by node

    async def publish(self, name: str, sdp: str) -> dict[str, Any]:
        """Answer a publisher's offer; returns the answer and its publication ids."""
        publications: list[Publication] = []
        peer = self.router.new_publisher(name, on_publication=publications.append)
        answer = await peer.answer(sdp, {})
        if self.record is not None:
            if self.recorder is None:
                self.recorder = await Recorder.start(Path(self.record), on_event=self._recorded, segment_seconds=300.0)
            for publication in publications:
                self.recorder.add(publication, publication.id)
        return {"sdp": answer, "publications": [p.id for p in publications]}

    def _recorded(self, event: RecordingEvent) -> None:
        if event.kind == "track_failed":
            logger.error("recording failed: %s", event.data)

    def _expect_offer(self, name: str) -> asyncio.Future[tuple[str, dict[str, str]]]:
        future: asyncio.Future[tuple[str, dict[str, str]]] = asyncio.get_running_loop().create_future()
        self._offers[name] = future
        return future

    async def subscribe(self, name: str, publication_ids: list[str]) -> dict[str, Any]:
        """Open a subscriber connection delivering the given publications; returns the offer."""
        future = self._expect_offer(name)

        async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
            pending = self._offers.get(name)
            if pending is not None and not pending.done():
                pending.set_result((sdp, tracks))

        peer = self.router.new_subscriber(name, send_offer)
        for publication_id in publication_ids:
            peer.subscribe(self.router.publications[publication_id])  # type: ignore[index]
        sdp, tracks = await asyncio.wait_for(future, 30)
        return {"sdp": sdp, "tracks": tracks}

    async def answer(self, name: str, sdp: str) -> dict[str, Any]:
        """The subscriber's answer; the server's next offer when it has one (the first offer carries
        only a few tracks, the rest follow once the subscriber has answered), else nothing."""
        peer = self.router.subscriber(name)
        assert peer is not None
        future = self._expect_offer(name)
        peer.handle_answer(sdp)
        settled = asyncio.ensure_future(peer.wait_settled(30))
        either: set[asyncio.Future[Any]] = {settled, future}
        await asyncio.wait(either, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if future.done():
            settled.cancel()
            offer, tracks = future.result()
            return {"sdp": offer, "tracks": tracks}
        future.cancel()
        return {}

    async def serve_link(self, node: str, url: str) -> dict[str, Any]:
        """Another node asks for every publication here on one link, as a span does (bench.cascade):
        it is one more subscriber, whose offers go to its `/offer`."""

        async def send_offer(sdp: str, tracks: dict[str, str]) -> None:
            async def deliver() -> None:
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"{url}/offer", json={"node": node, "sdp": sdp, "tracks": tracks}) as response:
                        peer.handle_answer((await response.json())["sdp"])

            asyncio.get_running_loop().create_task(deliver())

        peer = self.router.new_subscriber(f"node:{node}", send_offer)
        for publication in list(self.router.publications.values()):
            peer.subscribe(publication)
        return {}

    async def pull(self, origin_url: str, own_url: str, links: int, publications: list[str], as_subscribers: bool) -> dict[str, Any]:
        """Open `links` links to the server at `origin_url` (as that many nodes would), each bringing
        every publication there into this server's router; with `as_subscribers`, receive them the
        same way but as that many ordinary subscribers of the origin instead (the baseline)."""
        async with aiohttp.ClientSession() as http:
            for n in range(links):
                node = f"far{n}"
                self.links[node] = self.router.new_cascade(node)
                if not as_subscribers:
                    async with http.post(f"{origin_url}/link", json={"node": node, "url": own_url}) as response:
                        await response.read()
                    continue
                async with http.post(f"{origin_url}/subscribe", json={"name": node, "publications": publications}) as response:
                    offer = await response.json()
                while offer.get("sdp"):  # the origin offers a few tracks at a time
                    answer = await self.offered(node, offer["sdp"], offer["tracks"])
                    async with http.post(f"{origin_url}/answer", json={"name": node, "sdp": answer["sdp"]}) as response:
                        offer = await response.json()
        return {}

    async def offered(self, node: str, sdp: str, tracks: dict[str, str]) -> dict[str, Any]:
        """An offer on a link this server asked for: answered, its new tracks made publications here."""
        link = self.links[node]
        answer, added = await link.answer(sdp, tracks, lambda pid: Origin(pid, "remote", "camera"))
        for publication in added:
            self.router.add_cascaded(link, publication)
        return {"sdp": answer}

    def show_at(self, name: str, sizes: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """A subscriber's tile sizes (as a page's `tile_sizes`): simulcast layers follow them."""
        peer = self.router.subscriber(name)
        assert peer is not None
        peer.show_at({pid: (int(w), int(h)) for pid, (w, h) in sizes.items()})
        return {}

    def link(self, name: str) -> dict[str, Any]:
        """One subscriber's link: its estimate, what was sent, the layer each subscription gets."""
        peer = self.router.subscriber(name)
        assert peer is not None
        return {
            "estimate": peer.link.estimate, "sent_rate": peer.link.sent_rate, "paused": sorted(peer.link.paused),
            "steps_down": peer.link.allocator.steps_down, "steps_up": peer.link.allocator.steps_up,
            "octets_sent": sum(s.octets_sent for s in peer.subscriptions),
            "layers": {s.publication.id: [s.allowed_layer, s.sent_layer, s.sender._ssrc] for s in peer.subscriptions},
        }

    def stats(self) -> dict[str, Any]:
        """Relay totals and the forwarding-delay histogram."""
        c = self.counters
        subscriptions = [s for p in self.router.publications.values() for s in p.subscriptions]
        return {
            "subscriptions_waiting": sum(s.waiting_keyframe for s in subscriptions),
            "send_failures": sum(s._out.failures for s in subscriptions),
            "publication_packets": sorted(p.packets for p in self.router.publications.values()),
            "subscription_packets": sorted(s.packets_sent for s in subscriptions)[:: max(1, len(subscriptions) // 10)],
            "subscriptions": self.router.subscription_count,
            "packets_forwarded": c.packets_forwarded,
            "bytes_forwarded": c.bytes_forwarded,
            "packets_received": c.packets_received,
            "retransmissions": c.retransmissions,
            "retransmissions_skipped": c.retransmissions_skipped,
            "upstream_nacks": c.upstream_nacks,
            "upstream_retransmissions": c.upstream_retransmissions,
            "keyframe_requests": c.keyframe_requests,
            "delay_counts": list(c.forward_delay.counts),
            "delay_count": c.forward_delay.count,
            **self.recording_stats(),
        }

    def recording_stats(self) -> dict[str, Any]:
        """What the recorder wrote and what its writer thread cost (nothing when not recording)."""
        recorder = self.recorder
        if recorder is None:
            return {}
        tracks = list(recorder.tracks.values())
        return {"recorded_tracks": len(tracks), "recorded_frames": sum(t.frames for t in tracks),
                "recorded_bytes": sum(t.bytes_written for t in tracks), "recorder_cpu_seconds": recorder.cpu_seconds,
                "recorder_dropped": recorder.dropped, "recorder_lost": sum(t.lost for t in tracks)}


class MediaRelayBackend:
    """The naive forwarder: aiortc's MediaRelay, decoding each publication once, encoding per subscriber."""

    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: dict[str, MediaStreamTrack] = {}
        self.pcs: dict[str, RTCPeerConnection] = {}
        self._count = 0

    async def publish(self, name: str, sdp: str) -> dict[str, Any]:
        """Answer a publisher's offer; the received track becomes a publication."""
        pc = RTCPeerConnection()
        self.pcs[name] = pc
        ids: list[str] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._count += 1
            publication_id = f"p{self._count}"
            self.tracks[publication_id] = track
            ids.append(publication_id)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return {"sdp": pc.localDescription.sdp, "publications": ids}

    async def subscribe(self, name: str, publication_ids: list[str]) -> dict[str, Any]:
        """Offer the subscriber one relayed (re-encoded) track per publication."""
        pc = RTCPeerConnection()
        self.pcs[name] = pc
        for publication_id in publication_ids:
            pc.addTransceiver(self.relay.subscribe(self.tracks[publication_id]), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        tracks = {t.mid: pid for t, pid in zip(pc.getTransceivers(), publication_ids)}
        return {"sdp": pc.localDescription.sdp, "tracks": tracks}

    async def answer(self, name: str, sdp: str) -> dict[str, Any]:
        """The subscriber's answer."""
        await self.pcs[name].setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return {}

    def stats(self) -> dict[str, Any]:
        """No relay counters: the naive forwarder has none."""
        return {"subscriptions": sum(len(pc.getSenders()) for name, pc in self.pcs.items() if name.startswith("sub"))}


def make_app(backend: RelayBackend | MediaRelayBackend) -> web.Application:
    """The benchmark signaling: /publish, /subscribe, /answer, /stats; /link, /pull and /offer between two servers."""
    app = web.Application()

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await backend.publish(body["name"], body["sdp"]))

    async def subscribe(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await backend.subscribe(body["name"], body["publications"]))

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await backend.answer(body["name"], body["sdp"]) or {})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid(), **backend.stats()})

    async def link(request: web.Request) -> web.Response:
        body = await request.json()
        assert isinstance(backend, RelayBackend)
        return web.json_response(await backend.serve_link(body["node"], body["url"]))

    async def pull(request: web.Request) -> web.Response:
        body = await request.json()
        assert isinstance(backend, RelayBackend)
        return web.json_response(await backend.pull(body["url"], body["own_url"], int(body["links"]), body["publications"],
                                                    bool(body.get("as_subscribers"))))

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        assert isinstance(backend, RelayBackend)
        return web.json_response(await backend.offered(body["node"], body["sdp"], body["tracks"]))

    async def tile_sizes(request: web.Request) -> web.Response:
        body = await request.json()
        assert isinstance(backend, RelayBackend)
        return web.json_response(backend.show_at(body["name"], body["sizes"]))

    async def link_state(request: web.Request) -> web.Response:
        assert isinstance(backend, RelayBackend)
        return web.json_response(backend.link(request.query["name"]))

    app.router.add_post("/publish", publish)
    app.router.add_post("/tile_sizes", tile_sizes)  # bench.simulcast
    app.router.add_get("/subscriber_link", link_state)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/answer", answer)
    app.router.add_get("/stats", stats)
    app.router.add_post("/link", link)  # cascade links between two bench servers (bench.cascade)
    app.router.add_post("/pull", pull)
    app.router.add_post("/offer", offer)
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("relay", "mediarelay"), default="relay")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--record", help="record every publication into this directory (relay mode)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    check_hooks()
    backend = RelayBackend(args.record) if args.mode == "relay" else MediaRelayBackend()
    web.run_app(make_app(backend), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
