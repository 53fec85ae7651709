"""The browser's session: when it tries again, what it gives Chromium as ICE servers, and two tabs
of the same identity that must not take each other over for ever."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser

JOIN_TIMEOUT_MS = 20_000
QUIET_MS = 3_000  # several fast-retry periods (1 s): long enough to see a tab that would come back

# The retry schedule with a clock the test moves and a fixed "random" (the middle of the jitter).
SCHEDULE_JS = """async () => {
  const m = await import("/static/reconnect.js");
  let now = 0;
  const lost = (refused = false, step = 0) => { now += step; return Math.round(p.nextDelay(refused)); };
  const p = new m.RetryPolicy({ now: () => now, random: () => 0.5 });
  const network = [lost(), lost(false, 1000), lost(false, 10000), lost(false, 18000)];
  const slow = [lost(false, 1000), lost(false, 2000), lost(false, 4000), lost(false, 8000), lost(false, 15000), lost(false, 15000)];
  p.reset();
  const refused = [lost(true), lost(true), lost(true), lost(true), lost(true)];
  const hurryAfterRefusal = p.mayHurry;
  p.accepted();
  const hurryAfterWelcome = p.mayHurry;
  return { network, slow, refused, hurryAfterRefusal, hurryAfterWelcome };
}"""

# watchPeer on a stand-in connection: disconnected heals within the grace, then stays lost.
WATCH_JS = """async () => {
  const { watchPeer } = await import("/static/reconnect.js");
  const pc = new EventTarget();
  const set = (s) => { pc.connectionState = s; pc.dispatchEvent(new Event("connectionstatechange")); };
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const lost = [];
  pc.connectionState = "new";
  const w = watchPeer(pc, "publisher", (why) => lost.push(why), { graceMs: 100, connectMs: 150 });
  w.negotiated();
  set("connecting"); set("connected");
  await wait(200);
  const afterConnect = lost.length;         // connected in time: no "did not connect"
  set("disconnected"); await wait(50); set("connected"); await wait(100);
  const afterBlip = lost.length;            // healed within the grace
  set("disconnected"); await wait(150);
  set("failed");                            // already reported: once only
  return { afterConnect, afterBlip, lost };
}"""

RTC_CONFIG_JS = """async () => {
  const { rtcConfig } = await import("/static/room-client.js");
  return rtcConfig([
    "stun:stun.example.org:3478", "",
    { urls: ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"], username: "1700000000:dev", credential: "c2VjcmV0" },
    "turn:no-credentials.example.org",
    { urls: "turn:half.example.org", username: "u" },
    { urls: "stun:other.example.org" },
  ]);
}"""


def test_retry_schedule_is_fast_in_the_grace_period_then_backs_off(server: Server, open_page: Callable[..., object]) -> None:
    """At once, then every second for 30 s, then 2, 4, 8, 15 s; a refused hello backs off from the start."""
    page = open_page(f"{server.base_url}/login")
    got = page.evaluate(SCHEDULE_JS)  # type: ignore[attr-defined]
    assert got["network"] == [0, 1000, 1000, 1000]
    assert got["slow"] == [2000, 4000, 8000, 15000, 15000, 15000]
    assert got["refused"] == [2000, 4000, 8000, 15000, 15000]
    assert got["hurryAfterRefusal"] is False and got["hurryAfterWelcome"] is True


def test_a_peer_connection_is_lost_when_it_stays_disconnected(server: Server, open_page: Callable[..., object]) -> None:
    """A disconnected blip shorter than the grace is forgiven; a longer one is reported once."""
    page = open_page(f"{server.base_url}/login")
    got = page.evaluate(WATCH_JS)  # type: ignore[attr-defined]
    assert got == {"afterConnect": 0, "afterBlip": 0, "lost": ["publisher connection lost"]}


def test_ice_servers_as_urls_or_with_turn_credentials(server: Server, open_page: Callable[..., object]) -> None:
    """Plain URLs become one entry; TURN entries keep their credentials; TURN without them is left out."""
    page = open_page(f"{server.base_url}/login")
    config = page.evaluate(RTC_CONFIG_JS)  # type: ignore[attr-defined]
    assert config["iceServers"] == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
         "username": "1700000000:dev", "credential": "c2VjcmV0"},
        {"urls": "stun:other.example.org"},
    ]
    # and Chromium takes it as it is
    assert page.evaluate("(c) => { new RTCPeerConnection(c).close(); return true; }", config)  # type: ignore[attr-defined]


def _connected(page: object) -> None:
    page.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]


def _replaced(page: object) -> None:
    page.wait_for_selector("#session-replaced:not([hidden])", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]
    assert page.evaluate("() => window.__room.state") == "replaced"  # type: ignore[attr-defined]
    button = page.get_by_role("button", name="在此继续 Continue here")  # type: ignore[attr-defined]
    assert button.is_visible()
    assert button.bounding_box()["height"] >= 64  # a large target


# Count the sockets a page opens, to see whether it tries to come back by itself.
COUNT_SOCKETS = """() => {
  const Original = window.WebSocket;
  window.__sockets = 0;
  window.WebSocket = class extends Original { constructor(...args) { super(...args); window.__sockets += 1; } };
}"""


def test_two_tabs_of_one_identity_do_not_fight(server: Server, open_page: Callable[..., object]) -> None:
    """The older tab is told, stays stopped, and takes the session back only when asked to."""
    token = server.device_token("e2e-two-tabs", "linjiang", name="临江县值班员")
    first = open_page()
    first.add_init_script(COUNT_SOCKETS)  # type: ignore[attr-defined]
    first.goto(server.room_url(token))  # type: ignore[attr-defined]
    _connected(first)
    second = open_page(server.room_url(token))
    _connected(second)

    _replaced(first)
    message = first.inner_text("#session-replaced")  # type: ignore[attr-defined]
    assert "在此继续" in message and "Continue here" in message
    assert first.inner_text("#session-replaced-message").strip(), "the server's message is shown"  # type: ignore[attr-defined]
    sockets = first.evaluate("() => window.__sockets")  # type: ignore[attr-defined]
    first.wait_for_timeout(QUIET_MS)  # type: ignore[attr-defined]  # nothing to wait on: we check that nothing happens
    assert first.evaluate("() => [window.__room.state, window.__sockets]") == ["replaced", sockets]  # type: ignore[attr-defined]
    assert second.evaluate("() => window.__room.state") == "connected"  # type: ignore[attr-defined]
    assert second.is_hidden("#session-replaced")  # type: ignore[attr-defined]

    first.get_by_role("button", name="在此继续 Continue here").click()  # type: ignore[attr-defined]
    _connected(first)
    assert first.is_hidden("#session-replaced")  # type: ignore[attr-defined]
    _replaced(second)
    first.wait_for_timeout(QUIET_MS)  # type: ignore[attr-defined]  # and the first tab keeps it
    assert first.evaluate("() => window.__room.state") == "connected"  # type: ignore[attr-defined]
    assert second.evaluate("() => window.__room.state") == "replaced"  # type: ignore[attr-defined]
