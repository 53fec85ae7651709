"""One lifecycle for every way in: a newer session replaces the older, removal and the lock reach
every way in, a lost participant keeps its tiles for the grace period and takes them over when it
comes back, and one that does not come back is cleaned away."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from media.aiortc.ice import close_peer_connection
from signaling.control import LockRoom, RaiseHand, RemoveParticipant
from signaling.messages import ParticipantLeft, ParticipantUpdated, PublicationRemoved, ServerMessage
from synthetic.client import ClientError, FrameCounter, RoomClient
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.server.conftest import Platform, PlatformFactory

ROOM = "consultation"
GRACE = 6.0
REPO = Path(__file__).resolve().parents[2]


def _client(platform: Platform, identity: str, *, grants: tuple[str, ...] = ("publish", "subscribe"), site: str = "jiangbei") -> RoomClient:
    return RoomClient(platform.url, ROOM, platform.token(identity, grants=grants, site=site), name=identity)


@pytest.fixture(scope="module")
def loops() -> tuple[list[bytes], list[bytes]]:
    """One second of VP8 and Opus, encoded once for every test here."""
    return encode_video_loop("VP8", width=160, height=96, seconds=1, fps=15), encode_opus_loop(seconds=1)


async def _publish(client: RoomClient, loops: tuple[list[bytes], list[bytes]]) -> None:
    video, audio = loops
    await client.publish({"camera": video_loop_track(video, fps=15), "microphone": audio_loop_track(audio)})


def _video_of(watcher: RoomClient, identity: str) -> str:
    return next(p.publication_id for p in watcher.publications.values() if p.identity == identity and p.kind == "video")


async def _watched(watcher: RoomClient, unit: RoomClient, loops: tuple[list[bytes], list[bytes]]) -> str:
    """Connect a wall and a unit that publishes; the unit's video publication once frames reach the wall."""
    await watcher.connect()
    await unit.connect()
    await _publish(unit, loops)
    await watcher.wait_for(lambda w: len(w.received) == 2, timeout=15)
    video_id = _video_of(watcher, unit.name)
    async with FrameCounter(watcher.received[video_id]) as frames:
        await frames.wait_frames(5, timeout=15)
    return video_id


async def _whep_offer() -> RTCPeerConnection:
    player = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player.addTransceiver("video", direction="recvonly")
    player.addTransceiver("audio", direction="recvonly")
    await player.setLocalDescription(await player.createOffer())
    return player


async def _post_whep(http: aiohttp.ClientSession, platform: Platform, token: str, target: str, sdp: str) -> tuple[int, str]:
    async with http.post(
        f"{platform.url}/whep/{ROOM}/{target}", data=sdp,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"},
    ) as response:
        return response.status, await response.text()


async def test_a_newer_session_of_an_identity_closes_the_older_one(platform: Platform) -> None:
    first, second = _client(platform, "levee"), _client(platform, "levee")
    try:
        await first.connect()
        await second.connect()
        async with asyncio.timeout(5):
            await first.wait_disconnected()
        assert first.replaced, "the older session is told why it was closed"
        room = platform.services.rooms.rooms[ROOM]
        assert list(room.participants) == ["levee"]
        assert room.participants["levee"].session_id != ""
        with pytest.raises(ClientError):
            await first.request(RaiseHand(raised=True), timeout=2)
        await second.request(RaiseHand(raised=True), timeout=5)  # the newer one acts
        assert platform.services.lifecycle.replaced == 1
    finally:
        await first.close()
        await second.close()


async def test_the_removed_identity_can_do_nothing_by_any_way_in(platform: Platform, loops: tuple[list[bytes], list[bytes]]) -> None:
    mayor = RoomClient(platform.url, ROOM, platform.token("mayor-laptop", site="office", grants=("publish", "subscribe", "moderate")), name="mayor-laptop")
    older, newer = _client(platform, "target"), _client(platform, "target")
    player = await _whep_offer()
    async with aiohttp.ClientSession() as http:
        try:
            await mayor.connect()
            await older.connect()
            await newer.connect()
            await _publish(newer, loops)
            await mayor.wait_for(lambda m: any(p.identity == "target" for p in m.publications.values()), timeout=10)
            await mayor.request(RemoveParticipant(identity="target", reason="wrong room"))
            async with asyncio.timeout(5):
                await newer.wait_disconnected()
            await mayor.wait_for(lambda m: "target" not in m.participants and not m.publications, timeout=5)
            for session in (older, newer):
                with pytest.raises(ClientError):
                    await session.request(RaiseHand(raised=True), timeout=2)
            again = _client(platform, "target")
            with pytest.raises(ClientError) as refused:
                await again.connect()
            assert refused.value.code == "removed_from_room"
            await _publish(mayor, loops)
            await mayor.wait_for(lambda m: m.publications != {}, timeout=5)
            status, body = await _post_whep(http, platform, platform.token("target", grants=("subscribe",)), "mayor-laptop", player.localDescription.sdp)
            assert status == 403 and "removed_from_room" in body
            async with http.post(
                f"{platform.url}/whip/{ROOM}", data=player.localDescription.sdp,
                headers={"Authorization": f"Bearer {platform.token('target', grants=('publish',))}", "Content-Type": "application/sdp"},
            ) as response:
                assert response.status == 403
        finally:
            await player.close()
            for client in (mayor, older, newer):
                await client.close()


async def test_a_locked_room_refuses_outsiders_on_every_way_in(platform: Platform, loops: tuple[list[bytes], list[bytes]]) -> None:
    mayor = RoomClient(platform.url, ROOM, platform.token("mayor-laptop", site="office", grants=("publish", "subscribe", "moderate")), name="mayor-laptop")
    member = _client(platform, "member")
    player = await _whep_offer()
    async with aiohttp.ClientSession() as http:
        try:
            await mayor.connect()
            await member.connect()
            await _publish(mayor, loops)
            await member.wait_for(lambda m: len(m.publications) == 2, timeout=10)
            await mayor.request(LockRoom(locked=True))
            status, body = await _post_whep(http, platform, platform.token("outsider", grants=("subscribe",)), "mayor-laptop", player.localDescription.sdp)
            assert status == 403 and "room_locked" in body
            with pytest.raises(ClientError) as refused:
                await _client(platform, "outsider").connect()
            assert refused.value.code == "room_locked"
        finally:
            await player.close()
            await mayor.close()
            await member.close()


async def test_a_lost_participant_keeps_its_tiles_and_takes_them_over_when_it_comes_back(
    make_platform: PlatformFactory, loops: tuple[list[bytes], list[bytes]]
) -> None:
    platform = await make_platform(reconnect_grace=GRACE)
    watcher = _client(platform, "wall-screen", grants=("subscribe",), site="command_centre")
    seen: list[ServerMessage] = []
    watcher.on_message = seen.append
    unit = _client(platform, "levee")
    back = _client(platform, "levee")
    try:
        video_id = await _watched(watcher, unit, loops)
        publication_ids = set(watcher.publications)
        async with FrameCounter(watcher.received[video_id]) as frames:
            await unit.drop()
            await watcher.wait_for(lambda w: w.participants["levee"].state == "reconnecting", timeout=5)

            await back.connect()
            await _publish(back, loops)
            await watcher.wait_for(lambda w: w.participants["levee"].state == "connected", timeout=10)
            before = frames.count
            await frames.wait_frames(before + 10, timeout=10)  # the same track on the wall carries the new camera

        assert set(watcher.publications) == publication_ids, "the tiles keep their publications"
        assert watcher.received[video_id] is frames.track
        assert not [m for m in seen if isinstance(m, (ParticipantLeft, PublicationRemoved))], "no tile went away"
        states = [m.participant.state for m in seen if isinstance(m, ParticipantUpdated) and m.participant.identity == "levee"]
        assert states == ["reconnecting", "connected"]
        assert platform.services.lifecycle.ghosts_cleaned == 0
    finally:
        for client in (watcher, unit, back):
            await client.close()


async def test_a_participant_that_does_not_come_back_is_gone_after_the_grace_period(
    make_platform: PlatformFactory, loops: tuple[list[bytes], list[bytes]]
) -> None:
    platform = await make_platform(reconnect_grace=GRACE)
    watcher = _client(platform, "wall-screen", grants=("subscribe",), site="command_centre")
    unit = _client(platform, "levee")
    try:
        await _watched(watcher, unit, loops)
        dropped = time.monotonic()
        await unit.drop()
        await watcher.wait_for(lambda w: w.participants.get("levee") is not None and w.participants["levee"].state == "reconnecting", timeout=5)
        await watcher.wait_for(lambda w: "levee" not in w.participants and not w.publications, timeout=GRACE + 5)
        took = time.monotonic() - dropped
        assert GRACE - 0.5 < took < GRACE + 5, took
        room = platform.services.rooms.rooms[ROOM]
        assert set(room.participants) == {"wall-screen"}
        assert not room.router.publications and room.router.subscription_count == 0
        assert platform.services.lifecycle.ghosts_cleaned == 1
        async with aiohttp.ClientSession() as http, http.get(platform.url + "/metrics") as response:
            text = await response.text()
        assert "cp_ghosts_cleaned_total 1.0" in text and "cp_participants 1.0" in text
    finally:
        await watcher.close()
        await unit.close()


async def test_a_publisher_whose_udp_is_black_holed_is_reconnecting_within_5_s_and_gone_after_the_grace_period(
    make_platform: PlatformFactory, loops: tuple[list[bytes], list[bytes]]
) -> None:
    platform = await make_platform(reconnect_grace=GRACE)
    watcher = _client(platform, "wall-screen", grants=("subscribe",), site="command_centre")
    unit = _client(platform, "levee", grants=("publish",))
    try:
        await _watched(watcher, unit, loops)
        cut = time.monotonic()
        unit.impair(drop=lambda _datagram: True)  # the WebSocket lives on
        await watcher.wait_for(lambda w: w.participants["levee"].state == "reconnecting", timeout=5)
        reconnecting_after = time.monotonic() - cut
        await watcher.wait_for(lambda w: not w.publications, timeout=GRACE + 5)
        async with asyncio.timeout(5):
            await unit.wait_disconnected()  # the server ended it: its client must start afresh
        print(f"black-holed publisher: reconnecting after {reconnecting_after:.1f} s, gone after {time.monotonic() - cut:.1f} s")
        assert reconnecting_after < 5
    finally:
        await watcher.close()
        await unit.close()


async def test_a_short_outage_heals_on_the_same_connection(make_platform: PlatformFactory, loops: tuple[list[bytes], list[bytes]]) -> None:
    platform = await make_platform(reconnect_grace=20.0)
    watcher = _client(platform, "wall-screen", grants=("subscribe",), site="command_centre")
    unit = _client(platform, "levee", grants=("publish",))
    outage = True
    try:
        video_id = await _watched(watcher, unit, loops)
        unit.impair(drop=lambda _datagram: outage)
        await watcher.wait_for(lambda w: w.participants["levee"].state == "reconnecting", timeout=6)
        outage = False
        await watcher.wait_for(lambda w: w.participants["levee"].state == "connected", timeout=5)
        async with FrameCounter(watcher.received[video_id]) as frames:
            await frames.wait_frames(10, timeout=10)
    finally:
        await watcher.close()
        await unit.close()


async def test_a_hundred_whep_offers_that_never_connect_leave_the_fd_count_where_it_was_within_60_s(
    platform: Platform, loops: tuple[list[bytes], list[bytes]]
) -> None:
    unit = _client(platform, "levee", grants=("publish",))
    try:
        await unit.connect()
        await _publish(unit, loops)
        room = platform.services.rooms.rooms[ROOM]
        baseline = len(os.listdir("/proc/self/fd"))
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            for index in range(100):
                player = await _whep_offer()
                token = platform.token(f"ghost-player-{index}", grants=("subscribe",))
                status, _ = await _post_whep(http, platform, token, "levee", player.localDescription.sdp)
                assert status == 201
                await close_peer_connection(player)  # never connects
        assert room.router.peer_count == 101
        while room.router.peer_count > 1 or len(os.listdir("/proc/self/fd")) > baseline + 2:
            assert time.monotonic() - started < 60, (room.router.peer_count, len(os.listdir("/proc/self/fd")), baseline)
            await asyncio.sleep(0.5)  # nothing to wait on: the server's connect timeout runs out
        print(f"100 WHEP offers that never connect: closed, fds back to {len(os.listdir('/proc/self/fd'))} "
              f"(baseline {baseline}) after {time.monotonic() - started:.1f} s")
        assert platform.services.lifecycle.failures.get("never_connected", 0) == 100
        assert room.connection_count == 1  # the encoder's session
    finally:
        await unit.close()


async def _start_peer(mode: str, url: str, token: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.server.http_media_peer", mode, url, token,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
    except asyncio.TimeoutError:
        process.kill()
        raise
    if line.strip() != b"connected":
        process.kill()
        assert process.stderr is not None
        raise AssertionError(f"{mode} peer failed: {line!r} {(await process.stderr.read()).decode()[-2000:]}")
    return process


async def _metric(platform: Platform, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(platform.url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_a_killed_whip_encoder_and_a_killed_whep_player_are_gone_within_the_grace_period(make_platform: PlatformFactory) -> None:
    platform = await make_platform(reconnect_grace=GRACE)
    watcher = _client(platform, "wall-screen", grants=("subscribe",), site="command_centre")
    encoder = player = None
    try:
        await watcher.connect()
        encoder = await _start_peer("whip", f"{platform.url}/whip/{ROOM}", platform.token("levee-encoder", grants=("publish",)))
        await watcher.wait_for(lambda w: sum(p.identity == "levee-encoder" for p in w.publications.values()) == 2, timeout=10)
        player = await _start_peer("whep", f"{platform.url}/whep/{ROOM}/levee-encoder", platform.token("wall-player", grants=("subscribe",)))
        room = platform.services.rooms.rooms[ROOM]
        assert await _metric(platform, "cp_participants") == 2
        assert await _metric(platform, "cp_subscriptions") == 4  # the wall's two and the player's two

        killed = time.monotonic()
        player.kill()
        while room.router.subscription_count > 2:
            assert time.monotonic() - killed < GRACE + 5, "the dead player is still forwarded to"
            await asyncio.sleep(0.2)
        player_gone = time.monotonic() - killed

        killed = time.monotonic()
        encoder.kill()
        await watcher.wait_for(lambda w: w.participants.get("levee-encoder", None) is not None
                               and w.participants["levee-encoder"].state == "reconnecting", timeout=5)
        await watcher.wait_for(lambda w: "levee-encoder" not in w.participants and not w.publications, timeout=GRACE + 5)
        encoder_gone = time.monotonic() - killed
        assert await _metric(platform, "cp_participants") == 1
        assert await _metric(platform, "cp_publications") == 0
        assert await _metric(platform, "cp_subscriptions") == 0
        assert await _metric(platform, "cp_ghosts_cleaned_total") == 2
        print(f"SIGKILL: player gone after {player_gone:.1f} s, encoder's tiles gone after {encoder_gone:.1f} s (grace {GRACE:.0f} s)")
    finally:
        for process in (encoder, player):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await watcher.close()
