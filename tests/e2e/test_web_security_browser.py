"""In Chromium: device links leave the address bar clean and still join; the pages run under their
Content-Security-Policy without a violation; a page on another port of the same host cannot use the
mayor's cookie; a framed page stays empty; the login page says how long to wait after too many tries."""

from __future__ import annotations

import functools
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOM, Server

pytestmark = pytest.mark.browser

JOIN_TIMEOUT_MS = 20_000
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
CHAIR_GRANTS = ("publish", "subscribe", "moderate", "issue")

# A page of another origin on the same host (same-site: the SameSite=Lax cookie goes along) that
# tries what the review did: the console socket, a no-cors form post, a real form, and a frame.
EVIL_PAGE = """<!doctype html><meta charset="utf-8"><title>evil</title>
<iframe id="frame" src="{base}/rooms/{room}"></iframe>
<form id="form" method="post" action="{base}/rollcalls" target="sink">
  <input name="sites" value="jiangbei"><input name="mode" value="all"><input name="title" value="CSRF form">
</form>
<iframe name="sink" id="sink"></iframe>
<script>
window.__ws = "pending";
const ws = new WebSocket("{ws}/command/ws");
ws.onopen = () => {{ window.__ws = "open"; ws.send(JSON.stringify({{type: "directive_issue", id: "1", cls: "reference",
  title: "CSRF", sites: ["jiangbei"]}})); }};
ws.onclose = (e) => {{ if (window.__ws === "pending") window.__ws = "refused"; }};
fetch("{base}/rollcalls", {{method: "POST", mode: "no-cors", credentials: "include",
  body: new URLSearchParams({{sites: "jiangbei", mode: "all", title: "CSRF no-cors"}})}})
  .then(() => {{ window.__fetch = "sent"; }}, () => {{ window.__fetch = "failed"; }});
</script>"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass


@pytest.fixture
def evil_origin(server: Server, tmp_path: Path) -> Iterator[str]:
    """The evil page on http://127.0.0.1:<another port>."""
    ws_base = server.base_url.replace("http://", "ws://")
    (tmp_path / "evil.html").write_text(EVIL_PAGE.format(base=server.base_url, ws=ws_base, room=ROOM), encoding="utf-8")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, name="evil-origin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _csp_violations(page: Any) -> list[str]:
    return [m for m in page.console_messages_seen if "Content Security Policy" in m or "Refused to" in m]


def _log_in(page: Any, server: Server, username: str, password: str) -> None:
    page.goto(f"{server.base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_a_device_link_leaves_no_token_in_the_address_bar_and_joins(server: Server, open_page: Callable[..., Any]) -> None:
    phone_token = server.device_token("sec-phone", "mobile01", name="临江县移动平台")
    phone = open_page(server.room_url(phone_token, page="field"))
    phone.wait_for_function("() => window.__room && window.__room.publisher && window.__room.publisher.connectionState === 'connected'",
                            timeout=JOIN_TIMEOUT_MS)
    assert phone.url == f"{server.base_url}/field/{ROOM}"
    assert phone.evaluate("() => window.__room.me.identity") == "sec-phone"
    wall = open_page(server.room_url(server.device_token("sec-wall", "command_centre", grants=("subscribe",)), page="wall") + "&layout=2x2")
    wall.wait_for_function("(id) => window.__room && window.__room.tiles().some((t) => t.identity === id && t.hasVideo)",
                           arg="sec-phone", timeout=JOIN_TIMEOUT_MS)
    assert wall.url == f"{server.base_url}/wall/{ROOM}?layout=2x2"
    wall.reload()  # a wall that reloads itself (after a long outage) is still the wall
    wall.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=JOIN_TIMEOUT_MS)
    assert wall.evaluate("() => window.__room.me.identity") == "sec-wall"
    assert "token" not in wall.url
    assert _csp_violations(phone) == [] and _csp_violations(wall) == []


def test_the_pages_run_under_their_policy(server: Server, open_page: Callable[..., Any]) -> None:
    chair = server.device_token("sec-chair", "office", grants=CHAIR_GRANTS, name="市长")
    console = open_page(f"{server.base_url}/command?token={chair}")
    console.wait_for_selector("#live[data-state=live]", timeout=JOIN_TIMEOUT_MS)  # its socket, by the cookie
    assert "token" not in console.url
    rollcalls = open_page(f"{server.base_url}/rollcalls?token={chair}")
    assert "token" not in rollcalls.url
    for path in ("/command/incidents", "/rollcalls/schedules"):
        rollcalls.goto(server.base_url + path)
        rollcalls.wait_for_load_state("load")
    rollcalls.goto(f"{server.base_url}/rollcalls")
    rollcalls.select_option("#rc-start-form select[name=group]", index=1)
    rollcalls.click("#rc-start")  # the page's own form: Origin null, Sec-Fetch-Site same-origin
    rollcalls.wait_for_url(f"{server.base_url}/rollcalls/*", timeout=10_000)
    rollcalls.wait_for_selector("#rc-grid .rc-card", timeout=10_000)
    board = rollcalls.url
    rollcalls.goto(board + "/report")
    rollcalls.wait_for_selector("[data-print]")
    person = open_page()
    _log_in(person, server, "chief", "demochief")
    person.wait_for_url(f"{server.base_url}/", timeout=10_000)
    person.goto(f"{server.base_url}/rooms/{ROOM}")
    person.click("#join-btn")
    person.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=JOIN_TIMEOUT_MS)
    for page in (console, rollcalls, person):
        assert _csp_violations(page) == [], page.url


def test_a_page_on_another_port_cannot_use_the_cookie(server: Server, open_page: Callable[..., Any], evil_origin: str) -> None:
    page = open_page()
    _log_in(page, server, "mayor", "demomayor")
    page.wait_for_url(f"{server.base_url}/", timeout=10_000)
    before = _rollcall_count(server)
    page.goto(f"{evil_origin}/evil.html")
    page.wait_for_function("() => window.__ws !== 'pending' && window.__fetch !== undefined", timeout=10_000)
    assert page.evaluate("() => window.__ws") == "refused"
    page.evaluate("() => document.getElementById('form').submit()")
    refused_posts = "cross-origin request refused method=POST path=/rollcalls"
    deadline = time.monotonic() + 10
    while server.log().count(refused_posts) < 2:  # the no-cors fetch and the form: both reach the server
        assert time.monotonic() < deadline, server.log()[-2000:]
        page.wait_for_timeout(100)
    assert _rollcall_count(server) == before
    assert "cross-origin request refused method=GET path=/command/ws" in server.log()
    framed = page.frame_locator("#frame")
    assert framed.locator("#wall").count() == 0  # frame-ancestors 'none': the chair's page is not framed


def test_the_login_page_says_how_long_to_wait(server: Server, open_page: Callable[..., Any]) -> None:
    page = open_page(f"{server.base_url}/login", viewport={"width": 1280, "height": 800})
    for i in range(5):
        _log_in(page, server, "county04", f"wrong{i}")
        page.wait_for_selector(".alert-error")
    box = page.locator("#login-wait")
    box.wait_for()
    text = box.inner_text()
    assert "尝试次数过多" in text and "Too many attempts" in text
    assert text.index("请") < text.index("Try again in")  # Chinese first, English beside it
    assert page.locator("#login-form button[type=submit]").is_disabled()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "login-throttled.png"))
    phone = open_page(f"{server.base_url}/login", viewport={"width": 390, "height": 844}, is_mobile=True)
    _log_in(phone, server, "county04", "wrong-again")
    phone.locator("#login-wait").wait_for()
    phone.screenshot(path=str(SHOTS / "login-throttled-phone.png"))
    assert _csp_violations(page) == [] and _csp_violations(phone) == []


def _rollcall_count(server: Server) -> int:
    token = server.device_token("sec-audit", "command_centre", grants=("moderate",))
    with urllib.request.urlopen(f"{server.base_url}/rollcalls?token={token}", timeout=10) as resp:
        html = resp.read().decode()
    return len(re.findall(r'href="/rollcalls/[0-9a-f]{12}"', html))  # one link per roll-call in the list
