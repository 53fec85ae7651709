"""The day's duty reports in real Chromium: drafted, returned, signed off, reminded, missing at the deadline,
filed late; every page follows live."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .conftest import Server, running_server, wait_until

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
SCREEN = {"width": 1920, "height": 1080}
LEAD = 35  # seconds from the server's start to the day's deadline: time to log in, file, sign and remind before it (11 s here)


def _login(open_page: Callable[..., object], server: Server, username: str, path: str) -> object:
    page = open_page(viewport=SCREEN)
    # The browser asks for /favicon.ico once (the server has none): every other error counts.
    page.errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")  # type: ignore[attr-defined]
            and page.errors.append(f"{m.text} at {m.location.get('url')}"))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))  # type: ignore[attr-defined]
    page.goto(f"{server.base_url}/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", "demo" + username)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{server.base_url}/", timeout=15_000)  # type: ignore[attr-defined]
    page.goto(server.base_url + path)  # type: ignore[attr-defined]
    return page


def _row_status(site: str) -> str:
    return f"document.querySelector('#duty-rows tr[data-site=\"{site}\"]').dataset.status"


def test_duty_reports_are_filed_reminded_missed_and_filed_late_and_every_page_follows_live(
    tmp_path_factory: pytest.TempPathFactory, open_page: Callable[..., object],
) -> None:
    SHOTS.mkdir(exist_ok=True)
    due = datetime.now(SHANGHAI) + timedelta(seconds=LEAD)
    with running_server(tmp_path_factory.mktemp("duty"), DUTY_DEADLINE=due.strftime("%H:%M:%S")) as server:
        linjiang = _login(open_page, server, "county03", "/duty/sites/linjiang")
        linjiang_leader = _login(open_page, server, "leader03", "/duty/sites/linjiang")
        jiangbei = _login(open_page, server, "county01", "/duty/sites/jiangbei")
        jiangbei_leader = _login(open_page, server, "leader01", "/duty/sites/jiangbei")
        mayor = _login(open_page, server, "mayor", "/duty")
        for page in (linjiang, jiangbei, mayor):
            page.wait_for_selector("[data-live='1']", timeout=10_000)  # type: ignore[attr-defined]
        assert mayor.evaluate(_row_status("jiangbei")) == "pending"  # type: ignore[attr-defined]

        # Linjiang's officer writes the day's report: a draft, not up yet.
        linjiang.fill("input[name=officer]", "王值班")  # type: ignore[attr-defined]
        linjiang.fill("input[name=leader]", "李局长")  # type: ignore[attr-defined]
        linjiang.check("input[name=all_well][value=no]")  # type: ignore[attr-defined]
        linjiang.fill("textarea[name=text]", "上午青石镇堤段渗水，已处置")  # type: ignore[attr-defined]
        linjiang.click("#duty-submit")  # type: ignore[attr-defined]
        linjiang.wait_for_selector("#duty-banner[data-status='draft']", timeout=10_000)  # type: ignore[attr-defined]
        wait_until(mayor, f"{_row_status('linjiang')} === 'draft'", timeout_ms=10_000)

        # The county's duty leader returns it with a comment; the officer adds what was asked; the leader signs.
        linjiang_leader.reload()  # type: ignore[attr-defined]
        linjiang_leader.fill("#duty-review input[name=comment]", "补充转移人数")  # type: ignore[attr-defined]
        linjiang_leader.screenshot(path=str(SHOTS / "duty-review.png"))  # type: ignore[attr-defined]
        linjiang_leader.click("#duty-return")  # type: ignore[attr-defined]
        linjiang.reload()  # type: ignore[attr-defined]
        assert "补充转移人数" in linjiang.inner_text("#duty-returned")  # type: ignore[attr-defined]
        linjiang.fill("textarea[name=text]", "上午青石镇堤段渗水，已处置，转移群众120人")  # type: ignore[attr-defined]
        linjiang.click("#duty-submit")  # type: ignore[attr-defined]
        linjiang.wait_for_selector(".duty-confirm", timeout=10_000)  # type: ignore[attr-defined]
        linjiang_leader.reload()  # type: ignore[attr-defined]
        assert "转移群众120人" in linjiang_leader.inner_text("#duty-review")  # type: ignore[attr-defined]
        linjiang_leader.click("#duty-sign")  # type: ignore[attr-defined]
        linjiang_leader.wait_for_selector("#duty-banner[data-status='filed']", timeout=10_000)  # type: ignore[attr-defined]
        linjiang.wait_for_selector("#duty-banner[data-status='filed']", timeout=10_000)  # type: ignore[attr-defined]
        wait_until(mayor, f"{_row_status('linjiang')} === 'filed'", timeout_ms=10_000)

        # One click reminds Jiangbei; its open page shows the reminder at once.
        mayor.click("#duty-rows tr[data-site='jiangbei'] button.duty-remind")  # type: ignore[attr-defined]
        mayor.wait_for_url(f"{server.base_url}/duty?day=*", timeout=10_000)  # type: ignore[attr-defined]
        mayor.wait_for_selector("[data-live='1']", timeout=10_000)  # type: ignore[attr-defined]
        jiangbei.wait_for_selector("#duty-reminded:not([hidden])", timeout=10_000)  # type: ignore[attr-defined]
        assert "催办" in jiangbei.inner_text("#duty-reminded") or "Reminder" in jiangbei.inner_text("#duty-reminded")  # type: ignore[attr-defined]
        jiangbei.screenshot(path=str(SHOTS / "duty-site-reminded.png"))  # type: ignore[attr-defined]

        # The deadline passes: the sites that filed nothing turn red on the board and on their own pages.
        wait_ms = int((due - datetime.now(SHANGHAI)).total_seconds() * 1000) + 15_000
        wait_until(mayor, f"{_row_status('jiangbei')} === 'missing'", timeout_ms=wait_ms)
        jiangbei.wait_for_selector("#duty-banner[data-status='missing']", timeout=10_000)  # type: ignore[attr-defined]
        assert "江州市应急管理局" in mayor.inner_text("#duty-rows tr[data-site='jiangbei']")  # type: ignore[attr-defined]
        assert mayor.evaluate(_row_status("linjiang")) == "filed"  # type: ignore[attr-defined]
        mayor.screenshot(path=str(SHOTS / "duty-board.png"), full_page=True)  # type: ignore[attr-defined]

        # Jiangbei's leader files after the deadline himself, with what happened: late for good, on the board too.
        jiangbei_leader.reload()  # type: ignore[attr-defined]
        jiangbei_leader.fill("input[name=officer]", "张值班")  # type: ignore[attr-defined]
        jiangbei_leader.fill("input[name=leader]", "赵局长")  # type: ignore[attr-defined]
        jiangbei_leader.check("input[name=all_well][value=no]")  # type: ignore[attr-defined]
        jiangbei_leader.fill("textarea[name=text]", "下午江北堤段巡查发现渗水点一处，已处置")  # type: ignore[attr-defined]
        jiangbei_leader.click("#duty-submit")  # type: ignore[attr-defined]
        jiangbei.wait_for_selector("#duty-banner[data-status='late']", timeout=10_000)  # type: ignore[attr-defined]
        jiangbei.reload()  # type: ignore[attr-defined]
        wait_until(mayor, f"{_row_status('jiangbei')} === 'late'", timeout_ms=10_000)
        jiangbei.screenshot(path=str(SHOTS / "duty-site-late.png"), full_page=True)  # type: ignore[attr-defined]
        mayor.screenshot(path=str(SHOTS / "duty-board-late.png"), full_page=True)  # type: ignore[attr-defined]

        # The week's roster: kept per day, filled into the next report form.
        linjiang.click("text=值班表")  # type: ignore[attr-defined]
        today = datetime.now(SHANGHAI).date().isoformat()
        row = f"tr[data-day='{today}']"
        linjiang.fill(f"{row} input[name=officer]", "孙值班")  # type: ignore[attr-defined]
        linjiang.fill(f"{row} input[name=leader]", "周局长")  # type: ignore[attr-defined]
        linjiang.click(f"{row} button[type=submit]")  # type: ignore[attr-defined]
        wait_until(linjiang, f"document.querySelector(\"{row} input[name=officer]\").value === '孙值班'", timeout_ms=10_000)
        linjiang.screenshot(path=str(SHOTS / "duty-roster.png"), full_page=True)  # type: ignore[attr-defined]
        # The periodic review of the day: Jiangbei missing at the deadline and filed after it counts once, as late.
        mayor.goto(f"{server.base_url}/accountability?from={today}&to={today}")  # type: ignore[attr-defined]
        assert mayor.get_attribute("#review-ranking tr[data-site=jiangbei]", "data-total") == "1"  # type: ignore[attr-defined]
        assert mayor.get_attribute("#review-ranking tr[data-site=linjiang]", "data-total") == "0"  # type: ignore[attr-defined]
        mayor.click(f"#review-items tr[data-site=jiangbei][data-kind=duty_late] a")  # type: ignore[attr-defined]
        mayor.wait_for_selector("#duty-banner[data-status='late']", timeout=10_000)  # type: ignore[attr-defined]
        mayor.go_back()  # type: ignore[attr-defined]
        mayor.screenshot(path=str(SHOTS / "accountability-review.png"), full_page=True)  # type: ignore[attr-defined]
        # 查得到: the city searches "渗水" and finds both counties' reports, the match marked.
        mayor.goto(f"{server.base_url}/search")  # type: ignore[attr-defined]
        mayor.fill("input[name=q]", "渗水")  # type: ignore[attr-defined]
        mayor.click("form[role=search] button[type=submit]")  # type: ignore[attr-defined]
        mayor.wait_for_selector("#search-results", timeout=10_000)  # type: ignore[attr-defined]
        assert mayor.locator("#search-results .search-hit[data-kind=duty]").count() == 2  # type: ignore[attr-defined]
        assert mayor.inner_text("#search-results mark") == "渗水"  # type: ignore[attr-defined]
        mayor.screenshot(path=str(SHOTS / "search.png"))  # type: ignore[attr-defined]
        # The statistics of the day, with its charts drawn on the server.
        mayor.goto(f"{server.base_url}/stats?from={today}&to={today}")  # type: ignore[attr-defined]
        for chart in ("chart-duty", "chart-sites"):
            wait_until(mayor, f"document.getElementById('{chart}').complete && document.getElementById('{chart}').naturalWidth > 0",
                       timeout_ms=15_000)
        mayor.screenshot(path=str(SHOTS / "stats.png"), full_page=True)  # type: ignore[attr-defined]
        for page in (linjiang, linjiang_leader, jiangbei, jiangbei_leader, mayor):
            assert page.errors == []  # type: ignore[attr-defined]
