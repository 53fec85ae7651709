"""The periodic review: late, missing and unanswered per site, ranked, each item with its evidence."""

from __future__ import annotations

import csv
import io

import docx

from server.accountability.domain import Item, ranking
from server.command.keys import COMMAND
from server.rollcall.keys import ROLLCALLS
from signaling.command import DirectiveIssue

from tests.server.duty.conftest import DAY, WELL_FORM, DutyPlatform


def test_the_ranking_puts_the_fewest_items_first_and_equal_totals_share_a_place() -> None:
    items = [Item("b", "duty_missing", 1.0, "", ""), Item("b", "rollcall_absent", 2.0, "", ""), Item("c", "duty_late", 3.0, "", ""),
             Item("a", "duty_late", 4.0, "", ""), Item("elsewhere", "duty_late", 5.0, "", "")]
    standings = ranking(items, ["a", "b", "c", "d"])
    assert [(s.site, s.total, s.rank) for s in standings] == [("d", 0, 1), ("a", 1, 2), ("c", 1, 2), ("b", 2, 4)]
    assert standings[-1].counts["duty_missing"] == 1 and standings[-1].counts["rollcall_absent"] == 1


async def _late_incident(duty: DutyPlatform, site: str) -> str:
    service = duty.app[COMMAND].service
    await service.record(None, "report_filed", {
        "incident_id": "i-late000001", "report_kind": "initial", "site": site, "summary": "堤防管涌，迟报",
        "occurred_at": duty.clock.now() - 2 * 3600, "place": "白沙镇", "type": "flood", "chain": ["office"],
        "casualties": {"dead": 0, "injured": 0, "missing": 0}})
    return "i-late000001"


async def test_the_review_of_a_day_lists_each_failure_with_its_evidence_and_ranks_the_counties(duty: DutyPlatform) -> None:
    await duty.post("leader03", "/duty/sites/linjiang/report", WELL_FORM)
    incident = await _late_incident(duty, "jiangnan")
    command = duty.app[COMMAND].service
    issued = await command.record(None, "issued", {
        "directive_id": "d-review0001", "cls": "guidance", "title": "核查堤防", "recipients": ["qingshan"], "site": "office",
        "ack_by": duty.clock.now() + 600})
    rollcalls = duty.app[ROLLCALLS]
    called = await rollcalls.begin(actor="mayor", caller_site="office", sites=["baishui"], mode="all", window=30, grace=0)
    await rollcalls.finish(called.id, actor="mayor")
    await duty.pass_deadline()  # 17:30: the directive is overdue, ten counties missing
    duty.clock.advance(60)
    await duty.post("leader01", "/duty/sites/jiangbei/report", WELL_FORM)  # late
    page = await duty.get("mayor", f"/accountability?from={DAY}&to={DAY}")
    for evidence in (f"/duty/sites/jiangbei?day={DAY}", f"/duty/sites/yunxi?day={DAY}", f"/command/incidents/{incident}",
                     f"/command/directives/{issued.text('directive_id')}", f"/rollcalls/{called.id}/report"):
        assert f'href="{evidence}"' in page, evidence
    assert f'href="/duty/sites/linjiang?day={DAY}"' not in page  # it filed on time
    assert '<tr data-site="linjiang" data-total="0"' in page  # and ranks first, with nothing to answer for

    async with duty.http.get(f"{duty.url}/accountability.csv?from={DAY}&to={DAY}", headers=duty.cookie("mayor")) as r:
        assert r.status == 200
        rows = list(csv.DictReader(io.StringIO((await r.text()).lstrip("\ufeff"))))
    kinds = {(row["site"], row["kind"]) for row in rows}
    assert {("jiangbei", "duty_late"), ("yunxi", "duty_missing"), ("jiangnan", "incident_late"), ("qingshan", "directive_ack"),
            ("baishui", "rollcall_absent")} <= kinds
    assert ("jiangbei", "duty_missing") not in kinds  # missing at the deadline, then filed: counted once, as late
    assert not [row for row in rows if row["site"] == "linjiang"]

    async with duty.http.get(f"{duty.url}/accountability.docx?from={DAY}&to={DAY}", headers=duty.cookie("mayor")) as r:
        assert r.status == 200 and r.content_type.endswith("wordprocessingml.document")
        document = docx.Document(io.BytesIO(await r.read()))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "定期点评 Periodic review" in text and f"{DAY} — {DAY}" in text
    ranking_table, figures_table = document.tables
    assert len(ranking_table.rows) == 1 + 11 and ranking_table.rows[1].cells[1].text == "临江县"
    assert f"{duty.url}/rollcalls/{called.id}/report" in text and f"{duty.url}/command/incidents/{incident}" in text
    assert len([p for p in document.paragraphs if "证据 evidence" in p.text]) == len(rows)
    assert figures_table.rows[-1].cells[0].text == "合计 Total" and len(figures_table.rows) == 1 + 11 + 1
    assert len(document.inline_shapes) == 3  # the charts: day by day, rates per site, duty reports per day

    async with duty.http.get(f"{duty.url}/accountability.pdf?from={DAY}&to={DAY}", headers=duty.cookie("mayor")) as r:
        assert r.status == 200 and r.content_type == "application/pdf"
        pdf = await r.read()
    assert pdf.startswith(b"%PDF") and b"NotoSansCJKSC" in pdf  # the Chinese font embedded, not boxes


async def test_only_the_city_sees_the_review_and_a_bad_period_is_refused_clearly(duty: DutyPlatform) -> None:
    await duty.get("county03", "/accountability", status=403)
    await duty.get("mayor", "/accountability")  # this month so far
    assert "bad_period" in await duty.get("mayor", "/accountability?from=2027-01-15&to=2027-01-01", status=400)
    assert "bad_day" in await duty.get("mayor", "/accountability?from=2027-13-01&to=2027-01-01", status=400)
    assert "bad_period" in await duty.get("mayor", "/accountability?from=2025-01-01&to=2027-01-01", status=400)
