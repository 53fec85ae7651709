"""The roster beside the wall: who of the room's sites is here and who is missing, one click to spotlight or call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.config import load_config
from tests.e2e.conftest import REPO, Server
from tests.e2e.screens import DESKTOP, PHONE, layout_problems, shoot, unreachable
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser

PRESENT = [("syn-jiangbei", "jiangbei"), ("syn-linjiang", "linjiang"), ("syn-qingshan", "qingshan")]
EXPECTED = load_config(REPO / "config" / "demo.toml").room("consultation").sites  # type: ignore[union-attr]
CHAIR_GRANTS = ("publish", "subscribe", "moderate", "issue")


@pytest.fixture(scope="module")
def three_sites(server: Server) -> Iterator[SyntheticSites]:
    """Three of the room's sites publishing video for the whole module."""
    with SyntheticSites(server, PRESENT) as sites:
        yield sites


def _chair(server: Server, open_page: Callable[..., Any], **context: Any) -> Any:
    token = server.device_token("roster-mayor", "office", grants=CHAIR_GRANTS, name="市长 Mayor")
    page = open_page(server.room_url(token), **context)
    page.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)
    page.wait_for_function("(n) => window.__room.tiles().filter((t) => t.identity.startsWith('syn-') && t.hasVideo).length === n",
                           arg=len(PRESENT), timeout=30_000)
    return page


def test_the_roster_beside_the_wall_names_the_missing_sites_and_spotlights_or_calls_with_one_click(
    server: Server, three_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    page = _chair(server, open_page, **DESKTOP)
    present = len(PRESENT) + 1  # the mayor's own office publishes too
    page.wait_for_function("(n) => document.getElementById('roster-summary').textContent.includes(`在线 ${n} /`)",
                           arg=present, timeout=10_000)
    assert f"/ {len(EXPECTED)}" in page.inner_text("#roster-summary")
    assert f"未到 {len(EXPECTED) - present}" in page.inner_text("#roster-summary")
    assert page.locator("#roster-list .roster-row[data-state=offline]").count() == len(EXPECTED) - present
    assert page.get_attribute("#roster-list .roster-row[data-site=jiangbei]", "data-state") == "live"
    assert page.get_attribute("#roster-list .roster-row[data-site=jiangnan]", "data-state") == "offline"
    assert layout_problems(page, ["#roster-panel", ".wall > .tile:not([hidden])", ".controls"]) == []
    assert layout_problems(page, ["#roster-list .roster-row[data-site=jiangbei] .roster-label .zh"], min_font_px=15) == []
    shoot(page, "roster-1920")

    # one click on a site: it is on the main screen, for the whole room (this screen moderates)
    page.click("#roster-list .roster-row[data-site=linjiang] .roster-name")
    page.wait_for_function("() => window.__view.spotlit === 'syn-linjiang' && window.__control.state.spotlight === 'syn-linjiang'",
                           timeout=10_000)
    # the missing ones only
    page.click("#roster-missing")
    assert page.locator("#roster-list .roster-row:visible").count() == len(EXPECTED) - present
    page.click("#roster-missing")
    # one click calls a site: the roll-call runs in this room
    page.click("#roster-list .roster-row[data-site=qingshan] button[data-act=call]")
    page.wait_for_selector("#rollcall-strip:not([hidden])", timeout=10_000)
    assert "青山县" in page.inner_text("#rollcall-strip")
    assert unreachable(page, "#roster-list .roster-row[data-site=qingshan] button[data-act=call]") == []


def test_the_roster_on_a_phone_is_a_sheet_that_opens_from_the_controls(
    server: Server, three_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    page = _chair(server, open_page, **PHONE)
    assert page.is_hidden("#roster-panel")
    page.click("#btn-roster")
    page.wait_for_selector("#roster-panel:not([hidden])", timeout=5_000)
    assert layout_problems(page, ["#roster-panel"]) == []
    assert layout_problems(page, ["#roster-list .roster-row:nth-child(-n+6) .roster-name",
                                  "#roster-list .roster-row:nth-child(-n+6) .roster-call"], min_font_px=12) == []
    shoot(page, "roster-phone-390")


def test_the_console_tree_and_the_rollcall_picker_say_which_sites_are_online(
    server: Server, three_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    mayor = server.device_token("roster-console", "office", grants=("issue", "subscribe", "moderate"))
    console = open_page(f"{server.base_url}/command?token={mayor}", **DESKTOP)
    console.wait_for_selector("#tree label[data-online=true] input[value=jiangbei]", state="attached", timeout=15_000)
    assert console.get_attribute("#tree label:has(> input[value=jiangnan])", "data-online") == "false"
    assert "在线 3 /" in console.inner_text("[data-presence-summary=tree]")
    shoot(console, "console-presence-1920")
    picker = open_page(f"{server.base_url}/rollcalls?token={mayor}", **DESKTOP)
    picker.click("#rc-picker summary")
    picker.wait_for_selector("#rc-picker label[data-online=true] input[value=linjiang]", state="attached", timeout=15_000)
    assert picker.get_attribute("#rc-picker label:has(> input[value=jiangnan])", "data-online") == "false"
    shoot(picker, "rollcall-picker-presence-1920")
