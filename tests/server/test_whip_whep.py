"""WHIP publish from an aiortc client, WHEP playback by another: frames arrive."""

from __future__ import annotations

import asyncio

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from synthetic.client import FrameCounter
from synthetic.pattern import TestPatternTrack, ToneTrack
from tests.server.conftest import Platform


async def test_a_whip_encoder_is_played_back_over_whep_and_ends_on_delete(platform: Platform) -> None:
    encoder = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    encoder.addTransceiver(TestPatternTrack("Levee", width=160, height=96, fps=10), direction="sendonly")
    encoder.addTransceiver(ToneTrack(), direction="sendonly")
    publish_token = platform.token("levee-encoder", grants=("publish",))
    async with aiohttp.ClientSession() as http:
        try:
            await encoder.setLocalDescription(await encoder.createOffer())
            async with http.post(
                platform.url + "/whip/consultation",
                data=encoder.localDescription.sdp,
                headers={"Authorization": f"Bearer {publish_token}", "Content-Type": "application/sdp"},
            ) as response:
                assert response.status == 201
                assert response.content_type == "application/sdp"
                location = response.headers["Location"]
                await encoder.setRemoteDescription(RTCSessionDescription(sdp=await response.text(), type="answer"))
            room = platform.services.rooms.rooms["consultation"]
            assert {p.kind for p in room.router.publications.values()} == {"audio", "video"}
            assert all(p.source == "whip" and p.owner == "levee-encoder" for p in room.router.publications.values())

            player.addTransceiver("video", direction="recvonly")
            player.addTransceiver("audio", direction="recvonly")
            await player.setLocalDescription(await player.createOffer())
            async with http.post(
                platform.url + "/whep/consultation/levee-encoder",
                data=player.localDescription.sdp,
                headers={"Authorization": f"Bearer {platform.token('wall', grants=('subscribe',))}", "Content-Type": "application/sdp"},
            ) as response:
                assert response.status == 201
                await player.setRemoteDescription(RTCSessionDescription(sdp=await response.text(), type="answer"))
            tracks = {t.kind: t.receiver.track for t in player.getTransceivers()}
            async with FrameCounter(tracks["video"]) as video, FrameCounter(tracks["audio"]) as audio:
                await asyncio.gather(video.wait_frames(5, timeout=20), audio.wait_frames(5, timeout=20))

            async with http.delete(platform.url + location, headers={"Authorization": f"Bearer {publish_token}"}) as response:
                assert response.status == 200
            assert not room.router.publications
            assert "levee-encoder" not in room.participants
        finally:
            await encoder.close()
            await player.close()


async def test_whep_for_someone_who_publishes_nothing_is_404(platform: Platform) -> None:
    player = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player.addTransceiver("video", direction="recvonly")
    await player.setLocalDescription(await player.createOffer())
    async with aiohttp.ClientSession() as http:
        async with http.post(
            platform.url + "/whep/consultation/nobody",
            data=player.localDescription.sdp,
            headers={"Authorization": f"Bearer {platform.token('wall', grants=('subscribe',))}", "Content-Type": "application/sdp"},
        ) as response:
            assert response.status == 404
            assert "not_publishing" in await response.text()
    await player.close()


async def test_only_its_own_identity_may_delete_a_whip_resource(platform: Platform) -> None:
    encoder = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    encoder.addTransceiver(TestPatternTrack("Levee", width=160, height=96, fps=10), direction="sendonly")
    owner = platform.token("levee-encoder", grants=("publish",))
    someone_else = platform.token("other-encoder", grants=("publish",))
    async with aiohttp.ClientSession() as http:
        try:
            await encoder.setLocalDescription(await encoder.createOffer())
            async with http.post(
                platform.url + "/whip/consultation", data=encoder.localDescription.sdp,
                headers={"Authorization": f"Bearer {owner}", "Content-Type": "application/sdp"},
            ) as response:
                assert response.status == 201
                location = response.headers["Location"]
            async with http.delete(platform.url + location, headers={"Authorization": f"Bearer {someone_else}"}) as response:
                assert response.status == 403 and "forbidden" in await response.text()
            assert "levee-encoder" in platform.services.rooms.rooms["consultation"].participants
            async with http.delete(platform.url + location, headers={"Authorization": f"Bearer {owner}"}) as response:
                assert response.status == 200
            async with http.delete(platform.url + location, headers={"Authorization": f"Bearer {owner}"}) as response:
                assert response.status == 404
            assert "levee-encoder" not in platform.services.rooms.rooms["consultation"].participants
        finally:
            await encoder.close()
