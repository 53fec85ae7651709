"""Recording in the browser: the chair records, every screen says "录制中 REC", and the recordings page
plays the sites' tracks side by side on one clock, events on a timeline a click jumps to, and exports
them as one composite video with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Server, running_server, wait_until
from tests.e2e.screens import DESKTOP, shoot
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser

SITES = [("rec-jiangbei", "jiangbei"), ("rec-jiangnan", "jiangnan")]
CHAIR = ("publish", "subscribe", "moderate")
@pytest.fixture(scope="module")
def recording_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server cutting its recordings every 2 seconds."""
    with running_server(tmp_path_factory.mktemp("data"), RECORDING_SEGMENT_SECONDS="2", RECORDING_MIN_FREE_GB="0") as running:
        yield running


def test_the_chair_records_every_screen_says_so_and_the_recording_plays_in_sync(
    recording_server: Server, open_page: Callable[..., Any],
) -> None:
    server = recording_server
    with SyntheticSites(server, SITES):
        wall = open_page(server.room_url(server.device_token("rec-wall", "command_centre", grants=("subscribe",), name="大屏"),
                                         page="wall"), **DESKTOP)
        chair_token = server.device_token("rec-mayor", "office", grants=CHAIR, name="市长")
        chair = open_page(server.room_url(chair_token), **DESKTOP)
        chair.wait_for_function("() => window.__room.tiles().filter((t) => t.identity.startsWith('rec-j') && t.hasVideo).length === 2",
                                timeout=30_000)
        assert "未录制" in wall.inner_text("#ws-rec")
        chair.click("#btn-record")
        wall.wait_for_function("() => document.getElementById('ws-rec').dataset.recording === 'true'", timeout=10_000)
        assert "录制中" in wall.inner_text("#ws-rec") and "REC" in wall.inner_text("#ws-rec")
        chair.wait_for_function("() => document.getElementById('rec-pill').dataset.recording === 'true'", timeout=5_000)
        shoot(wall, "recording-wall")
        shoot(chair, "recording-room")
        chair.wait_for_timeout(6_000)  # six seconds of the consultation on record
        chair.click("#btn-record")
        wall.wait_for_function("() => document.getElementById('ws-rec').dataset.recording === 'false'", timeout=10_000)

    listing = open_page(f"{server.base_url}/recordings?room=consultation&token={chair_token}", **DESKTOP)
    assert listing.locator("#rec-sessions tbody tr").count() == 1
    shoot(listing, "recording-list")
    listing.click("#rec-sessions a.btn")
    listing.wait_for_selector(".rec-tile video")
    assert listing.locator(".rec-tile").count() == 3  # the two sites and the chair's own camera
    events = listing.locator(".rec-event-jump")
    assert events.count() >= 2  # the recording's start and stop, at least
    listing.click("#rec-play")
    # every video playing at once is where the clock says (each plays its own segment file)
    offsets = wait_until(listing, """() => {
      const p = window.__player, start = JSON.parse(document.getElementById('page-data').textContent).manifest.started_at;
      const off = p.tracks.filter((e) => e.track.kind === 'video' && e.segment && !e.pending && e.media.readyState >= 2
        && !e.media.paused && e.media.currentTime > 0.2).map((e) => Math.abs(e.segment.start + e.media.currentTime - (start + p.position)));
      return off.length >= 2 ? off : null;
    }""", timeout_ms=20_000)
    assert all(offset < 0.3 for offset in offsets), f"each video this far from the clock: {offsets}"
    shoot(listing, "recording-player")
    # the composite export: a progress bar while the worker encodes, then its download
    listing.click("#rec-export-start")
    listing.wait_for_function("""() => { const box = document.getElementById('rec-export'), bar = document.getElementById('rec-export-bar');
      return box.dataset.state === 'done' || (box.dataset.state === 'running' && Number(bar.getAttribute('aria-valuenow')) > 0); }""",
                              timeout=30_000)
    listing.locator("#rec-export").scroll_into_view_if_needed()
    shoot(listing, "recording-export-progress")
    listing.wait_for_function("() => document.getElementById('rec-export').dataset.state === 'done'", timeout=60_000)
    assert listing.get_attribute("#rec-export-bar", "aria-valuenow") == "100"
    assert "/export/download" in (listing.get_attribute("#rec-export-download", "href") or "")
    shoot(listing, "recording-export-done")
    before = listing.evaluate("() => window.__player.position")
    events.first.click()
    assert listing.evaluate("() => window.__player.position") < before, "the first event is before where the clock was"
    assert not [m for m in listing.console_messages_seen if m.startswith("pageerror")]  # type: ignore[attr-defined]
    listing.click("#rec-verify")
    assert listing.get_attribute("#rec-verdict", "data-verdict") == "verified"
    assert listing.locator("#rec-verify-table tr[data-status='verified']").count() >= 3
    shoot(listing, "recording-verify")
