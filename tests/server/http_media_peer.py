"""A WHIP encoder or a WHEP player in a process of its own, for tests that kill it with SIGKILL.

    python -m tests.server.http_media_peer whip URL TOKEN
    python -m tests.server.http_media_peer whep URL TOKEN

Prints "connected" once its peer connection is up (a player: once a video frame arrived), then
runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track


async def main(mode: str, url: str, token: str) -> None:
    """Publish (whip) or play (whep) at `url` until killed."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: connected.set() if pc.connectionState == "connected" else None)
    if mode == "whip":
        pc.addTransceiver(video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1, fps=15), fps=15), direction="sendonly")
        pc.addTransceiver(audio_loop_track(encode_opus_loop(seconds=1)), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
        async with http.post(url, data=pc.localDescription.sdp, headers=headers) as response:
            if response.status != 201:
                raise SystemExit(f"{mode} refused: {response.status} {await response.text()}")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=await response.text(), type="answer"))
    await connected.wait()
    if mode == "whep":
        video = next(t.receiver.track for t in pc.getTransceivers() if t.kind == "video")
        await video.recv()
        asyncio.ensure_future(_drain(video))
    print("connected", flush=True)
    await asyncio.Event().wait()


async def _drain(track: object) -> None:
    while True:
        await track.recv()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
