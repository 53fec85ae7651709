"""Scheduled roll-calls fire at their local time when the clock is moved; absent sites go up to their parent."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import msgspec
import pytest

from server.config import RollCallSchedule
from server.errors import RequestError
from server.rollcall.keys import SCHEDULES
from server.cron import next_fire
from signaling.rollcall import RollCallCall, RollCallEscalation

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_the_next_fire_time_is_read_in_the_schedules_time_zone() -> None:
    after = datetime(2027, 1, 15, 12, 0, tzinfo=SHANGHAI).timestamp()
    fire = datetime.fromtimestamp(next_fire("30 17 * * *", SHANGHAI, after), SHANGHAI)
    assert (fire.hour, fire.minute, fire.day) == (17, 30, 15)
    utc = datetime.fromtimestamp(next_fire("30 17 * * *", zoneinfo.ZoneInfo("UTC"), after), SHANGHAI)
    assert (utc.hour, utc.minute, utc.day) == (1, 30, 16)


async def test_the_daily_duty_check_fires_at_1730_local_and_escalates_the_absent(make_platform) -> None:
    p = await make_platform()  # the clock reads 17:29:00 in Jiangzhou
    office = await p.connect("mayor-desk", "office", grants=("subscribe",))
    county = await p.connect("desk-county01", "jiangbei", video=True)
    assert not p.rollcalls.active
    p.clock.advance(59)
    await p.services.scheduler.run_due()
    assert not p.rollcalls.active
    p.clock.advance(1)
    call = await county.wait_message(RollCallCall)
    rc = p.rollcalls.active[call.rollcall_id]
    assert rc.schedule == "daily-duty" and rc.mode == "sequence" and len(rc.sites) == 11
    assert datetime.fromtimestamp(rc.started_at, SHANGHAI).strftime("%H:%M:%S") == "17:30:00"
    assert rc.current == ["jiangbei"]
    # nobody answers: eleven 30 s windows, then the 15 s grace
    for _ in range(11):
        p.clock.advance(30)
        await p.services.scheduler.run_due()
    p.clock.advance(15)
    await p.rollcalls.wait_for(lambda: not rc.open, 10)
    assert rc.totals()["absent"] == 11
    escalation = await office.wait_message(RollCallEscalation, rollcall_id=rc.id)
    assert len(escalation.sites) == 11
    assert all(r.escalated_to == "office" for r in rc.results.values())
    # and it is armed again for tomorrow
    nxt = datetime.fromtimestamp(p.app[SCHEDULES].next_at["daily-duty"], SHANGHAI)
    assert (nxt.day, nxt.hour, nxt.minute) == (16, 17, 30)


async def test_a_schedule_edited_in_the_ui_replaces_the_configured_one_and_is_validated(make_platform) -> None:
    p = await make_platform()
    runner = p.app[SCHEDULES]
    daily = next(s for s in await runner.schedules() if s.id == "daily-duty")
    await runner.save(msgspec.structs.replace(daily, cron="0 18 * * *"), actor="chief")
    assert [s.cron for s in await runner.schedules() if s.id == "daily-duty"] == ["0 18 * * *"]
    assert datetime.fromtimestamp(runner.next_at["daily-duty"], SHANGHAI).hour == 18
    bad = RollCallSchedule(id="x", name_zh="x", name_en="x", cron="61 * * *", group="nope")
    with pytest.raises(RequestError) as refused:
        await runner.save(bad, actor="chief")
    assert "schedule.cron" in refused.value.message and "schedule.group" in refused.value.message
    await runner.delete("daily-duty", actor="chief")
    assert "daily-duty" not in runner.next_at
