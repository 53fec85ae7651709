"""The server restarts (a crash, an upgrade): a field phone and a wall come back by themselves.

Nothing of the room survives the restart in the embedded store, so the phone's tile is new on the
wall; what matters is that nobody has to touch either screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import running_server, wait_until

pytestmark = pytest.mark.browser

DECODING = """async ([identity, above]) => {
  const r = window.__room;
  if (!r || !r.subscriber || r.state !== "connected") return false;
  const s = (await r.inboundVideoStats()).find((x) => x.identity === identity);
  return !!s && s.framesDecoded > above;
}"""


def test_a_phone_and_a_wall_are_back_by_themselves_after_the_server_restarts(
    open_page: Callable[..., object], tmp_path: Path
) -> None:
    with running_server(tmp_path) as first:
        port, secret = int(first.base_url.rsplit(":", 1)[1]), first.secret
        phone = open_page(first.room_url(first.device_token("levee-phone", "mobile01"), page="field"))
        wall = open_page(first.room_url(first.device_token("wall-screen", "command_centre", grants=("subscribe",)), page="wall"))
        wait_until(wall, DECODING, ["levee-phone", 10], timeout_ms=30_000)
    # The server is gone: both pages notice and keep trying.
    wall.wait_for_function("() => window.__room.state !== 'connected'", timeout=15_000)  # type: ignore[attr-defined]
    with running_server(tmp_path, port=port, secret=secret) as second:
        up = time.monotonic()
        wait_until(wall, DECODING, ["levee-phone", 0], timeout_ms=30_000)
        back = time.monotonic() - up
        assert phone.evaluate("() => window.__room.state") == "connected"  # type: ignore[attr-defined]
        print(f"server restart: the phone's video decoding on the wall {back:.1f} s after the server was up again")
        assert back < 10, second.log()[-3000:]
