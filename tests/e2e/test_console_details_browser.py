"""Smaller things that hurt: who a directive goes to before it is sent, saved groups, counts, dialogs, rooms, favicon."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, layout_problems, shoot
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser


def test_the_console_shows_who_a_directive_goes_to_and_asks_reasons_in_the_page(
    server: Server, open_page: Callable[..., Any]
) -> None:
    mayor = server.device_token("details-console", "office", grants=("issue", "subscribe"))
    console = open_page(f"{server.base_url}/command?token={mayor}", **DESKTOP)
    console.wait_for_selector("#live[data-state=live]")
    # sub-sites are not added behind the officer's back: one county checked is one recipient
    assert not console.is_checked("#with-children")
    console.check("#tree input[value=linjiang]")
    assert "将下达至 1 个单位" in console.inner_text("#recipients-preview")
    console.uncheck("#tree input[value=linjiang]")
    console.select_option("#group-pick", "counties")
    preview = console.inner_text("#recipients-preview")
    assert "11 个单位" in preview and "临江县" in preview and "江口市" in preview
    assert "Issue to 11" in console.inner_text("#issue-btn")
    assert layout_problems(console, ["#issue-btn", "#recipients-preview"]) == []
    console.fill("#title", "防汛值班 Flood duty")
    console.click("#issue-btn")
    console.wait_for_function("() => document.querySelector('.cmd-item .cmd-counts')?.textContent.includes('/ 11')", timeout=10_000)
    counts = console.inner_text(".cmd-item .cmd-counts")
    assert "已读 0" in counts and "签收 0" in counts
    shoot(console, "console-preview-counts-1920")
    # update and cancel ask in a dialog of the page, with the reason required
    console.click("#d-update")
    console.wait_for_selector("#d-dialog[open]")
    console.fill("#d-dialog-body", "20:00 前到岗 On duty by 20:00")
    console.fill("#d-dialog-reason", "补充时间 Time added")
    shoot(console, "console-update-dialog-1920")
    console.click("#d-dialog-ok")
    console.wait_for_selector("#d-dialog", state="hidden")
    console.wait_for_function("() => document.getElementById('d-meta').textContent.includes('补充时间')", timeout=10_000)


def test_the_rooms_list_puts_the_users_room_first_with_live_counts_and_the_favicon_exists(
    server: Server, open_page: Callable[..., Any]
) -> None:
    with urllib.request.urlopen(f"{server.base_url}/favicon.ico", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("image/svg")
    with SyntheticSites(server, [("rooms-syn-yunxi", "yunxi")]):
        home = open_page(f"{server.base_url}/login", **DESKTOP)
        home.fill("input[name=username]", "county03")
        home.fill("input[name=password]", "democounty03")
        home.click("button[type=submit]")
        home.wait_for_url(f"{server.base_url}/", timeout=10_000)
        assert home.get_attribute(".room-card >> nth=0", "data-room") == "consultation"
        home.wait_for_selector(".room-online[data-room=consultation]:not([hidden])", timeout=10_000)
        assert int(home.get_attribute(".room-online[data-room=consultation]", "data-count") or 0) >= 1
        shoot(home, "rooms-list-1920")
