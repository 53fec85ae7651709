"""Incident reports: a phone files them and is told so, the city is alerted and reads each incident's whole story."""

from __future__ import annotations

import datetime
import io
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, PHONE, layout_problems, shoot

pytestmark = pytest.mark.browser


def _photo(tmp_path: Path) -> Path:
    image = Image.new("RGB", (320, 200), (30, 90, 160))
    for x in range(100, 220):
        for y in range(60, 140):
            image.putpixel((x, y), (240, 200, 40))
    path = tmp_path / "levee.jpg"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def _login(page: Any, server: Server, user: str) -> None:
    page.goto(f"{server.base_url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"demo{user}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.base_url}/", timeout=10_000)


def test_a_phone_files_an_incident_the_city_is_alerted_and_reads_it_with_photos(
    server: Server, open_page: Callable[..., Any], tmp_path: Path
) -> None:
    city_home = open_page(**DESKTOP)
    _login(city_home, server, "mayor")
    city_home.wait_for_function("() => document.body.dataset.alerts === 'live'", timeout=10_000)

    token = server.device_token("levee-phone-2", "linjiang", grants=("publish",), name="临江县 堤防单兵")
    phone = open_page(server.room_url(token, page="field"), **PHONE)
    phone.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)
    phone.click("#inbox-btn")
    phone.click("#inbox-reports")
    phone.wait_for_selector("#live[data-state=live]", timeout=10_000)
    # the page fits the phone: nothing wider than the screen, the header whole
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert layout_problems(phone, [".topbar-title", "#live", "#btn-file-report", "#back-home"]) == []
    phone.fill("#r-time", "2026-12-01T08:00")
    phone.fill("#r-place", "临江大堤 Linjiang levee")
    phone.fill("#r-injured", "2")
    phone.fill("#r-summary", "堤防渗水，已转移 120 人 Seepage; 120 evacuated")
    phone.set_input_files("#r-photo", str(_photo(tmp_path)))
    phone.click("#report button[type=submit]")
    phone.wait_for_selector("#report-done:not([hidden])", timeout=10_000)
    assert "已报送" in phone.inner_text("#report-done")
    # in the city's time, as every page of the server writes it (not the phone's own zone)
    city_now = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert city_now.strftime("%m-%d %H:") in phone.inner_text("#report-done")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    shoot(phone, "incident-filed-phone-390")

    # the city is alerted on whatever page it is on, and opens the incident from the alert
    city_home.wait_for_selector("#report-alerts .da-report", timeout=10_000)
    assert "临江县" in city_home.inner_text("#report-alerts")
    shoot(city_home, "incident-alert-city-1920")
    city_home.click("#report-alerts [data-act=view]")
    city_home.wait_for_selector("#incident-detail:not([hidden]) .inc-timeline li", timeout=10_000)
    assert city_home.is_hidden("#report")  # the city's screen is the board, not a form it does not need

    # a follow-up from the phone shows up in the same story
    phone.select_option("#r-incident", index=1)
    phone.fill("#r-summary", "续报：转移完成 Follow-up: evacuation complete")
    phone.click("#report button[type=submit]")
    phone.wait_for_selector("#report-done:not([hidden])", timeout=10_000)
    city_home.wait_for_function("() => document.querySelectorAll('#incident-detail .inc-timeline li').length === 2", timeout=10_000)
    detail = city_home.inner_text("#incident-detail")
    assert "初报" in detail and "续报" in detail
    assert "受伤" in detail and "Injured" in detail
    city_home.wait_for_function("() => { const i = document.querySelector('#incident-detail img.inc-photo'); return !!i && i.complete && i.naturalWidth === 320; }",
                                timeout=10_000)
    assert layout_problems(city_home, ["#incident-detail .inc-head", "#incident-detail .inc-timeline li"]) == []
    shoot(city_home, "incident-detail-city-1920")

    # the city closes it; the board says so
    city_home.click("#inc-close")
    city_home.wait_for_selector("#incident-detail .inc-status[data-status=closed]", timeout=10_000)
    # and opens it again, saying why
    city_home.fill("#inc-reopen-reason", "险情反复 The seepage is back")
    city_home.click("#inc-reopen button[type=submit]")
    city_home.wait_for_selector("#incident-detail .inc-status[data-status=open]", timeout=10_000)
    city_home.click("#inc-close")
    city_home.wait_for_selector("#incident-detail .inc-status[data-status=closed]", timeout=10_000)
    city_home.click("#inc-back")
    city_home.wait_for_selector("#board tbody tr[data-id] >> text=已结案", timeout=5_000)

    # back to the room from the phone's report page
    phone.click("#back-home")
    phone.wait_for_url("**/field/consultation**", timeout=10_000)
