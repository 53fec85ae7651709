"""A schedule that never fires and unreadable events in every log cost only themselves: the node restarts and serves."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis

from server.config import DEFAULT_CONFIG_PATH, load_config
from server.store import RedisStore
from tests.e2e.test_command_restart import ServerProcess, durable_redis  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis

OPEN_ROLLCALL = "0123456789ab"


def _get(server: ServerProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _write_bad_records(redis_url: str) -> str:
    """What a node stored before the checks existed, and what no node ever writes; returns a directive id."""
    store = RedisStore(redis_url, node_id="old-node")
    await store.start()
    daily = load_config(DEFAULT_CONFIG_PATH, env={}).rollcall_schedules[0]
    # the old schedules page stored this, then failed to arm it (and the node never started again)
    feb31 = {**msgspec.to_builtins(daily), "id": "feb-31", "cron": "0 0 31 2 *"}
    await store.append_event("rollcall-schedules", actor="chief", kind="saved", data={"schedule": feb31})
    await store.append_event("rollcall-schedules", actor="chief", kind="saved", data={"schedule": {"id": 7}})
    await store.append_event("command", actor="mayor", kind="issued", data={
        "directive_id": "d-legacy", "cls": "guidance", "title": "old deadline", "recipients": ["jiangbei"],
        "site": "office", "t": 1_700_000_000.0, "ack_by": 1e300})
    await store.append_event("command", actor="duty", kind="read", data={"directive_id": "d-legacy", "site": "jiangbei", "t": "noon"})
    await store.append_event("command", actor="mayor", kind="cancelled", data={"directive_id": "d-legacy", "reason": "x", "t": [1]})
    await store.append_event("rollcalls", actor="chief", kind="created", data={"id": "fedcba987654"})  # no stream at all
    await store.append_event("rollcalls", actor="chief", kind="created", data={"sites": ["jiangbei"]})  # no id
    await store.append_event("rollcalls", actor="chief", kind="created", data={"id": OPEN_ROLLCALL, "sites": ["jiangbei"]})
    stream, t = f"rollcall:{OPEN_ROLLCALL}", time.time() - 60
    await store.append_event(stream, actor="chief", kind="started", data={
        "id": OPEN_ROLLCALL, "title": "t", "mode": "all", "window": 30, "grace": 15, "sites": ["jiangbei"], "at": t})
    await store.append_event(stream, actor="server", kind="called", data={"sites": ["jiangbei", "nowhere"], "at": t, "deadline": t + 30})
    await store.append_event(stream, actor="x", kind="pressed", data={"site": "nowhere", "at": t})
    await store.close()
    connection = aioredis.from_url(redis_url)
    try:  # entries no store wrote: not JSON, and no event field at all
        for key in ("cp:events:command", "cp:events:rollcalls", "cp:events:rollcall-schedules", f"cp:events:{stream}"):
            await connection.xadd(key, {"e": b"{not json"})
            await connection.xadd(key, {"x": b"1"})
    finally:
        await connection.aclose()
    return "d-legacy"


async def test_a_restart_over_bad_records_serves_and_logs_each_one_once(durable_redis: str, tmp_path: Path) -> None:  # noqa: F811
    directive = await _write_bad_records(durable_redis)
    server = ServerProcess(durable_redis, tmp_path)
    server.start()  # the old code exited here with CroniterBadDateError
    try:
        assert _get(server, "/healthz")[0] == 200
        chief = server.token("chief-desk", "command_centre", ("subscribe", "moderate"))
        status, page = _get(server, f"/rollcalls/schedules?token={chief}")
        assert status == 200 and "daily-duty" in page and "feb-31" in page
        status, body = _get(server, f"/rollcalls/{OPEN_ROLLCALL}.json?token={chief}")
        state = json.loads(body)
        assert status == 200 and state["open"] and state["sites"][0]["outcome"] == "calling", "it resumed and called"
        duty = server.token("duty-jiangbei", "jiangbei", ("publish",))
        for suffix in ("", "/print", "/export.csv", "/export.json"):
            status, text = _get(server, f"/command/directives/{directive}{suffix}?token={duty}")
            assert status == 200, (suffix, text)
        assert "out of range" in _get(server, f"/command/directives/{directive}?token={duty}")[1]
    finally:
        server.kill()
    log = server.log.read_text()
    assert log.count("schedule:feb-31") == 1, "one WARNING for the schedule that never fires"
    assert "CroniterBadDateError" not in log and "Traceback" not in log
    assert log.count("undecodable stream entry") == 8
    skipped = [line for line in log.splitlines() if "record skipped" in line]
    # schedules: a record that is no schedule, two entries, the schedule that never fires; command:
    # two events, two entries; index: one without an id, two entries; the roll-call: two events, two entries
    assert len(skipped) == 4 + 4 + 3 + 4, "\n".join(skipped)
