"""A sequential roll-call over real sessions: in time, late, no video; snapshots; spotlight; restart folding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from server.rollcall.domain import fold
from server.rollcall.service import read_all, stream_of
from signaling.rollcall import (
    RollCallAnswer,
    RollCallAnswerResult,
    RollCallCall,
    RollCallCallEnded,
    RollCallSpotlight,
    RollCallStart,
    RollCallStarted,
)
from synthetic.client import ClientError


async def test_a_sequence_scores_in_time_late_and_no_video_and_keeps_a_real_snapshot(make_platform) -> None:
    p = await make_platform()
    caller = await p.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    a = await p.connect("desk-county01", "jiangbei", video=True)
    b = await p.connect("desk-county02", "jiangnan", video=True)
    c = await p.connect("desk-county03", "linjiang")  # joined, but no camera
    started = await caller.client.request(RollCallStart(sites=["jiangbei", "jiangnan", "linjiang"], window=30, grace=10))
    assert isinstance(started, RollCallStarted)
    rid = started.rollcall_id

    call = await a.wait_message(RollCallCall, rollcall_id=rid)
    assert call.deadline - call.now == 30
    spot = await caller.wait_message(RollCallSpotlight, rollcall_id=rid, site="jiangbei")
    assert spot.identity == "desk-county01"
    p.clock.advance(3.5)
    reply = await a.client.request(RollCallAnswer(rollcall_id=rid))
    assert isinstance(reply, RollCallAnswerResult) and (reply.outcome, reply.response_time) == ("answered", 3.5)

    await b.wait_message(RollCallCall, rollcall_id=rid)  # moved on at once after the answer
    p.clock.advance(30)
    await b.wait_message(RollCallCallEnded, rollcall_id=rid, outcome="overdue")
    await c.wait_message(RollCallCall, rollcall_id=rid)
    p.clock.advance(2)
    late = await b.client.request(RollCallAnswer(rollcall_id=rid))
    assert (late.outcome, late.response_time) == ("late", 32.0)
    no_video = await c.client.request(RollCallAnswer(rollcall_id=rid))
    assert no_video.outcome == "no_video"
    with pytest.raises(ClientError) as refused:
        await a.client.request(RollCallAnswer(rollcall_id=rid))
    assert refused.value.code == "already_settled"

    p.clock.advance(28)
    p.clock.advance(10)
    await p.rollcalls.wait_for(lambda: rid not in p.rollcalls.active, 10)
    rc = await p.rollcalls.get(rid)
    assert [rc.results[s].outcome for s in rc.sites] == ["answered", "late", "no_video"]
    assert rc.results["linjiang"].snapshot is None
    for site in ("jiangbei", "jiangnan"):
        path = p.rollcalls.files.path(rc.results[site].snapshot or "")
        assert path is not None
        pixels = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("L"))
        assert pixels.shape == (90, 160) and pixels.std() > 10
    await caller.wait_message(RollCallSpotlight, rollcall_id=rid, site=None)
    # the log alone tells the same story
    assert fold(await read_all(p.services, stream_of(rid))).totals() == rc.totals()


async def test_a_press_from_a_site_that_stopped_sending_is_no_video(make_platform) -> None:
    p = await make_platform()
    caller = await p.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    a = await p.connect("desk-county01", "jiangbei", video=True)
    started = await caller.client.request(RollCallStart(sites=["jiangbei"], mode="all", window=30))
    await a.wait_message(RollCallCall, rollcall_id=started.rollcall_id)
    p.publication_of("desk-county01").last_packet_at -= 5  # as if the camera had stopped 5 s ago
    p.publication_of("desk-county01").last_packet_at = None
    reply = await a.client.request(RollCallAnswer(rollcall_id=started.rollcall_id))
    assert reply.outcome == "no_video"


async def test_only_callers_may_start_and_unknown_sites_are_refused(make_platform) -> None:
    p = await make_platform()
    site = await p.connect("desk-county01", "jiangbei")
    with pytest.raises(ClientError) as refused:
        await site.client.request(RollCallStart(sites=["jiangnan"]))
    assert refused.value.code == "forbidden"
    caller = await p.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    with pytest.raises(ClientError) as bad:
        await caller.client.request(RollCallStart(sites=["atlantis"]))
    assert bad.value.code == "bad_sites"
    assert caller.client.connected


async def test_an_open_rollcall_resumes_with_its_remaining_time_after_a_restart(make_platform) -> None:
    p = await make_platform()
    caller = await p.connect("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    started = await caller.client.request(RollCallStart(sites=["jiangbei", "jiangnan"], window=30, grace=0))
    rid = started.rollcall_id
    p.clock.advance(10)
    # a second service over the same store, as after a restart: it folds the log and re-arms the deadline
    from server.rollcall.service import RollCallService

    revived = RollCallService(p.services, p.rollcalls.files.directory)
    await p.rollcalls.close()
    await revived.start()
    rc = revived.active[rid]
    assert rc.resumed and rc.current == ["jiangbei"] and rc.results["jiangbei"].deadline == pytest.approx(p.clock.now() + 20)
    p.clock.advance(20)
    await revived.wait_for(lambda: rc.current == ["jiangnan"], 10)
    await revived.close()
