"""The statistics dashboard: a period's counts from every domain, and its charts as SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from server.command.keys import COMMAND
from server.duty.domain import DutyBook
from server.rollcall.keys import ROLLCALLS
from server.stats.charts import stacked_bars
from server.stats.domain import duty_by_day

from tests.server.duty.conftest import DAY, DEADLINE_AT, WELL_FORM, DutyPlatform


def test_duty_reports_per_day_count_each_site_once_in_its_state() -> None:
    book = DutyBook()
    counts = duty_by_day(book, ["a", "b"], ["2027-01-14", "2027-01-15"], lambda day: DEADLINE_AT if day == DAY else DEADLINE_AT - 86400,
                         DEADLINE_AT - 60)
    assert counts["missing"] == [2, 0] and counts["pending"] == [0, 2]
    assert all(sum(column) == 2 for column in zip(*counts.values()))


def test_a_chart_is_well_formed_svg_with_its_chinese_labels_as_text() -> None:
    svg = stacked_bars(["临江县", "江北区"], {"已报 Filed": [1, 0], "迟报 Late": [0, 2]}, {"已报 Filed": "#22c55e"}, "值班报告")
    root = ET.fromstring(svg.encode())
    assert root.tag.endswith("svg")
    assert "临江县" in svg and "值班报告" in svg  # text, for the browser's CJK fonts
    assert svg == stacked_bars(["临江县", "江北区"], {"已报 Filed": [1, 0], "迟报 Late": [0, 2]}, {"已报 Filed": "#22c55e"}, "值班报告")


async def test_the_dashboard_counts_the_day_and_draws_its_charts(duty: DutyPlatform) -> None:
    await duty.post("leader03", "/duty/sites/linjiang/report", WELL_FORM)
    await duty.incident("linjiang")
    rollcalls = duty.app[ROLLCALLS]
    called = await rollcalls.begin(actor="mayor", caller_site="office", sites=["baishui", "yunxi"], mode="all", window=30, grace=0)
    await rollcalls.finish(called.id, actor="mayor")
    assert duty.app[COMMAND].service.board.incidents
    await duty.pass_deadline()
    page = await duty.get("mayor", f"/stats?from={DAY}&to={DAY}")
    tiles = page[page.index('id="stats-tiles"'):page.index('id="chart-duty"')]
    assert '<div class="stats-n">1</div><span class="zh">按时值班报告' in tiles  # linjiang on time
    assert "10 <span class=\"zh\">未报</span>" in tiles  # the other ten missing
    assert '<div class="stats-n">1</div><span class="zh">信息报送' in tiles
    assert "2 <span class=\"zh\">缺席</span>" in tiles
    table = page[page.index('id="site-figures"'):]
    row = table[table.index('<tr data-site="linjiang"'):]
    linjiang = row[:row.index("</tr>")]
    assert "100% <span class=\"muted\">(1/1)</span>" in linjiang  # its one duty report, on time
    assert '<tr data-site="total"' in table
    for name, text in (("duty", "每日值班报告"), ("sites", "江北区"), ("rates", "临江县"), ("trend", "按日趋势")):
        async with duty.http.get(f"{duty.url}/stats/{name}.svg?from={DAY}&to={DAY}", headers=duty.cookie("mayor")) as r:
            assert r.status == 200 and r.content_type == "image/svg+xml"
            svg = await r.text()
        assert ET.fromstring(svg.encode()).tag.endswith("svg") and text in svg
    await duty.get("county03", "/stats", status=403)
    await duty.get("county03", f"/stats/duty.svg?from={DAY}&to={DAY}", status=403)
