"""Several nodes over one Redis: a room lives on one node, and every way in reaches it.

Real processes (`python -m server run`, one redis-server of the test's own), real aiortc clients:
site A on node 1 and site B on node 2 see and hear each other in one room; WHIP and WHEP through
the node that does not host the room; a forged relay header refused; the room's node killed with
SIGKILL and the room back on a survivor, with video, within 10 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from server.relay_auth import RELAY_HEADER, RelayedFrom, relay_key, sign
from synthetic.client import FrameCounter, RoomClient, join_somewhere
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from synthetic.pattern import TestPatternTrack, ToneTrack
from tests.e2e.conftest import Server, running_server
from tests.server.test_store_outage import RedisProcess

pytestmark = pytest.mark.redis

SECRET = "nodes-test-secret-" + "0" * 46
ROOM = "consultation"
FAILOVER_BUDGET = 10.0


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path_factory.mktemp("redis"))
    process.start()
    yield process
    process.kill()


def start_node(stack: ExitStack, redis: RedisProcess, tmp: Path, node_id: str) -> Server:
    """A node of the deployment: the shared Redis and secret, its own id, data directory and port."""
    (tmp / node_id).mkdir()
    return stack.enter_context(
        running_server(tmp / node_id, secret=SECRET, REDIS_URL=redis.url, NODE_ID=node_id, RATE_LIMITS="off")
    )


def wait_seen(server: Server, node_ids: set[str], timeout: float = 10) -> None:
    """Until `server` lists these nodes as live (its view is refreshed by its heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(server.base_url + "/healthz", timeout=2) as response:
            if node_ids <= set(json.load(response)["nodes"]):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.base_url} does not see {node_ids}")
        time.sleep(0.1)  # the next heartbeat: nothing to wait on from outside the process


@pytest.fixture(scope="module")
def nodes(redis: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    tmp = tmp_path_factory.mktemp("nodes")
    with ExitStack() as stack:
        node1, node2 = start_node(stack, redis, tmp, "node-1"), start_node(stack, redis, tmp, "node-2")
        wait_seen(node1, {"node-1", "node-2"})
        yield node1, node2


def token(server: Server, identity: str, room: str = ROOM, grants: tuple[str, ...] = ("publish", "subscribe")) -> str:
    return server.device_token(identity, "police110", room=room, grants=grants)


def camera(name: str) -> dict[str, MediaStreamTrack]:
    return {"camera": TestPatternTrack(name, width=160, height=96, fps=15), "microphone": ToneTrack()}


def video_of(client: RoomClient, identity: str) -> MediaStreamTrack | None:
    for publication_id, track in client.received.items():
        publication = client.publications.get(publication_id)
        if publication is not None and publication.identity == identity and publication.kind == "video":
            return track
    return None


async def frames_from(client: RoomClient, identity: str, n: int = 3, timeout: float = 15) -> None:
    await client.wait_for(lambda c: video_of(c, identity) is not None, timeout=timeout)
    track = video_of(client, identity)
    assert track is not None
    async with FrameCounter(track) as counter:
        await counter.wait_frames(n, timeout=timeout)


async def health(http: aiohttp.ClientSession, server: Server) -> dict[str, object]:
    async with http.get(server.base_url + "/healthz") as response:
        return dict(await response.json())


async def test_sites_on_two_nodes_meet_in_one_room(nodes: tuple[Server, Server]) -> None:
    node1, node2 = nodes
    site_a = RoomClient(node1.base_url, ROOM, token(node1, "site-a"), name="site-a")
    site_b = RoomClient(node2.base_url, ROOM, token(node2, "site-b"), name="site-b")
    try:
        await site_a.connect()
        await site_a.publish(camera("Site A"))
        welcome = await site_b.connect()
        assert [p.identity for p in welcome.participants] == ["site-a"], "B's welcome lists A: one room, on node 1"
        assert welcome.nodes == sorted([node1.base_url, node2.base_url]), "the live nodes, for a page whose node dies"
        await site_b.publish(camera("Site B"))
        await asyncio.gather(frames_from(site_b, "site-a"), frames_from(site_a, "site-b"))
        async with aiohttp.ClientSession() as http:
            assert (await health(http, node1))["nodes"] == ["node-1", "node-2"]
            async with http.get(node1.base_url + "/metrics") as response:
                metrics = await response.text()
            async with http.get(node2.base_url + "/metrics") as response:
                relaying = await response.text()
        assert "cp_rooms 1.0" in metrics and "cp_participants 2.0" in metrics and "cp_nodes_live 2.0" in metrics
        assert 'cp_node_load{figure="participants",node="node-2"}' in metrics, "every live node's load, as it beat"
        assert "cp_rooms 0.0" in relaying and "cp_relayed_sessions 1.0" in relaying
    finally:
        await site_a.close()
        await site_b.close()


async def test_the_same_identity_is_never_live_on_two_nodes(nodes: tuple[Server, Server]) -> None:
    node1, node2 = nodes
    first = RoomClient(node1.base_url, ROOM, token(node1, "site-c"), name="first")
    second = RoomClient(node2.base_url, ROOM, token(node2, "site-c"), name="second")
    try:
        await first.connect()
        await second.connect()  # relayed to node 1, where the room's own rule replaces the first
        await first.wait_for(lambda c: c.replaced, timeout=10)
        assert second.connected
    finally:
        await first.close()
        await second.close()


async def whip_offer(pc: RTCPeerConnection) -> str:
    pc.addTransceiver(video_loop_track(encode_video_loop("VP8", width=160, height=96, seconds=1, fps=15), fps=15), direction="sendonly")
    pc.addTransceiver(audio_loop_track(encode_opus_loop(seconds=1)), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def post_sdp(http: aiohttp.ClientSession, url: str, bearer: str, sdp: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/sdp"}
    async with http.post(url, data=sdp, headers=headers) as response:
        assert response.status == 201, await response.text()
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        return await response.text(), response.headers["Location"]


async def test_whip_and_whep_through_the_node_without_the_room(nodes: tuple[Server, Server]) -> None:
    node1, node2 = nodes
    watcher = RoomClient(node1.base_url, ROOM, token(node1, "watcher", grants=("subscribe",)), name="watcher")
    encoder = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    encoder_token = token(node2, "encoder-1", grants=("publish",))
    player_token = token(node2, "player-1", grants=("subscribe",))
    try:
        await watcher.connect()  # the room is on node 1
        async with aiohttp.ClientSession() as http:
            answer, location = await post_sdp(http, f"{node2.base_url}/whip/{ROOM}", encoder_token, await whip_offer(encoder))
            assert location.startswith(f"/whip/{ROOM}/"), "the Location is a path on node 2, where the encoder posted"
            await encoder.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await frames_from(watcher, "encoder-1")

            player.addTransceiver("video", direction="recvonly")
            player.addTransceiver("audio", direction="recvonly")
            await player.setLocalDescription(await player.createOffer())
            answer, played = await post_sdp(http, f"{node2.base_url}/whep/{ROOM}/encoder-1", player_token, player.localDescription.sdp)
            await player.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            video = next(t.receiver.track for t in player.getTransceivers() if t.kind == "video")
            await asyncio.wait_for(video.recv(), timeout=15)

            async with http.delete(node2.base_url + played, headers={"Authorization": f"Bearer {player_token}"}) as response:
                assert response.status == 200, await response.text()
            async with http.delete(node2.base_url + location, headers={"Authorization": f"Bearer {encoder_token}"}) as response:
                assert response.status == 200, await response.text()
            await watcher.wait_for(lambda c: all(p.identity != "encoder-1" for p in c.publications.values()), timeout=10)
            async with http.delete(node2.base_url + location, headers={"Authorization": f"Bearer {encoder_token}"}) as response:
                assert response.status == 404, "ended once, through node 2, on node 1"
    finally:
        await encoder.close()
        await player.close()
        await watcher.close()


async def test_a_relay_header_not_signed_by_a_node_is_refused(nodes: tuple[Server, Server]) -> None:
    node1, _ = nodes
    stranger = sign(relay_key(b"not-the-secret"), RelayedFrom(node="node-2", address="10.9.9.9", scheme="http", host="x", at=time.time()))
    async with aiohttp.ClientSession() as http:
        for forged in ("garbage", stranger):
            headers = {RELAY_HEADER: forged, "Authorization": f"Bearer {token(node1, 'forger')}", "Content-Type": "application/sdp"}
            async with http.post(f"{node1.base_url}/whip/{ROOM}", data="v=0\r\n", headers=headers) as response:
                assert response.status == 403
                assert (await response.text()).startswith("relay_forged")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node1.base_url + "/ws", headers={RELAY_HEADER: forged})
            assert refused.value.status == 403


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
async def test_a_dead_nodes_room_is_placed_again_and_video_comes_back(how: signal.Signals, tmp_path: Path) -> None:
    """Killed: its sockets close at once. Frozen (a hung process, a machine gone): nothing closes,
    and the other nodes notice it by its missing heartbeat."""
    room = "command"
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        with ExitStack() as stack:
            node1, node2, node3 = (start_node(stack, redis, tmp_path, f"node-{i}") for i in (1, 2, 3))
            assert node3.process is not None
            stack.callback(node3.process.kill)  # a frozen process would not hear the end's SIGTERM
            wait_seen(node3, {"node-1", "node-2", "node-3"})
            await _fail_over(room, node1, node2, node3, how)
    finally:
        redis.kill()


async def _fail_over(room: str, node1: Server, node2: Server, node3: Server, how: signal.Signals) -> None:
    assert node3.process is not None
    site_a = RoomClient(node3.base_url, room, token(node3, "site-a", room), name="site-a")
    site_b = RoomClient(node2.base_url, room, token(node2, "site-b", room), name="site-b")
    clients = [site_a, site_b]
    try:
        welcome = await site_a.connect()  # every node idle: the room goes to the node asked, node 3
        await site_a.publish(camera("Site A"))
        await site_b.connect()  # relayed by node 2 to node 3
        await frames_from(site_b, "site-a")
        assert sorted(welcome.nodes) == sorted([node1.base_url, node2.base_url, node3.base_url])

        node3.process.send_signal(how)
        dead = time.monotonic()
        await asyncio.wait_for(site_b.wait_disconnected(), timeout=8)  # node 2 cut the relayed socket
        cut = time.monotonic() - dead
        await site_a.drop()  # its node is gone: a page's own checks (ICE, ping) notice as much
        deadline = dead + FAILOVER_BUDGET
        survivors = [url for url in welcome.nodes if url != node3.base_url]
        site_a = await join_somewhere(survivors, room, token(node2, "site-a", room), "site-a-again", deadline)
        clients.append(site_a)
        await site_a.publish(camera("Site A"))
        site_b = await join_somewhere([node2.base_url], room, token(node2, "site-b", room), "site-b-again", deadline)
        clients.append(site_b)
        await frames_from(site_b, "site-a", timeout=max(0.1, deadline - time.monotonic()))
        back = time.monotonic() - dead
        print(f"failover ({how.name}): relayed socket cut after {cut:.2f} s, video back after {back:.2f} s")
        assert back < FAILOVER_BUDGET
        async with aiohttp.ClientSession() as http:
            # a page served by the dead node reconnects through a survivor: its origin was a node's
            async with http.ws_connect(node2.base_url + "/ws", headers={"Origin": node3.base_url}):
                pass
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node2.base_url + "/ws", headers={"Origin": "http://127.0.0.1:1"})
            assert refused.value.status == 403, "no origin that was never a node's"
    finally:
        for client in clients:
            await client.close()
