"""A WHIP publisher page and a WHEP player page served from another origin, in Chromium: CORS in earnest."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import ROOM, Server, wait_until

pytestmark = pytest.mark.browser

PAGES = Path(__file__).resolve().parent / "cross_origin"
CONNECT_TIMEOUT_MS = 20_000
POLL_MS = 200

FRAMES_ABOVE = "async (n) => (await window.__whep.framesDecoded()) > n"
# aiortc says close_notify when the server ends a session: the browser's DTLS transport closes.
SESSION_ENDED = """(name) => {
  const pc = window[name].pc;
  const transport = pc.getTransceivers()[0].receiver.transport;
  return ["closed", "failed"].includes(pc.connectionState) || (transport && transport.state === "closed");
}"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass


@pytest.fixture(scope="module")
def foreign_origin() -> Iterator[str]:
    """The test pages on http://localhost:<port>: another origin than the server's http://127.0.0.1:<port>."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(PAGES)))
    thread = threading.Thread(target=httpd.serve_forever, name="foreign-origin", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _page_url(origin: str, page: str, endpoint: str, token: str) -> str:
    return f"{origin}/{page}?{urlencode({'endpoint': endpoint, 'token': token})}"


def _wait_status(page: Any, name: str) -> dict[str, Any]:
    page.wait_for_function(f"() => window.{name} && window.{name}.status !== 'starting'", timeout=CONNECT_TIMEOUT_MS)
    state = page.evaluate(f"() => ({{status: window.{name}.status, error: window.{name}.error, location: window.{name}.location}})")
    assert isinstance(state, dict)
    return state


def test_a_publisher_and_a_player_on_another_origin_stream_and_end_with_delete(
    server: Server, browser: object, open_page: Callable[..., Any], foreign_origin: str
) -> None:
    assert not foreign_origin.startswith(server.base_url)
    publish = server.device_token("levee-encoder-x", "jiangbei", grants=("publish",))
    watch = server.device_token("wall-x", "jiangbei", grants=("subscribe",))

    publisher = open_page(_page_url(foreign_origin, "whip_publisher.html", f"{server.base_url}/whip/{ROOM}", publish))
    published = _wait_status(publisher, "__whip")
    assert published["status"] == 201, published
    assert published["location"].startswith(f"{server.base_url}/whip/{ROOM}/")

    whep = f"{server.base_url}/whep/{ROOM}/levee-encoder-x"
    player = open_page(_page_url(foreign_origin, "whep_player.html", whep, watch))
    played = _wait_status(player, "__whep")
    assert played["status"] == 201, played

    start = float(player.evaluate("async () => await window.__whep.framesDecoded()"))
    wait_until(player, FRAMES_ABOVE, start + 30, timeout_ms=CONNECT_TIMEOUT_MS, interval_ms=POLL_MS)
    wait_until(player, "() => window.__whep.pixelSpread() > 40", timeout_ms=CONNECT_TIMEOUT_MS, interval_ms=POLL_MS)

    assert player.evaluate("async () => await window.__whep.stop()") in (200, 204)
    wait_until(player, SESSION_ENDED, "__whep", timeout_ms=CONNECT_TIMEOUT_MS, interval_ms=POLL_MS)

    assert publisher.evaluate("async () => await window.__whip.stop()") in (200, 204)
    # The publisher is gone from the room: a new player is told so, and can read why across origins.
    assert player.evaluate("async () => await window.__whep.play()") == 404
    assert "not_publishing" in str(player.evaluate("() => window.__whep.error"))
    errors = [m for m in publisher.console_messages_seen + player.console_messages_seen if "CORS" in m or "pageerror" in m]
    assert not errors, errors
