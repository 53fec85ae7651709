"""催办 in a real Chromium: one click on the console reminds the site that has not acknowledged, and only it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Server, wait_until

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def test_one_click_reminds_the_site_that_has_not_acknowledged_and_its_inbox_shows_it(
    server: Server, open_page: Callable[..., object],
) -> None:
    SHOTS.mkdir(exist_ok=True)
    mayor = server.device_token("mayor-console", "office", grants=("issue", "subscribe"), name="市长 Mayor")
    console = open_page(f"{server.base_url}/command?token={mayor}", viewport={"width": 1920, "height": 1080})
    console.wait_for_selector("#live[data-state=live]")  # type: ignore[attr-defined]
    phones = {}
    for site in ("linjiang", "jiangbei"):
        token = server.device_token(f"{site}-phone", site, grants=("publish",), name=f"{site} 值班")
        phones[site] = open_page(server.room_url(token, page="field"), viewport={"width": 420, "height": 860})
    for phone in phones.values():
        # polled from here: a page's own polling of a string predicate needs eval, which its CSP forbids
        wait_until(phone, "window.__room && window.__room.state === 'connected'", timeout_ms=30_000)

    console.fill("#title", "核查辖区堤防险情 Check the levees")  # type: ignore[attr-defined]
    console.check("input[name=cls][value=guidance]")  # type: ignore[attr-defined]
    for site in phones:
        console.check(f"#tree input[value={site}]")  # type: ignore[attr-defined]
    console.click("#issue-btn")  # type: ignore[attr-defined]
    for site in phones:
        console.wait_for_selector(f"#matrix tr[data-site={site}] td.st[data-stage=delivered]")  # type: ignore[attr-defined]

    jiangbei = phones["jiangbei"]
    jiangbei.wait_for_selector("#inbox-badge:not([hidden])")  # type: ignore[attr-defined]
    jiangbei.click("#inbox-btn")  # type: ignore[attr-defined]
    jiangbei.click(".inbox-card button[data-act=ack]")  # type: ignore[attr-defined]
    # a guidance directive is done once acknowledged
    jiangbei.wait_for_selector(".inbox-card .st[data-stage=done]", timeout=10_000)  # type: ignore[attr-defined]
    console.wait_for_selector("#matrix tr[data-site=jiangbei] td.st[data-stage=done]")  # type: ignore[attr-defined]

    console.click("#d-remind")  # type: ignore[attr-defined]
    linjiang = phones["linjiang"]
    # every page of the site shows the reminder until it acknowledges; its View opens the inbox on it
    linjiang.wait_for_selector(".da-banner-row[data-reminded=true]", timeout=10_000)  # type: ignore[attr-defined]
    linjiang.click(".da-banner-row[data-reminded=true] button[data-act=open]")  # type: ignore[attr-defined]
    linjiang.wait_for_selector(".inbox-card .inbox-reminded[data-reminded='1']", timeout=10_000)  # type: ignore[attr-defined]
    assert linjiang.is_visible("#inbox-panel")  # type: ignore[attr-defined]
    console.wait_for_selector("#matrix tr[data-site=linjiang] [data-reminded='1']", timeout=10_000)  # type: ignore[attr-defined]
    assert console.query_selector("#matrix tr[data-site=jiangbei] [data-reminded]") is None  # type: ignore[attr-defined]
    assert jiangbei.query_selector(".inbox-reminded") is None  # type: ignore[attr-defined]
    linjiang.screenshot(path=str(SHOTS / "command-reminded-inbox.png"))  # type: ignore[attr-defined]
    console.evaluate("document.querySelectorAll('*').forEach((e) => { e.scrollTop = 0; }); window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    console.screenshot(path=str(SHOTS / "command-reminded-console.png"))  # type: ignore[attr-defined]
    errors = [m for m in console.console_messages_seen if m.startswith("pageerror")]  # type: ignore[attr-defined]
    assert errors == []
    violations = [m for p in (console, *phones.values()) for m in p.console_messages_seen  # type: ignore[attr-defined]
                  if "Content Security Policy" in m]
    assert violations == []
