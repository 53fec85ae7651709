"""The daily duty report on one server: filing, the 17:30 deadline, late for good, reminders, bad input, restarts."""

from __future__ import annotations

import asyncio

from server.store import MemoryStore

from .conftest import DAY, DEADLINE_AT, WELL_FORM, DutyPlatform, MakeDuty

COUNTIES = ["jiangbei", "jiangnan", "linjiang", "qingshan", "baishui", "yunxi", "fengling"]
WELL = WELL_FORM


def _row(state: dict[str, object], site: str) -> dict[str, object]:
    rows = state["rows"]
    assert isinstance(rows, list)
    return next(r for r in rows if r["site"] == site)


async def test_a_county_leader_files_all_well_before_the_deadline_and_the_city_board_says_filed(duty: DutyPlatform) -> None:
    path, query = await duty.post("leader03", "/duty/sites/linjiang/report", WELL)
    assert path == "/duty/sites/linjiang" and query.get("filed") == ["1"]
    (event,) = await duty.events()
    assert event.kind == "report_filed" and event.actor == "leader03" and event.data["all_well"] is True
    state = await duty.state("mayor", f"day={DAY}")
    row = _row(state, "linjiang")
    assert row["status"] == "filed" and row["report"]["officer"] == "王值班"  # type: ignore[index]
    assert _row(state, "jiangbei")["status"] == "pending"
    assert state["totals"] == {"filed": 1, "late": 0, "missing": 0, "draft": 0, "pending": 10}
    assert {r["site"] for r in state["rows"]} >= set(COUNTIES)  # type: ignore[union-attr]
    assert len(state["rows"]) == 11  # type: ignore[arg-type]


async def test_at_the_deadline_missing_sites_are_recorded_once_reminded_and_escalated_to_their_parent(duty: DutyPlatform) -> None:
    await duty.post("leader03", "/duty/sites/linjiang/report", WELL)
    await duty.pass_deadline()
    passed = [e for e in await duty.events() if e.kind == "deadline_passed"]
    assert len(passed) == 1
    missing = passed[0].data["missing"]
    assert isinstance(missing, list) and "linjiang" not in missing and len(missing) == 10
    assert passed[0].data["escalated"] == {site: "office" for site in missing}
    state = await duty.state("mayor", f"day={DAY}")
    assert state["deadline_passed"] is True
    assert _row(state, "jiangbei")["status"] == "missing" and _row(state, "jiangbei")["escalated_to"] == "office"
    assert state["totals"] == {"filed": 1, "late": 0, "missing": 10, "draft": 0, "pending": 0}
    page = await duty.get("county01", f"/duty/sites/jiangbei?day={DAY}")
    assert 'data-status="missing"' in page
    # the timer is armed for the next day's deadline; running what is due again records nothing more
    assert duty.runner.next_at == ("2027-01-16", DEADLINE_AT + 86400)
    await duty.services.scheduler.run_due()
    assert len([e for e in await duty.events() if e.kind == "deadline_passed"]) == 1


async def test_a_filing_after_the_deadline_is_late_for_good_even_when_amended(duty: DutyPlatform) -> None:
    await duty.pass_deadline()
    duty.clock.advance(11 * 60)  # 17:41
    await duty.post("leader01", "/duty/sites/jiangbei/report", WELL)
    await duty.post("leader01", "/duty/sites/jiangbei/report", {**WELL, "text": "补充：夜间巡查正常"})
    report = duty.duty.book.reports[("jiangbei", DAY)]
    assert report.late and len(report.versions) == 2
    state = await duty.state("mayor", f"day={DAY}")
    assert _row(state, "jiangbei")["status"] == "late"
    page = await duty.get("county01", f"/duty/sites/jiangbei?day={DAY}")
    assert "v2" in page and "补充：夜间巡查正常" in page


async def test_a_report_links_the_sites_own_incidents_and_not_another_sites(duty: DutyPlatform) -> None:
    own = await duty.incident("linjiang")
    other = await duty.incident("qingshan")
    page = await duty.get("county03", "/duty/sites/linjiang")
    assert own in page and other not in page
    form = {**WELL, "all_well": "no", "incidents": own, "text": "上午堤防渗水，已处置"}
    _, query = await duty.post("county03", "/duty/sites/linjiang/report", form)
    assert "error" not in query
    assert duty.duty.book.reports[("linjiang", DAY)].latest.incidents == (own,)
    _, query = await duty.post("county03", "/duty/sites/linjiang/report", {**form, "incidents": other})
    assert query["error"][0].startswith("unknown_incident")
    assert len(duty.duty.book.reports[("linjiang", DAY)].versions) == 1


async def test_bad_input_gets_a_clear_error_and_records_nothing(duty: DutyPlatform) -> None:
    cases = [
        ("county03", "/duty/sites/linjiang/report", {**WELL, "officer": "  "}, "missing_field"),
        ("county03", "/duty/sites/linjiang/report", {**WELL, "all_well": "no"}, "nothing_reported"),
        ("county03", "/duty/sites/linjiang/report", {**WELL, "day": "2027-13-01"}, "bad_day"),
        ("county03", "/duty/sites/linjiang/report", {**WELL, "day": "2027-01-16"}, "day_out_of_range"),
        ("county03", "/duty/sites/linjiang/report", {**WELL, "text": "长" * 4001}, "too_long"),
        ("county03", "/duty/sites/jiangbei/report", WELL, "forbidden"),
        ("county03", "/duty/sites/linjiang-qingshi/report", WELL, "forbidden"),
        ("county03", "/duty/remind", {"site": "jiangbei", "day": DAY}, "forbidden"),
        ("mayor", "/duty/remind", {"site": "linjiang-qingshi", "day": DAY}, "not_reporting"),
        ("county03", "/duty/sites/linjiang/roster", {"day": DAY, "officer": "王", "leader": ""}, "missing_field"),
    ]
    for user, path, form, code in cases:
        _, query = await duty.post(user, path, form)
        assert query.get("error", [""])[0].startswith(code), (path, form, query)
    assert await duty.events() == []


async def test_a_reminder_is_an_event_shown_on_the_sites_page_and_refused_once_it_has_filed(duty: DutyPlatform) -> None:
    _, query = await duty.post("mayor", "/duty/remind", {"site": "qingshan", "day": DAY})
    assert "error" not in query
    (event,) = await duty.events()
    assert event.kind == "reminded" and event.actor == "mayor" and event.data["site"] == "qingshan"
    page = await duty.get("county04", "/duty/sites/qingshan")
    assert 'id="duty-reminded" role="alert" >' in page or 'id="duty-reminded" role="alert">' in page
    await duty.post("leader04", "/duty/sites/qingshan/report", WELL)
    _, query = await duty.post("mayor", "/duty/remind", {"site": "qingshan", "day": DAY})
    assert query["error"][0].startswith("already_filed")


async def test_the_roster_fills_the_report_form_and_the_week_page(duty: DutyPlatform) -> None:
    _, query = await duty.post("county03", "/duty/sites/linjiang/roster", {"day": DAY, "officer": "赵六", "leader": "钱七"})
    assert "error" not in query
    page = await duty.get("county03", "/duty/sites/linjiang")
    assert 'value="赵六"' in page and 'value="钱七"' in page
    week = await duty.get("mayor", f"/duty/sites/linjiang/roster?day={DAY}")
    assert "2027-01-11" in week and "2027-01-17" in week and "赵六" in week
    await duty.post("county03", "/duty/sites/linjiang/handover", {"text": "青石镇堤段夜间继续巡查"})
    assert "青石镇堤段夜间继续巡查" in await duty.get("county03", "/duty/sites/linjiang")


async def test_who_sees_what(duty: DutyPlatform) -> None:
    await duty.get("county03", "/duty", status=303)  # a county goes to its own page
    await duty.get("county03", "/duty/sites/jiangbei", status=403)  # not another county's
    await duty.get("mayor", "/duty/sites/jiangbei")
    state = await duty.state("county03", f"day={DAY}")
    assert [r["site"] for r in state["rows"]] == ["linjiang"]  # type: ignore[union-attr]


async def test_the_state_request_answers_as_soon_as_the_log_moves(duty: DutyPlatform) -> None:
    first = await duty.state("mayor", f"day={DAY}")
    waiting = asyncio.create_task(duty.state("mayor", f"day={DAY}&after={first['after'] or ''}"))
    await duty.duty.wait_waiting(1, 5)  # the request reached the server and waits there
    assert not waiting.done()
    await duty.post("leader05", "/duty/sites/baishui/report", WELL)
    state = await asyncio.wait_for(waiting, 5)  # long before the 25 s long poll ends
    assert _row(state, "baishui")["status"] == "filed"


async def test_a_restarted_server_has_the_same_board_and_records_a_deadline_it_slept_through(make_duty: MakeDuty) -> None:
    first: DutyPlatform = await make_duty()
    await first.post("leader03", "/duty/sites/linjiang/report", WELL)
    store = first.services.store
    assert isinstance(store, MemoryStore)
    # every node was down at 17:30; the one that starts at 18:00 records the deadline at once
    second: DutyPlatform = await make_duty(start=DEADLINE_AT + 1800, store=store)
    state = await second.state("mayor", f"day={DAY}")
    assert _row(state, "linjiang")["status"] == "filed"
    assert _row(state, "jiangbei")["status"] == "missing"
    assert len([e for e in await second.events() if e.kind == "deadline_passed"]) == 1


async def test_the_officers_report_is_a_draft_until_the_leader_returns_it_and_then_signs_the_amended_one(duty: DutyPlatform) -> None:
    await duty.post("county03", "/duty/sites/linjiang/report", {**WELL, "all_well": "no", "text": "上午堤防渗水"})
    assert _row(await duty.state("mayor", f"day={DAY}"), "linjiang")["status"] == "draft"  # not up yet
    _, query = await duty.post("county03", "/duty/sites/linjiang/sign", {"day": DAY})
    assert query["error"][0].startswith("forbidden")  # the officer cannot sign his own report
    _, query = await duty.post("leader01", "/duty/sites/linjiang/sign", {"day": DAY})
    assert query["error"][0].startswith("forbidden")  # nor another county's leader
    page = await duty.get("leader03", "/duty/sites/linjiang")
    assert 'id="duty-review"' in page and "上午堤防渗水" in page
    _, query = await duty.post("leader03", "/duty/sites/linjiang/return", {"day": DAY, "comment": ""})
    assert query["error"][0].startswith("missing_field")  # a return says why
    await duty.post("leader03", "/duty/sites/linjiang/return", {"day": DAY, "comment": "补充转移人数"})
    page = await duty.get("county03", "/duty/sites/linjiang")
    assert 'id="duty-returned"' in page and "补充转移人数" in page
    _, query = await duty.post("leader03", "/duty/sites/linjiang/sign", {"day": DAY})
    assert query["error"][0].startswith("not_a_draft")  # a returned draft is the officer's again
    await duty.post("county03", "/duty/sites/linjiang/report", {**WELL, "all_well": "no", "text": "上午堤防渗水，转移群众120人"})
    duty.clock.advance(22 * 60)  # 17:12
    _, query = await duty.post("leader03", "/duty/sites/linjiang/sign", {"day": DAY})
    assert query["signed"] == ["1"] and "error" not in query
    report = duty.duty.book.reports[("linjiang", DAY)]
    assert (report.state, report.signed_by, report.signed_version, report.late) == ("signed", "leader03", 2, False)
    events = await duty.events()
    assert [e.kind for e in events if e.kind != "reminded"] == ["report_filed", "report_returned", "report_filed", "report_signed"]
    assert "linjiang" in {e.data["site"] for e in events if e.kind == "reminded"}  # at 17:00 its report was not up
    assert _row(await duty.state("mayor", f"day={DAY}"), "linjiang")["status"] == "filed"


async def test_a_draft_not_signed_by_the_deadline_is_missing_and_late_once_signed(duty: DutyPlatform) -> None:
    await duty.post("county01", "/duty/sites/jiangbei/report", WELL)
    await duty.pass_deadline()
    passed = next(e for e in await duty.events() if e.kind == "deadline_passed")
    assert "jiangbei" in passed.data["missing"]  # type: ignore[operator]
    duty.clock.advance(60)
    await duty.post("leader01", "/duty/sites/jiangbei/sign", {"day": DAY})
    assert _row(await duty.state("mayor", f"day={DAY}"), "jiangbei")["status"] == "late"


async def test_thirty_minutes_before_the_deadline_the_sites_not_up_are_reminded_once(duty: DutyPlatform) -> None:
    await duty.post("leader03", "/duty/sites/linjiang/report", WELL)
    await duty.post("county01", "/duty/sites/jiangbei/report", WELL)  # a draft: not up, reminded too
    assert duty.runner.next_reminder == (DAY, DEADLINE_AT - 1800)
    duty.clock.set(DEADLINE_AT - 1800)
    await duty.services.scheduler.run_due()
    reminded = [e for e in await duty.events() if e.kind == "reminded"]
    assert len(reminded) == 10 and {e.actor for e in reminded} == {"server"}
    assert "linjiang" not in {e.data["site"] for e in reminded} and "jiangbei" in {e.data["site"] for e in reminded}
    assert "30" in str(reminded[0].data["note"])
    page = await duty.get("county02", "/duty/sites/jiangnan")
    assert 'id="duty-reminded" role="alert" >' in page or 'id="duty-reminded" role="alert">' in page
    assert duty.runner.next_reminder == ("2027-01-16", DEADLINE_AT + 86400 - 1800)
    await duty.services.scheduler.run_due()
    assert len([e for e in await duty.events() if e.kind == "reminded"]) == 10
