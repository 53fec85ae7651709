"""An aiortc WHEP player: plays one participant's video and audio for a while, counting decoded frames.

    python -m tests.interop.whep_player URL TOKEN SECONDS

Offers recvonly video and audio, retrying while the server answers 404 (not publishing yet),
decodes everything it receives, and prints a JSON summary as its last line: {"status": the
answer's HTTP status, "frames": decoded video frames, "recent": those in the last 5 s,
"size": [width, height] of the last frame, "state": the connection's final state}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from media.aiortc.ice import close_peer_connection

RECENT = 5.0
RETRY_FOR = 30.0
RETRY_EVERY = 0.25


async def offer_until_answered(http: aiohttp.ClientSession, url: str, token: str, sdp: str) -> tuple[int, str, str]:
    """POST the offer until the participant publishes (404 until then): status, answer, Location."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
        async with http.post(url, data=sdp, headers=headers) as response:
            text = await response.text()
            if response.status != 404 or time.monotonic() > deadline:
                return response.status, text, response.headers.get("Location", "")
        await asyncio.sleep(RETRY_EVERY)  # polling the endpoint: the publisher is another process


async def count_frames(track: MediaStreamTrack, arrivals: list[float], sizes: list[tuple[int, int]]) -> None:
    """Decode `track` until it ends, noting when each video frame arrived."""
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, VideoFrame):
                arrivals.append(time.monotonic())
                sizes[:] = [(frame.width, frame.height)]
    except MediaStreamError:
        return


async def play(url: str, token: str, seconds: float) -> dict[str, object]:
    """Play for `seconds` from the answer on; the summary."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    arrivals: list[float] = []
    sizes: list[tuple[int, int]] = []
    consumers: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession() as http:
        try:
            await pc.setLocalDescription(await pc.createOffer())
            status, answer, location = await offer_until_answered(http, url, token, pc.localDescription.sdp)
            if status != 201:
                return {"status": status, "error": answer, "frames": 0, "recent": 0}
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            for transceiver in pc.getTransceivers():
                sink: list[float] = arrivals if transceiver.kind == "video" else []
                consumers.append(asyncio.create_task(count_frames(transceiver.receiver.track, sink, sizes)))
            await asyncio.sleep(seconds)  # the length of the run, not a wait for something
            now = time.monotonic()
            state = pc.connectionState
            if location:
                async with http.delete(url.rsplit("/whep/", 1)[0] + location, headers={"Authorization": f"Bearer {token}"}):
                    pass
        finally:
            for task in consumers:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            await close_peer_connection(pc)
    return {
        "status": status, "frames": len(arrivals), "recent": sum(1 for t in arrivals if now - t <= RECENT),
        "size": list(sizes[0]) if sizes else None, "state": state,
    }


def main(argv: list[str]) -> int:
    url, token, seconds = argv[0], argv[1], float(argv[2])
    summary = asyncio.run(play(url, token, seconds))
    print(json.dumps(summary), flush=True)
    return 0 if summary.get("status") == 201 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
