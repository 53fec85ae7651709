"""Real Chromium pages exchanging camera and microphone through the server."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Server, running_server, wait_until
from tests.redis_processes import RedisProcess

pytestmark = pytest.mark.browser

JOIN_TIMEOUT_MS = 20_000
MEDIA_TIMEOUT_MS = 20_000
POLL_MS = 100

# Predicates run in the page (polled by wait_until: they are async); each takes [identity, ...].
VIDEO_STAT = """async ([identity, field, above]) => {
  const r = window.__room;
  if (!r || !r.subscriber) return false;
  const s = (await r.inboundVideoStats()).find((x) => x.identity === identity);
  return !!s && s[field] > above;
}"""
AUDIO_STAT = """async ([identity, field, above]) => {
  const r = window.__room;
  if (!r || !r.subscriber) return false;
  const s = (await r.inboundAudioStats()).find((x) => x.identity === identity);
  return !!s && s[field] > above;
}"""


@pytest.fixture(scope="module")
def spanning_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two `python -m server run` nodes over one Redis, each holding one participant of a room before
    the room spans to the other (every page below opens on the first; the second site is served on
    the second node and media crosses between them)."""
    data = tmp_path_factory.mktemp("spanning")
    redis = RedisProcess(data)
    redis.start()
    try:
        with ExitStack() as stack:
            nodes = []
            for node_id in ("node-1", "node-2"):
                (data / node_id).mkdir()
                nodes.append(stack.enter_context(running_server(
                    data / node_id, secret="room-browser-" + "0" * 51, REDIS_URL=redis.url, NODE_ID=node_id, ROOM_NODE_LIMIT="1",
                )))
            yield nodes[0], nodes[1]
    finally:
        redis.kill()


@pytest.fixture(params=["one node", "two nodes"])
def room_server(request: pytest.FixtureRequest) -> tuple[Server, Server | None]:
    """Where the pages open (one server, or the first of two nodes a room spans), and the second node."""
    if request.param == "one node":
        return request.getfixturevalue("server"), None
    first, second = request.getfixturevalue("spanning_nodes")
    return first, second


def _served_on(node: Server | None, identity: str) -> None:
    """With two nodes, the page of `identity` was served on the second (its media crossed between them)."""
    if node is not None:
        assert f"joined room=consultation identity={identity} " in node.log(), f"{identity} was not served on the second node"


def _me(page: object) -> str:
    page.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]
    return str(page.evaluate("() => window.__room.me.identity"))  # type: ignore[attr-defined]


def _stat(page: object, kind: str, identity: str, field: str) -> float:
    fn = "inboundVideoStats" if kind == "video" else "inboundAudioStats"
    return float(page.evaluate(  # type: ignore[attr-defined]
        f"async (id) => ((await window.__room.{fn}()).find((x) => x.identity === id) || {{}})[{field!r}] || 0",
        identity,
    ))


def _wait_stat_above(page: object, kind: str, identity: str, field: str, above: float, timeout: int) -> None:
    predicate = VIDEO_STAT if kind == "video" else AUDIO_STAT
    wait_until(page, predicate, [identity, field, above], timeout_ms=timeout, interval_ms=POLL_MS)


_DIAGNOSE_JS = """async (id) => {
  const r = window.__room; const v = r.view.videoFor(id);
  return {state: r.state, tiles: r.tiles(), video: await r.inboundVideoStats(),
    element: v && {w: v.videoWidth, readyState: v.readyState,
      tracks: v.srcObject && v.srcObject.getTracks().map((t) => [t.kind, t.readyState, t.muted ? "muted" : "unmuted"])},
    mids: [...r.midToPublication],
    transceivers: r.subscriber && r.subscriber.getTransceivers().map((t) => [t.mid, t.currentDirection, t.receiver.track.muted])};
}"""


def _diagnose(page: object, identity: str) -> object:
    """What the page knows about `identity`'s media, printed when a wait fails."""
    return page.evaluate(_DIAGNOSE_JS, identity)  # type: ignore[attr-defined]


def assert_receives_video(page: object, identity: str) -> None:
    """`page` decodes `identity`'s camera: frames keep coming and the picture is not flat."""
    try:
        _wait_stat_above(page, "video", identity, "framesDecoded", 0, MEDIA_TIMEOUT_MS)
    except Exception:
        print("diagnosis:", _diagnose(page, identity))
        raise
    first = _stat(page, "video", identity, "framesDecoded")
    _wait_stat_above(page, "video", identity, "framesDecoded", first + 10, 10_000)
    try:
        page.wait_for_function(  # type: ignore[attr-defined]
            "(id) => { const t = window.__room.tiles().find((x) => x.identity === id); return !!t && t.hasVideo; }",
            arg=identity, polling=POLL_MS, timeout=10_000,
        )
    except Exception:
        print("diagnosis:", _diagnose(page, identity))
        raise
    # Chromium's fake camera draws a moving figure on a flat background: some of its frames, early
    # and at a low bitrate, sample just under the threshold. A picture that is never anything but
    # flat (black, or one colour) fails here after 5 s of frames.
    try:
        page.wait_for_function(  # type: ignore[attr-defined]
            "(id) => { const s = window.__room.sampleTile(id); return s.mean > 10 && s.variance > 50; }",
            arg=identity, polling=POLL_MS, timeout=5_000,
        )
    except Exception:
        sample = page.evaluate("(id) => window.__room.sampleTile(id)", identity)  # type: ignore[attr-defined]
        raise AssertionError(f"picture of {identity} is black or uniform: {sample}") from None


def assert_receives_audio(page: object, identity: str) -> None:
    """`page` receives `identity`'s microphone: packets and energy keep rising."""
    _wait_stat_above(page, "audio", identity, "packetsReceived", 0, MEDIA_TIMEOUT_MS)
    packets = _stat(page, "audio", identity, "packetsReceived")
    energy = _stat(page, "audio", identity, "totalAudioEnergy")
    _wait_stat_above(page, "audio", identity, "packetsReceived", packets + 10, 10_000)
    _wait_stat_above(page, "audio", identity, "totalAudioEnergy", energy, 10_000)


# What Chromium made of the RTCP sender reports it received: per kind, the count and the NTP
# time of the last one (remoteTimestamp), beside when the stats were taken.
SENDER_REPORTS = """async () => {
  const out = {};
  (await window.__room.subscriber.getStats()).forEach((s) => {
    if (s.type === 'remote-outbound-rtp') out[s.kind] = {reports: s.reportsSent, ntp: s.remoteTimestamp, at: s.timestamp};
  });
  return out;
}"""


def assert_sender_reports_for_audio_and_video(page: object) -> None:
    """The browser gets sender reports for both kinds, and each maps NTP to now (lip sync needs both)."""
    wait_until(
        page, f"async () => {{ const r = await ({SENDER_REPORTS})(); return !!r.audio && !!r.video && r.audio.reports > 1 && r.video.reports > 1; }}",
        timeout_ms=10_000, interval_ms=200,
    )
    first = page.evaluate(SENDER_REPORTS)  # type: ignore[attr-defined]
    wait_until(
        page, f"async (n) => {{ const r = await ({SENDER_REPORTS})(); return r.audio.reports > n.audio && r.video.reports > n.video; }}",
        {kind: first[kind]["reports"] for kind in ("audio", "video")}, timeout_ms=10_000, interval_ms=200,
    )
    later = page.evaluate(SENDER_REPORTS)  # type: ignore[attr-defined]
    for kind in ("audio", "video"):
        assert later[kind]["ntp"] > first[kind]["ntp"], f"{kind}: NTP time of sender reports does not advance: {first} {later}"
        lag = later[kind]["at"] - later[kind]["ntp"]  # same host clock: the report's NTP time is its send time
        assert -100 < lag < 1_600, f"{kind}: sender report NTP time is {lag:.0f} ms off: {later}"


def test_two_sites_see_and_hear_each_other(room_server: tuple[Server, Server | None], open_page: Callable[..., object]) -> None:
    server, second = room_server
    a = open_page(server.room_url(server.device_token("e2e-linjiang", "linjiang", name="临江县终端")))
    b = open_page(server.room_url(server.device_token("e2e-qingshan", "qingshan", name="青山县终端")))
    id_a, id_b = _me(a), _me(b)

    assert_receives_video(a, id_b)
    assert_receives_video(b, id_a)
    assert_receives_audio(a, id_b)
    assert_receives_audio(b, id_a)
    assert_sender_reports_for_audio_and_video(a)
    _served_on(second, id_b)


def test_late_joiner_gets_everyone_within_two_seconds(
    room_server: tuple[Server, Server | None], open_page: Callable[..., object]
) -> None:
    server, second = room_server
    a = open_page(server.room_url(server.device_token("e2e-jiangbei", "jiangbei")))
    b = open_page(server.room_url(server.device_token("e2e-jiangnan", "jiangnan")))
    id_a, id_b = _me(a), _me(b)
    assert_receives_video(a, id_b)
    assert_receives_video(b, id_a)

    c = open_page(server.room_url(server.device_token("e2e-mobile01", "mobile01")))
    _me(c)
    c.wait_for_function(  # type: ignore[attr-defined]
        "() => window.__room.subscriberConnectedAt !== null", polling=20, timeout=JOIN_TIMEOUT_MS,
    )
    both = """async ([a, b]) => {
      const s = await window.__room.inboundVideoStats();
      const ok = (id) => s.some((x) => x.identity === id && x.framesDecoded > 0);
      return ok(a) && ok(b);
    }"""
    wait_until(c, both, [id_a, id_b], timeout_ms=2_500, interval_ms=20)
    elapsed = c.evaluate("() => performance.now() - window.__room.subscriberConnectedAt")  # type: ignore[attr-defined]
    assert elapsed <= 2_000, f"late joiner waited {elapsed:.0f} ms for video"
    _served_on(second, id_b)


def test_login_then_enter_the_room(server: Server, open_page: Callable[..., object]) -> None:
    page = open_page(f"{server.base_url}/login")
    assert page.locator("input[name=username]").is_visible()  # type: ignore[attr-defined]
    page.fill("input[name=username]", "mayor")  # type: ignore[attr-defined]
    page.fill("input[name=password]", "demomayor")  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"{server.base_url}/", timeout=10_000)  # type: ignore[attr-defined]
    page.click("[data-room=consultation] a.enter-room")  # type: ignore[attr-defined]
    page.wait_for_url(f"{server.base_url}/rooms/consultation", timeout=10_000)  # type: ignore[attr-defined]
    page.click("#join-btn")  # type: ignore[attr-defined]
    assert _me(page) == "mayor"
    page.wait_for_function("() => window.__room.publisher !== null", timeout=JOIN_TIMEOUT_MS)  # type: ignore[attr-defined]


PANEL_BESIDE_WALL = """(panel) => {
  const p = document.querySelector(panel).getBoundingClientRect();
  const wall = document.getElementById("wall").getBoundingClientRect();
  const bar = document.querySelector("nav.controls").getBoundingClientRect();
  return p.width > 0 && wall.right <= p.left + 1 && bar.right <= p.left + 1;
}"""

# Visible buttons and button-links smaller than a thumb (44 px high), as "text: height" strings.
SMALL_TARGETS = """() => [...document.querySelectorAll("button, a.btn")]
  .filter((b) => b.offsetParent !== null)
  .map((b) => [b.textContent.trim().replace(/\\s+/g, " "), b.getBoundingClientRect().height])
  .filter(([, h]) => h < 44).map(([t, h]) => `${t}: ${h}`)"""


def test_screenshots(server: Server, open_page: Callable[..., object]) -> None:
    """Save what people see (login, rooms, a room with two sites and the inbox, the phone page and its roll-call)."""
    out = REPO / "screenshots"
    out.mkdir(exist_ok=True)
    viewport = {"width": 1440, "height": 900}

    login = open_page(f"{server.base_url}/login", viewport=viewport)
    login.screenshot(path=str(out / "login.png"))  # type: ignore[attr-defined]
    login.fill("input[name=username]", "mayor")  # type: ignore[attr-defined]
    login.fill("input[name=password]", "demomayor")  # type: ignore[attr-defined]
    login.click("button[type=submit]")  # type: ignore[attr-defined]
    login.wait_for_url(f"{server.base_url}/", timeout=10_000)  # type: ignore[attr-defined]
    login.screenshot(path=str(out / "index.png"))  # type: ignore[attr-defined]

    site = open_page(server.room_url(server.device_token("shot-linjiang", "linjiang", name="临江县值班员")))
    id_site = _me(site)
    login.goto(f"{server.base_url}/rooms/consultation")  # type: ignore[attr-defined]
    login.screenshot(path=str(out / "room-join.png"))  # type: ignore[attr-defined]
    login.click("#join-btn")  # type: ignore[attr-defined]
    _me(login)
    assert_receives_video(login, id_site)
    login.wait_for_function(  # type: ignore[attr-defined]
        "() => [...document.querySelectorAll('.tile-quality .qtext')].every((q) => q.textContent.includes('fps'))",
        timeout=10_000,
    )
    login.screenshot(path=str(out / "room.png"))  # type: ignore[attr-defined]
    login.click(f".tile[data-identity='{id_site}']")  # type: ignore[attr-defined]
    login.screenshot(path=str(out / "room-spotlight.png"))  # type: ignore[attr-defined]
    login.click("#btn-grid")  # type: ignore[attr-defined]
    login.click("#inbox-btn")  # type: ignore[attr-defined]
    # an open side panel takes its width from the wall and the controls: it covers no video and no button
    login.wait_for_function(PANEL_BESIDE_WALL, arg="#inbox-panel", timeout=5_000)  # type: ignore[attr-defined]
    login.screenshot(path=str(out / "room-inbox.png"))  # type: ignore[attr-defined]

    phone = open_page(
        server.room_url(server.device_token("shot-mobile01", "mobile01", name="临江县移动平台"), page="field"),
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
    )
    _me(phone)
    phone.wait_for_function("() => window.__room.publisher && window.__room.publisher.connectionState === 'connected'",  # type: ignore[attr-defined]
                            timeout=JOIN_TIMEOUT_MS)
    assert_receives_video(phone, id_site)
    phone.wait_for_function("() => document.getElementById('uplink-text').textContent.includes('fps')",  # type: ignore[attr-defined]
                            timeout=10_000)
    phone.screenshot(path=str(out / "field.png"))  # type: ignore[attr-defined]
    assert Path(out / "field.png").stat().st_size > 0
    small = phone.evaluate(SMALL_TARGETS)  # type: ignore[attr-defined]
    assert small == [], f"touch targets under 44 px on the phone: {small}"

    chief = server.device_token("shot-chief", "command_centre", grants=("subscribe", "moderate"))
    body = json.dumps({"sites": ["mobile01"], "mode": "all", "window": 30, "grace": 0, "title": "防汛点名 Flood roll-call"})
    request = urllib.request.Request(f"{server.base_url}/api/rollcalls?token={chief}", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    phone.wait_for_selector("#rollcall-alert[data-state='calling']", timeout=10_000)  # type: ignore[attr-defined]
    phone.screenshot(path=str(out / "field-rollcall.png"))  # type: ignore[attr-defined]
    phone.click("#rc-present")  # type: ignore[attr-defined]
    phone.wait_for_selector("#rollcall-alert[data-state='answered']", timeout=10_000)  # type: ignore[attr-defined]
