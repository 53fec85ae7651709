"""Spotlight with ten sites: every other site stays visible, clickable and named in the strip, on every screen."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, PHONE, WALL, layout_problems, shoot, unreachable
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser

SITES = [(f"syn-{site}", site) for site in ("jiangbei", "jiangnan", "linjiang", "qingshan", "baishui", "yunxi",
                                            "fengling", "songhe", "huyang", "shimen")]
STRIP = ".wall > .tile:not([hidden]):not(.spotlit)"
TILES = ".wall > .tile:not([hidden])"
ALL_VIDEO = """(n) => { const t = window.__room.tiles().filter((x) => x.identity.startsWith('syn-'));
  return t.length === n && t.every((x) => x.hasVideo); }"""


@pytest.fixture(scope="module")
def ten_sites(server: Server) -> Iterator[SyntheticSites]:
    """Ten sites publishing video for the whole module."""
    with SyntheticSites(server, SITES) as sites:
        yield sites


def _check_strip(page: Any, min_font_px: float) -> None:
    page.wait_for_selector(".wall[data-layout='spotlight']", state='attached', timeout=10_000)
    page.wait_for_function(f"() => document.querySelectorAll({STRIP!r}).length === {len(SITES) - 1}", timeout=10_000)
    assert layout_problems(page, [TILES, ".controls"]) == []
    assert unreachable(page, STRIP) == []
    assert layout_problems(page, [f"{STRIP} .tile-label > .zh"], min_font_px=min_font_px) == []


def test_a_spotlight_beside_nine_sites_at_1920_keeps_every_tile_visible_and_clickable(
    server: Server, ten_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    chief = server.device_token("chief-spot", "command_centre", grants=("subscribe", "moderate"))
    page = open_page(server.room_url(chief), **DESKTOP)
    page.wait_for_function(ALL_VIDEO, arg=len(SITES), timeout=30_000)
    assert layout_problems(page, [TILES, ".controls"]) == []
    shoot(page, "grid-10-sites-1920")
    page.click(".tile[data-identity='syn-linjiang']")
    _check_strip(page, min_font_px=14)
    shoot(page, "spotlight-10-sites-1920")
    # the last tile of the strip is as reachable as the first: a click puts it on the main screen
    last = page.eval_on_selector_all(STRIP, "(t) => t[t.length - 1].dataset.identity")
    page.hover(f".tile[data-identity='{last}']")
    page.click(f".tile[data-identity='{last}']")
    page.wait_for_function("(id) => window.__view.spotlit === id", arg=last, timeout=5_000)
    _check_strip(page, min_font_px=14)


def test_a_spotlight_on_a_phone_shows_every_other_site_below_it(
    server: Server, ten_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    viewer = server.device_token("phone-spot", "mobile03", grants=("subscribe",))
    page = open_page(server.room_url(viewer), **PHONE)
    page.wait_for_function(ALL_VIDEO, arg=len(SITES), timeout=30_000)
    page.click(".tile[data-identity='syn-jiangnan']")
    page.wait_for_selector(".wall[data-strip='below']", timeout=5_000)
    _check_strip(page, min_font_px=11)
    shoot(page, "spotlight-10-sites-phone-390")


def test_a_4k_wall_in_spotlight_shows_every_other_site_in_its_strip(
    server: Server, ten_sites: SyntheticSites, open_page: Callable[..., Any]
) -> None:
    wall = server.device_token("wall-spot", "command_centre", grants=("subscribe",))
    page = open_page(f"{server.base_url}/wall/consultation?token={wall}&layout=spotlight", **WALL)
    page.wait_for_function(ALL_VIDEO, arg=len(SITES), timeout=30_000)
    page.wait_for_selector(".wall[data-layout='spotlight']", state='attached', timeout=10_000)
    page.wait_for_function(f"() => document.querySelectorAll({STRIP!r}).length === {len(SITES) - 1}", timeout=10_000)
    assert layout_problems(page, [TILES]) == []
    assert unreachable(page, STRIP) == []
    shoot(page, "spotlight-10-sites-wall-3840")
