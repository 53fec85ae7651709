"""A field phone whose network drops comes back on the wall by itself (scenario 1, step 7).

The phone's Chromium runs inside a network namespace joined to the host by a veth pair; taking the
host end down is the tunnel. The wall is an ordinary Chromium page on the host, and it is where the
outcome is measured: the phone's tile stays and says "reconnecting" while the link is down, and new
frames from the phone decode on the wall within 3 s of the link coming back.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import soak_or
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Server, running_server

pytestmark = [pytest.mark.browser, pytest.mark.soak]

OUTAGE_S = soak_or(5.0, 20.0)          # the tunnel
BACK_WITHIN_S = 3.0                    # from the link coming back to new frames decoded on the wall
JOIN_TIMEOUT_MS = 20_000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _netns_unavailable() -> str | None:
    """Why this machine cannot run the test (not root, no `ip netns`), or None."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace (CI runs as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


@dataclass(frozen=True)
class NetNs:
    """A network namespace reached from the host over one veth pair."""

    name: str
    host_if: str
    host_ip: str
    ns_ip: str

    def link(self, up: bool) -> None:
        """Bring the host end of the pair up or down (down: nothing passes, as in a tunnel)."""
        _ip("link", "set", self.host_if, "up" if up else "down")


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for third in range(0, 250):
        if f" 10.77.{third}." not in used:
            return third
    raise RuntimeError("no free 10.77.x.0/24 subnet")


@pytest.fixture(scope="module")
def netns() -> Iterator[NetNs]:
    """A namespace `rcN` with 10.77.x.2/24 inside and 10.77.x.1/24 on the host; removed afterwards."""
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"{os.getpid() % 100000}{secrets.token_hex(1)}"
    third = _free_subnet()
    ns = NetNs(name=f"rc{tag}", host_if=f"rch{tag}", host_ip=f"10.77.{third}.1", ns_ip=f"10.77.{third}.2")
    inner = f"rcn{tag}"
    try:
        _ip("netns", "add", ns.name)
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.ns_ip}/24", "dev", inner)
        _ip("-n", ns.name, "link", "set", inner, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True)  # gone with the namespace, normally


@pytest.fixture(scope="module")
def ns_server(netns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server on every address (the namespace reaches it at the veth's host end), grace > outage."""
    del netns  # only its order: the namespace's address exists before the server listens
    with running_server(tmp_path_factory.mktemp("data"), HOST="0.0.0.0", RECONNECT_GRACE=str(int(OUTAGE_S + 15))) as server:
        yield server


@pytest.fixture(scope="module")
def playwright() -> Iterator[object]:
    """One Playwright driving both Chromiums (the phone's in the namespace, the wall's on the host)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def _launch(pw: object, executable: Path, extra: list[str]) -> object:
    return pw.chromium.launch(  # type: ignore[attr-defined]
        executable_path=str(executable), args=[*CHROMIUM_ARGS, *extra], headless=True,
    )


def _phone_origin(server: Server, netns: NetNs) -> str:
    """Where the phone in the namespace reaches the server: the veth's host end."""
    return f"http://{netns.host_ip}:{server.base_url.rsplit(':', 1)[1]}"


@pytest.fixture
def phone_browser(playwright: object, netns: NetNs, ns_server: Server, tmp_path: Path) -> Iterator[object]:
    """Chromium inside the namespace: Playwright talks to it over pipes, which cross namespaces."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    wrapper = tmp_path / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {netns.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    # the fake camera needs a secure context, and the namespace reaches the server over plain http
    b = _launch(playwright, wrapper, [f"--unsafely-treat-insecure-origin-as-secure={_phone_origin(ns_server, netns)}"])
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def wall_browser(playwright: object) -> Iterator[object]:
    """An ordinary Chromium on the host, for the wall."""
    b = _launch(playwright, CHROMIUM, []) if CHROMIUM.exists() else playwright.chromium.launch(  # type: ignore[attr-defined]
        args=CHROMIUM_ARGS, headless=True)
    try:
        yield b
    finally:
        b.close()


# Runs in the wall page every 50 ms: is the phone's tile there, does it say "reconnecting", and once
# the link is back (probe.up set), when do new frames of the phone decode into a real picture.
PROBE_JS = """(id) => {
  const probe = {down: null, up: null, baseline: null, backAt: null, sample: null, overlayAt: null,
                 tileLost: false, error: null, busy: false, states: []};
  const video = window.__view.videoFor(id);
  if (video) video.dataset.probe = "before";
  const tick = async () => {
    const now = Date.now();
    const tile = document.querySelector(`.tile[data-identity="${id}"]`);
    const overlay = tile && tile.querySelector(".tile-reconnecting");
    const shown = !!overlay && !overlay.hidden && overlay.getClientRects().length > 0;
    const t = window.__room.tiles().find((x) => x.identity === id);
    const state = t ? t.state : "absent";
    if (probe.states[probe.states.length - 1]?.[1] !== state) probe.states.push([now, state]);
    if (probe.down !== null && probe.up === null) {
      if (!tile) probe.tileLost = true;
      if (shown && probe.overlayAt === null) probe.overlayAt = now;
    }
    if (probe.up === null || probe.backAt !== null) return;
    const stats = (await window.__room.inboundVideoStats()).filter((s) => s.identity === id);
    if (probe.baseline === null) {
      probe.baseline = Object.fromEntries(stats.map((s) => [s.publication_id, s.framesDecoded]));
      return;
    }
    if (!stats.some((s) => s.framesDecoded > (probe.baseline[s.publication_id] || 0))) return;
    const px = window.__room.sampleTile(id);
    if (px.mean > 10 && px.variance > 50) { probe.backAt = Date.now(); probe.sample = px; }
  };
  setInterval(() => {
    if (probe.busy) return;
    probe.busy = true;
    tick().catch((e) => { probe.error = String(e); }).finally(() => { probe.busy = false; });
  }, 50);
  window.__probe = probe;
}"""

# Runs in the phone page: every state its own status bar showed, with the time.
PHONE_PROBE_JS = """() => {
  const seen = [];
  const status = document.getElementById("field-status");
  const note = () => { if (seen[seen.length - 1]?.[1] !== status.dataset.state) seen.push([Date.now(), status.dataset.state]); };
  new MutationObserver(note).observe(status, {attributes: true, attributeFilter: ["data-state"]});
  note();
  window.__statusSeen = seen;
  const peers = [];
  for (const kind of ["publisher-state", "subscriber-state"]) {
    window.__room.addEventListener(kind, (e) => peers.push([Date.now(), kind, e.detail.state]));
  }
  window.addEventListener("online", () => peers.push([Date.now(), "online"]));
  window.addEventListener("offline", () => peers.push([Date.now(), "offline"]));
  window.__peersSeen = peers;
}"""


def _now_ms() -> float:
    return time.time() * 1000


def test_phone_back_on_the_wall_within_3_s_of_the_network(
    ns_server: Server, netns: NetNs, phone_browser: object, wall_browser: object,
) -> None:
    """A phone page whose network drops for 5 s is back on the wall within 3 s of the network returning."""
    phone_origin = _phone_origin(ns_server, netns)
    phone_ctx = phone_browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
    )
    wall_ctx = wall_browser.new_context(viewport={"width": 1280, "height": 720})  # type: ignore[attr-defined]
    try:
        _run_outage(ns_server, netns, phone_ctx, wall_ctx, phone_origin)
    finally:
        netns.link(True)
        phone_ctx.close()
        wall_ctx.close()


def _run_outage(server: Server, netns: NetNs, phone_ctx: object, wall_ctx: object, phone_origin: str) -> None:
    phone_token = server.device_token("e2e-levee-phone", "mobile01", name="临江县移动平台")
    wall_token = server.device_token("e2e-wall", "command_centre", grants=("subscribe",), name="指挥中心大屏")
    wall = wall_ctx.new_page()  # type: ignore[attr-defined]
    wall.goto(server.room_url(wall_token, page="wall"))
    phone = phone_ctx.new_page()  # type: ignore[attr-defined]
    logs: list[str] = []
    phone.on("console", lambda m: logs.append(f"{time.strftime('%H:%M:%S')} {m.type}: {m.text}"))
    phone.goto(f"{phone_origin}/field/consultation?token={phone_token}")
    phone.wait_for_function(
        "() => window.__room && window.__room.publisher && window.__room.publisher.connectionState === 'connected'",
        timeout=JOIN_TIMEOUT_MS,
    )
    identity = str(phone.evaluate("() => window.__room.me.identity"))
    wall.wait_for_function(
        "(id) => window.__room.tiles().some((t) => t.identity === id && t.hasVideo)", arg=identity, timeout=JOIN_TIMEOUT_MS,
    )
    phone.evaluate(PHONE_PROBE_JS)
    wall.evaluate(PROBE_JS, identity)

    down_at = _now_ms()
    netns.link(False)
    wall.evaluate("(t) => { window.__probe.down = t; }", down_at)
    wall.wait_for_timeout(OUTAGE_S * 1000)  # the tunnel: the time itself is what is being tested
    netns.link(True)
    up_at = _now_ms()
    wall.evaluate("(t) => { window.__probe.up = t; }", up_at)
    try:
        wall.wait_for_function("() => window.__probe.backAt !== null", timeout=20_000, polling=50)
    except Exception:
        print("phone log:\n" + "\n".join(logs[-40:]))
        print("wall probe:", wall.evaluate("() => ({...window.__probe})"))
        print("server log:\n" + server.log()[-6000:])
        raise
    probe = wall.evaluate("() => ({...window.__probe})")
    back_s = (probe["backAt"] - up_at) / 1000
    seen = phone.evaluate("() => window.__statusSeen")
    print(
        f"\nnetwork down {OUTAGE_S:.0f} s; phone's frames decoding on the wall {back_s:.2f} s after the link came back"
        f" (picture mean {probe['sample']['mean']:.0f}, variance {probe['sample']['variance']:.0f});"
        f" wall tile said reconnecting {'%.1f s after the drop' % ((probe['overlayAt'] - down_at) / 1000) if probe['overlayAt'] else 'never'};"
        f" the phone's own status: {[(round((t - down_at) / 1000, 1), s) for t, s in seen]};"
        f" the phone's tile on the wall: {[(round((t - down_at) / 1000, 1), s) for t, s in probe['states']]}"
    )
    peers = phone.evaluate("() => window.__peersSeen")
    print("phone's connections:", [(round((e[0] - down_at) / 1000, 1), *e[1:]) for e in peers])
    print("phone log:\n" + "\n".join(line for line in logs if "reconnect" in line)[-3000:])

    assert back_s <= BACK_WITHIN_S, f"the phone took {back_s:.2f} s to be back on the wall (limit {BACK_WITHIN_S} s)"
    assert not probe["tileLost"], "the phone's tile left the wall during the outage"
    same_video = wall.evaluate("(id) => window.__view.videoFor(id).dataset.probe === 'before'", identity)
    assert same_video, "the phone's tile on the wall was rebuilt (a new <video>) instead of continuing"
    assert any(s == "reconnecting" for _, s in seen), f"the phone's own status never said reconnecting: {seen}"
    # the server's part: the tile says "reconnecting" while the phone is away, and not once it is back
    assert probe["overlayAt"] is not None and probe["overlayAt"] < up_at, (
        "the phone's tile on the wall did not say reconnecting while the link was down"
    )
    wall.wait_for_function(
        """(id) => { const t = document.querySelector(`.tile[data-identity="${id}"] .tile-reconnecting`);
                     return !!t && t.hidden; }""", arg=identity, timeout=10_000,
    )
