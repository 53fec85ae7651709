"""Video roll-call in real Chromium sites with fake cameras: in time, late, never; snapshots; camera off."""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
SITES = [("desk-county01", "jiangbei"), ("desk-county02", "jiangnan"), ("desk-county03", "linjiang")]


def _call(server, token: str, path: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.base_url}{path}?token={token}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if path.endswith(".json") or body is not None else raw


def _site_pages(server, open_page) -> dict[str, object]:
    pages = {}
    for identity, site in SITES:
        page = open_page(server.room_url(server.device_token(identity, site)))
        pages[site] = page
    for page in pages.values():
        page.wait_for_function("() => window.__room && window.__room.publisher && "
                               "window.__room.publisher.connectionState === 'connected'", timeout=30_000)
    return pages


def test_a_sequential_rollcall_scores_in_time_late_and_absent_with_real_snapshots(server, open_page) -> None:
    SHOTS.mkdir(exist_ok=True)
    pages = _site_pages(server, open_page)
    chief = server.device_token("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    started = _call(server, chief, "/api/rollcalls", {"sites": [s for _, s in SITES], "mode": "sequence",
                                                     "window": 8, "grace": 0, "room": "consultation",
                                                     "title": "测试点名 Test roll-call"})
    rid = started["id"]

    first = pages["jiangbei"]
    first.wait_for_selector("#rollcall-alert[data-state='calling']", timeout=10_000)
    # the others' screens spotlight the site being called
    pages["jiangnan"].wait_for_function("() => window.__view.spotlit === 'desk-county01'", timeout=10_000)
    first.screenshot(path=str(SHOTS / "rollcall-alert.png"))
    first.click("#rc-present")
    first.wait_for_selector("#rollcall-alert[data-state='answered']", timeout=10_000)

    second = pages["jiangnan"]
    second.wait_for_selector("#rollcall-alert[data-state='calling']", timeout=10_000)
    second.wait_for_selector("#rollcall-alert[data-state='overdue']", timeout=15_000)
    second.click("#rc-present")
    second.wait_for_selector("#rollcall-alert[data-state='late']", timeout=10_000)

    pages["linjiang"].wait_for_selector("#rollcall-alert[data-state='absent']", timeout=20_000)
    board = open_page(f"{server.base_url}/rollcalls/{rid}?token={chief}")
    board.wait_for_function("() => window.__board() && !window.__board().open && "
                            "window.__board().sites.filter(s => s.snapshot).length === 2", timeout=15_000)
    board.screenshot(path=str(SHOTS / "rollcall-board.png"), full_page=True)
    result = _call(server, chief, f"/rollcalls/{rid}.json")
    by_site = {row["site"]: row for row in result["sites"]}
    assert [by_site[s]["outcome"] for _, s in SITES] == ["answered", "late", "absent"]
    assert 0 < by_site["jiangbei"]["response_time"] < 8
    assert 8 < by_site["jiangnan"]["response_time"] < 16
    assert by_site["linjiang"]["response_time"] is None and by_site["linjiang"]["snapshot"] is None
    assert result["totals"]["answered"] == 1 and result["totals"]["late"] == 1 and result["totals"]["absent"] == 1
    for site in ("jiangbei", "jiangnan"):
        jpeg = _call(server, chief, by_site[site]["snapshot_url"])
        assert jpeg[:3] == b"\xff\xd8\xff"
        pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=float)
        assert pixels.shape[1] >= 160 and pixels.std() > 5, "the snapshot is a uniform picture"
    report = open_page(f"{server.base_url}/rollcalls/{rid}/report?token={chief}")
    report.screenshot(path=str(SHOTS / "rollcall-report.png"), full_page=True)
    csv = _call(server, chief, f"/rollcalls/{rid}.csv").decode("utf-8-sig")
    assert "jiangnan" in csv and "late" in csv


def test_a_site_pressing_present_with_its_camera_off_gets_no_video(server, open_page) -> None:
    page = open_page(server.room_url(server.device_token("desk-county05", "baishui")))
    page.wait_for_function("() => window.__room && window.__room.publisher && "
                           "window.__room.publisher.connectionState === 'connected'", timeout=30_000)
    page.click("#btn-camera")
    page.wait_for_function("() => window.__room.cameraMuted === true")
    chief = server.device_token("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    started = _call(server, chief, "/api/rollcalls", {"sites": ["baishui"], "mode": "all", "window": 20, "grace": 0})
    page.wait_for_selector("#rollcall-alert[data-state='calling']", timeout=10_000)
    page.click("#rc-present")
    page.wait_for_selector("#rc-alert-result[data-level='bad']", timeout=10_000)
    assert "无视频" in page.inner_text("#rc-alert-result")
    page.screenshot(path=str(SHOTS / "rollcall-no-video.png"))
    result = _call(server, chief, f"/rollcalls/{started['id']}.json")
    assert result["sites"][0]["outcome"] == "no_video" and result["sites"][0]["snapshot"] is None
