"""The command centre's wall at 4K: status bar, readable names, the chair's cells, rotation, roll-call, no observer tiles."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, WALL, layout_problems, shoot
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser

SITES = [(f"syn-{s}", s) for s in ("jiangbei", "jiangnan", "linjiang", "qingshan", "baishui", "yunxi")]
CHAIR_GRANTS = ("publish", "subscribe", "moderate", "issue")
SHOWN = "() => [...document.querySelectorAll('.wall > .tile:not([hidden])')].map((t) => t.dataset.identity || ('vacant:' + t.dataset.site))"


@pytest.fixture(scope="module")
def six_sites(server: Server) -> Iterator[SyntheticSites]:
    """Six sites publishing video for the whole module."""
    with SyntheticSites(server, SITES) as sites:
        yield sites


def _wait_video(page: Any) -> None:
    page.wait_for_function("(n) => window.__room.tiles().filter((t) => t.identity.startsWith('syn-') && t.hasVideo).length === n",
                           arg=len(SITES), timeout=30_000)


def _start_rollcall(server: Server, site: str) -> None:
    chief = server.device_token("wall-chief", "command_centre", grants=("subscribe", "moderate"))
    body = json.dumps({"sites": [site], "mode": "sequence", "window": 30, "grace": 0, "room": "consultation"}).encode()
    request = urllib.request.Request(f"{server.base_url}/api/rollcalls?token={chief}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_the_wall_is_ready_for_a_command_centre(server: Server, six_sites: SyntheticSites, open_page: Callable[..., Any]) -> None:
    wall = open_page(server.room_url(server.device_token("hall-wall", "command_centre", grants=("subscribe",), name="大屏"), page="wall"), **WALL)
    chair = open_page(server.room_url(server.device_token("wall-mayor", "office", grants=CHAIR_GRANTS, name="市长")), **DESKTOP)
    _wait_video(wall)
    _wait_video(chair)
    # the wall itself is nobody's tile: an observer that sends nothing has no picture
    assert chair.locator(".tile[data-identity='hall-wall']").count() == 0
    # status bar: time, room, who is in of those expected, recording, the link
    # six sites, the mayor's office and the wall's own command centre; the roster says the same
    wall.wait_for_function("() => document.getElementById('ws-online-count').textContent === '8'", timeout=10_000)
    chair.wait_for_function("() => document.getElementById('roster-summary').textContent.includes('在线 8 / 23')", timeout=10_000)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", wall.inner_text("#ws-clock"))
    assert "/ 23" in wall.inner_text("#ws-online")
    assert "未录制" in wall.inner_text("#ws-rec")
    assert wall.get_attribute("#ws-link", "data-state") == "connected"
    status = ["#wall-status .ws-title", "#ws-online", "#ws-rec", "#ws-link", "#ws-clock"]
    assert layout_problems(wall, status + [".wall > .tile:not([hidden])"], min_font_px=36) == []
    assert layout_problems(wall, [".wall > .tile:not([hidden]) .tile-label > .zh"], min_font_px=56) == []
    shoot(wall, "wall-grid-3840")

    # the chair picks 3x3 and drags Linjiang from the roster onto the first cell, an absent site onto the second
    chair.click("#btn-chair")
    chair.click("[data-ctl='layout-3x3']")
    chair.wait_for_selector(".cell-slot[data-cell='0']", timeout=10_000)
    chair.drag_and_drop("#roster-list .roster-row[data-site=linjiang]", ".cell-slot[data-cell='0']")
    chair.wait_for_selector(".cell-slot[data-cell='0'][data-site=linjiang]", timeout=10_000)
    chair.select_option(".cell-slot[data-cell='1'] select", "jiangkou")
    wall.wait_for_function(f"() => {{ const s = ({SHOWN})(); return s[0] === 'syn-linjiang' && s[1] === 'vacant:jiangkou'; }}", timeout=10_000)
    assert "离线" in wall.inner_text(".tile-vacant[data-site=jiangkou]")
    assert layout_problems(wall, status + [".wall > .tile:not([hidden])"]) == []
    assert layout_problems(wall, [".wall > .tile:not([hidden]) .tile-label > .zh"], min_font_px=48) == []
    shoot(wall, "wall-3x3-cells-3840")
    shoot(chair, "wall-chair-cells-1920")

    # 2x2 with Linjiang fixed: the three free cells turn through the counties (轮巡 through a saved group)
    chair.evaluate("() => window.__control.send({type: 'set_layout', layout: '2x2', cells: ['linjiang'], rotate_every: 2, rotate_group: 'counties'})")
    wall.wait_for_function(f"() => {{ const s = ({SHOWN})(); return s.length === 4 && s[0] === 'syn-linjiang'; }}", timeout=10_000)
    first = wall.evaluate(SHOWN)
    wall.wait_for_function(f"(before) => {{ const s = ({SHOWN})(); return s[0] === 'syn-linjiang' && s.slice(1).join() !== before.slice(1).join(); }}",
                           arg=first, timeout=10_000)
    assert "轮巡" in wall.inner_text("#ws-mode") and "十一个区县" in wall.inner_text("#ws-mode")
    # the mayor's office is not a county: it never takes a turn
    for _ in range(3):
        before = wall.evaluate(SHOWN)
        assert "wall-mayor" not in before
        wall.wait_for_function(f"(b) => ({SHOWN})().join() !== b.join()", arg=before, timeout=10_000)
    shoot(wall, "wall-2x2-rotating-3840")

    # a roll-call: the wall shows the site being called, large, whatever its layout
    _start_rollcall(server, "qingshan")
    wall.wait_for_function("() => window.__view.spotlit === 'syn-qingshan' && document.getElementById('wall').dataset.layout === 'spotlight'",
                           timeout=10_000)
    assert "青山县" in wall.inner_text("#ws-mode")
    assert layout_problems(wall, status + ["#ws-mode", ".wall > .tile:not([hidden])"]) == []
    shoot(wall, "wall-rollcall-3840")
