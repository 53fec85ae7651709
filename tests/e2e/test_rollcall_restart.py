"""A roll-call in progress survives SIGKILL of the server over RedisStore: it resumes with its remaining time."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from signaling.rollcall import RollCallAnswer, RollCallCall, RollCallClose, RollCallStart, RollCallSync
from synthetic.client import RoomClient
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.e2e.test_command_restart import ServerProcess, durable_redis  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis

VIDEO = encode_video_loop("VP8", width=160, height=90, fps=5, seconds=2, bitrate=150_000)


async def _site(server: ServerProcess, identity: str, site: str, *, grants: tuple[str, ...] = ("publish",),
                video: bool = True) -> tuple[RoomClient, list[object]]:
    client = RoomClient(f"http://127.0.0.1:{server.port}", "consultation", server.token(identity, site, grants), name=identity)
    seen: list[object] = []
    client.on_message = seen.append
    await client.connect()
    if video:
        await client.publish({"camera": video_loop_track(VIDEO, fps=5)})
        await client.wait_for(lambda c: c.publisher_state == "connected", 15)
    return client, seen


async def _call_for(client: RoomClient, seen: list[object], rid: str) -> RollCallCall:
    def found() -> RollCallCall | None:
        return next((m for m in seen if isinstance(m, RollCallCall) and m.rollcall_id == rid), None)
    await client.wait_for(lambda _: found() is not None, 15)
    call = found()
    assert call is not None
    return call


def _state(server: ServerProcess, rid: str, token: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/rollcalls/{rid}.json?token={token}", timeout=10) as resp:
        return json.loads(resp.read())


async def _until_snapshot(server: ServerProcess, rid: str, token: str) -> None:
    async with asyncio.timeout(10):
        while not _state(server, rid, token)["sites"][0]["snapshot"]:
            await asyncio.sleep(0.1)  # another process: its HTTP view is all there is to watch


async def test_a_rollcall_resumes_after_sigkill_with_the_same_deadlines(durable_redis: str, tmp_path: Path) -> None:  # noqa: F811
    server = ServerProcess(durable_redis, tmp_path)
    server.start()
    try:
        caller, _ = await _site(server, "chief-desk", "command_centre", grants=("subscribe", "moderate"), video=False)
        a, a_seen = await _site(server, "county01", "jiangbei")
        b, b_seen = await _site(server, "county02", "jiangnan")
        started = await caller.request(RollCallStart(sites=["jiangbei", "jiangnan", "linjiang"], window=20, grace=0))
        rid = started.rollcall_id  # type: ignore[attr-defined]
        await _call_for(a, a_seen, rid)
        # the keyframe for the snapshot may take a moment: the answer counts once video has arrived
        assert (await a.request(RollCallAnswer(rollcall_id=rid))).outcome == "answered"  # type: ignore[attr-defined]
        before = await _call_for(b, b_seen, rid)
        token = server.token("chief-desk", "command_centre", ("subscribe", "moderate"))
        await _until_snapshot(server, rid, token)
        server.kill()
        for client in (caller, a, b):
            await client.close()

        server.start()
        b, b_seen = await _site(server, "county02", "jiangnan")
        await b._send(RollCallSync())  # noqa: SLF001 - a sync has no reply: the calls come as messages
        after = await _call_for(b, b_seen, rid)
        assert after.state == "calling" and after.deadline == pytest.approx(before.deadline)
        assert 0 < after.deadline - after.now < 20  # the remaining time, not a fresh window
        answer = await b.request(RollCallAnswer(rollcall_id=rid))
        assert answer.outcome == "answered"  # type: ignore[attr-defined]
        caller, _ = await _site(server, "chief-desk", "command_centre", grants=("subscribe", "moderate"), video=False)
        await caller.request(RollCallClose(rollcall_id=rid))
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/rollcalls/{rid}.json?token={token}", timeout=10) as resp:
            result = json.loads(resp.read())
        assert [row["outcome"] for row in result["sites"]] == ["answered", "answered", "absent"]
        assert len(result["resumed"]) == 1 and not result["open"]
        assert result["sites"][0]["snapshot"], "the snapshot taken before the kill is still on record"
        for client in (caller, b):
            await client.close()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
