"""A directive announces itself by class on every page of the site it is for; escalations are grouped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, PHONE, layout_problems, shoot, unreachable

pytestmark = pytest.mark.browser

MODAL_PARTS = ["#da-title", "#da-body", "#da-meta", "#da-ack", "#da-read"]


def _issue(console: Any, **fields: Any) -> str:
    reply = console.evaluate("(m) => window.__command.socket.request(m)", {"type": "directive_issue", **fields})
    return str(reply["directive_id"])


def _login(page: Any, server: Server, user: str) -> None:
    page.goto(f"{server.base_url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"demo{user}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.base_url}/", timeout=10_000)


def test_a_mandatory_directive_takes_every_page_of_the_site_with_sound_until_read(
    server: Server, open_page: Callable[..., Any]
) -> None:
    mayor = server.device_token("mayor-alerts", "office", grants=("issue", "subscribe"), name="市长 Mayor")
    console = open_page(f"{server.base_url}/command?token={mayor}", **DESKTOP)
    console.wait_for_selector("#live[data-state=live]")
    home = open_page(**DESKTOP)
    _login(home, server, "county03")  # 临江县值班员: the county's home page
    home.wait_for_function("() => document.body.dataset.alerts === 'live'", timeout=10_000)
    phone = open_page(server.room_url(server.device_token("linjiang-duty-phone", "linjiang"), page="field"), **PHONE)
    phone.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)

    # a reference directive is quiet: a number in the inbox, nothing over the page
    _issue(console, cls="reference", title="参考资料 Reference notes", sites=["linjiang"])
    phone.wait_for_selector("#inbox-badge:not([hidden])", timeout=10_000)
    assert home.is_hidden("#directive-modal") and home.is_hidden("#directive-banner")
    assert phone.is_hidden("#directive-modal") and phone.is_hidden("#directive-banner")

    title = "立即转移低洼村庄群众 Evacuate the low-lying villages"
    mandatory = _issue(console, cls="mandatory", title=title, body="15:00 前反馈转移人数 Report the numbers by 15:00",
           sites=["linjiang"], feedback_by=time.time() + 3600)
    for page in (home, phone):
        page.wait_for_selector("#directive-modal:not([hidden])", timeout=10_000)
        assert title in page.inner_text("#da-title")
        # it keeps sounding (and vibrating where it can) until someone reads it
        page.wait_for_function("() => (window.__siteAlerts || window.__inbox.alerts).alarm.beeps >= 2", timeout=10_000)
        assert layout_problems(page, MODAL_PARTS, min_font_px=16) == []
        assert unreachable(page, "#da-ack, #da-read") == []
    shoot(home, "directive-mandatory-home-1920")
    shoot(phone, "directive-mandatory-phone-390")
    # the phone acknowledges it: the alarm stops on every page of the site
    phone.click("#da-ack")
    for page in (phone, home):
        page.wait_for_selector("#directive-modal", state="hidden", timeout=10_000)
        page.wait_for_function("() => (window.__siteAlerts || window.__inbox.alerts).alarm.timer === null", timeout=5_000)
    console.wait_for_function("(id) => window.__command.directives.get(id).recipients.linjiang.stage === 'acknowledged'",
                              arg=mandatory, timeout=10_000)

    # a guidance directive rings once and stays as a banner until read
    _issue(console, cls="guidance", title="加强夜间巡堤 Patrol the levee at night", sites=["linjiang"])
    home.wait_for_selector("#directive-banner:not([hidden])", timeout=10_000)
    assert home.is_hidden("#directive-modal")
    assert layout_problems(home, ["#directive-banner .da-banner-row", ".welcome h1"]) == []
    shoot(home, "directive-guidance-home-1920")
    home.click("#directive-banner button[data-act=ack]")
    home.wait_for_selector("#directive-banner", state="hidden", timeout=10_000)


def test_overdue_sites_reach_the_issuer_as_one_group_per_directive_that_can_be_acknowledged(
    server: Server, open_page: Callable[..., Any]
) -> None:
    mayor = server.device_token("mayor-escalations", "office", grants=("issue", "subscribe"), name="市长 Mayor")
    console = open_page(f"{server.base_url}/command?token={mayor}", **DESKTOP)
    console.wait_for_selector("#live[data-state=live]")
    console.wait_for_function("() => document.body.dataset.alerts === 'live'", timeout=10_000)
    sites = ["qingshan", "baishui", "yunxi"]
    directive = _issue(console, cls="guidance", title="上报雨情 Report the rainfall", sites=sites, ack_by=time.time() + 2)
    group = f"#escalations .da-group[data-id='{directive}']"
    console.wait_for_function(
        "(sel) => { const g = document.querySelector(sel); return !!g && g.textContent.includes('3 个单位'); }",
        arg=group, timeout=20_000)
    assert console.locator("#escalations .da-group").count() == 1
    assert all(name in console.inner_text(group) for name in ("青山县", "白水县", "云溪县"))
    shoot(console, "directive-escalations-console-1920")
    assert layout_problems(console, ["#escalations .da-group", "#issue-btn"]) == []
    console.click(f"{group} button[data-act=noted]")
    console.wait_for_selector("#escalations", state="hidden", timeout=5_000)
    # still acknowledged after a reload, which replays every event
    console.reload()
    console.wait_for_function("() => document.body.dataset.alerts === 'live'", timeout=10_000)
    console.wait_for_function("() => window.__siteAlerts.escalations.size === 1", timeout=10_000)
    assert console.is_hidden("#escalations")


def test_a_reminder_presses_a_site_that_read_but_did_not_acknowledge(server: Server, open_page: Callable[..., Any]) -> None:
    mayor = server.device_token("mayor-remind", "office", grants=("issue", "subscribe"), name="市长 Mayor")
    console = open_page(f"{server.base_url}/command?token={mayor}", **DESKTOP)
    console.wait_for_selector("#live[data-state=live]")
    site = open_page(server.room_url(server.device_token("songhe-desk", "songhe"), page="field"), **PHONE)
    site.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)
    directive = _issue(console, cls="mandatory", title="报告水位 Report the water level", sites=["songhe"])
    site.wait_for_selector("#directive-modal:not([hidden])", timeout=10_000)
    site.click("#da-read")  # read, to acknowledge later
    site.wait_for_selector("#directive-modal", state="hidden", timeout=10_000)
    assert site.is_hidden("#directive-banner")
    console.click(f".cmd-item[data-id='{directive}']")
    console.click("#d-remind")
    site.wait_for_selector(f"#directive-banner .da-banner-row[data-id='{directive}'][data-reminded=true]", timeout=10_000)
    assert "催办" in site.inner_text("#directive-banner")
    assert layout_problems(site, ["#directive-banner .da-banner-row"]) == []
    shoot(site, "directive-reminder-phone-390")
    site.click(f"#directive-banner .da-banner-row[data-id='{directive}'] button[data-act=ack]")
    site.wait_for_selector("#directive-banner", state="hidden", timeout=10_000)
    console.wait_for_function("(id) => window.__command.directives.get(id).recipients.songhe.stage === 'acknowledged'",
                              arg=directive, timeout=10_000)
