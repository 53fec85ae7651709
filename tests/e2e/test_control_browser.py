"""Real Chromium pages under the chair's control: the spotlight reaches every screen, a mute shows who did it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import REPO, Server

pytestmark = pytest.mark.browser

JOIN_TIMEOUT_MS = 20_000
CHANGE_TIMEOUT_MS = 5_000
CHAIR_GRANTS = ("subscribe", "moderate")

MAIN_TILE = """(id) => {
  const v = window.__view;
  const tile = document.querySelector('.tile.spotlit');
  return !!v && v.spotlit === id && !!tile && tile.dataset.identity === id
    && document.getElementById('wall').dataset.layout === 'spotlight';
}"""


def _me(page: object) -> str:
    page.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]
    return str(page.evaluate("() => window.__room.me.identity"))  # type: ignore[attr-defined]


def _tile_action(page: object, identity: str, action: str) -> None:
    tile = f".tile[data-identity='{identity}']"
    page.wait_for_selector(f"{tile} [data-ctl='{action}']", state="attached", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]
    # a tile's actions are on the main tile: a click on another one puts it there first
    if not page.evaluate("(id) => window.__view.spotlit === id", identity):  # type: ignore[attr-defined]
        page.click(tile)  # type: ignore[attr-defined]
    page.click(f"{tile} [data-ctl='{action}']")  # type: ignore[attr-defined]


def test_the_chair_spotlights_a_site_and_every_other_screen_shows_it_large(
    server: Server, open_page: Callable[..., object]
) -> None:
    viewport = {"width": 1440, "height": 900}
    wall = open_page(server.room_url(server.device_token("e2e-wall", "command_centre", grants=("subscribe",), name="大屏"), page="wall"),
                     viewport={"width": 1920, "height": 1080})
    chair = open_page(server.room_url(server.device_token("e2e-mayor", "office", grants=CHAIR_GRANTS, name="市长")), viewport=viewport)
    a = open_page(server.room_url(server.device_token("e2e-ctl-linjiang", "linjiang", name="临江县终端")), viewport=viewport)
    b = open_page(server.room_url(server.device_token("e2e-ctl-qingshan", "qingshan", name="青山县终端")), viewport=viewport)
    id_chair, id_a, id_b = _me(chair), _me(a), _me(b)
    _me(wall)
    assert chair.evaluate("() => window.__control.myRole") == "chair"  # type: ignore[attr-defined]

    _tile_action(chair, id_a, "spotlight")
    for page in (b, wall, chair):
        page.wait_for_function(MAIN_TILE, arg=id_a, timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]

    _tile_action(chair, id_b, "spotlight")
    for page in (a, wall, chair):
        page.wait_for_function(MAIN_TILE, arg=id_b, timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]

    # the wall shows the spotlit site's picture, not just its frame
    wall.wait_for_function(  # type: ignore[attr-defined]
        "(id) => window.__room.tiles().some((t) => t.identity === id && t.hasVideo)", arg=id_b, timeout=JOIN_TIMEOUT_MS,
    )
    # a mute from the chair: the site sees it was muted and by whom, and its own mic button goes off
    _tile_action(chair, id_a, "mute")
    a.wait_for_selector("#muted-banner:not([hidden])", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    assert "e2e-mayor" in a.inner_text("#muted-banner") or "市长" in a.inner_text("#muted-banner")  # type: ignore[attr-defined]
    a.wait_for_function("() => window.__room.micMuted === true", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    # every tile says its bitrate at a glance
    wall.wait_for_function(  # type: ignore[attr-defined]
        "() => [...document.querySelectorAll('.tile-quality .qtext')].some((q) => /[kM]bps/.test(q.textContent))",
        timeout=10_000,
    )

    out = REPO / "screenshots"
    out.mkdir(exist_ok=True)
    a.evaluate("() => window.__room.request({type: 'raise_hand', raised: true})")  # type: ignore[attr-defined]
    chair.click("#btn-chair")  # type: ignore[attr-defined]
    chair.wait_for_selector("#control-panel .hand-queue li", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    chair.screenshot(path=str(out / "control-chair.png"))  # type: ignore[attr-defined]
    a.screenshot(path=str(out / "control-muted-site.png"))  # type: ignore[attr-defined]
    wall.screenshot(path=str(out / "wall-spotlight.png"))  # type: ignore[attr-defined]
    chair.click("#control-panel [data-ctl='layout-2x2']")  # type: ignore[attr-defined]
    chair.click("#control-panel [data-ctl='clear-spotlight']")  # type: ignore[attr-defined]
    wall.wait_for_function("() => document.getElementById('wall').dataset.layout === '2x2'", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    wall.screenshot(path=str(out / "wall-2x2.png"))  # type: ignore[attr-defined]
    # the chair grants the floor: the hand goes down and the site's microphone opens again
    chair.click("#control-panel [data-ctl='grant']")  # type: ignore[attr-defined]
    a.wait_for_function("() => window.__room.micMuted === false", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    a.wait_for_selector("#muted-banner", state="hidden", timeout=CHANGE_TIMEOUT_MS)  # type: ignore[attr-defined]
    del id_chair

    # the wall's connection drops (its socket dies under it): it says so, then comes back by itself
    wall.evaluate("() => { window.__room.ws.close(); }")  # type: ignore[attr-defined]
    # (state and overlay read at the same moment: a quick reconnect may end "reconnecting" in between two reads)
    wall.wait_for_function(  # type: ignore[attr-defined]
        "() => document.body.dataset.conn === 'reconnecting' && getComputedStyle(document.getElementById('wall-conn')).display !== 'none'",
        timeout=CHANGE_TIMEOUT_MS)
    try:
        wall.wait_for_function(  # type: ignore[attr-defined]
            "(ids) => window.__room.state === 'connected' && ids.every((id) => window.__room.tiles().some((t) => t.identity === id && t.hasVideo))",
            arg=[id_a, id_b], timeout=JOIN_TIMEOUT_MS + 15_000,
        )
    except Exception:
        print("TILES", wall.evaluate("() => window.__room.tiles()"))
        print("STATS", wall.evaluate("async () => await window.__room.inboundVideoStats()"))
        raise
    assert not wall.is_visible("#wall-conn")  # type: ignore[attr-defined]
