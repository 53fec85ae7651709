"""Simulcast in Chromium: a site's page sends three layers; a viewer's small tile gets a low one,
and the same tile grown to the spotlight switches to the full layer without a freeze."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Server, wait_until
from tests.e2e.screens import shoot

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
# The publisher's layers as Chromium sends them: rid, frame width and frames sent.
LAYERS_SENT = """async () => {
  const pc = window.__room && window.__room.publisher;
  if (!pc) return [];
  const out = [];
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) out.push([s.rid, s.frameWidth || 0, s.framesSent || 0]);
  });
  return out.sort();
}"""
# The viewer's one received video: decoded width and frames decoded.
RECEIVED = """async () => {
  const pc = window.__room && window.__room.subscriber;
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) found = [s.frameWidth || 0, s.framesDecoded];
  });
  return found;
}"""


def test_a_tile_grown_to_the_spotlight_switches_to_the_full_layer_without_a_freeze(
    server: Server, open_page: Callable[..., object]
) -> None:
    site = open_page(server.room_url(server.device_token("sim-linjiang", "linjiang", name="临江县终端")))
    viewer = open_page(
        server.room_url(server.device_token("sim-chief", "command_centre", grants=("subscribe",))),
        viewport={"width": 520, "height": 420},
    )
    # All three layers leave the publisher (the answer accepted them, REMB counts every one).
    wait_until(site, f"async () => {{ const l = await ({LAYERS_SENT})(); return l.length === 3 && l.every((x) => x[2] > 0); }}",
               timeout_ms=TIMEOUT_MS)
    widths = dict((rid, width) for rid, width, _ in site.evaluate(LAYERS_SENT))  # type: ignore[attr-defined]
    assert widths["f"] >= 960 and widths["q"] <= widths["f"] // 3, widths

    # A small tile: a low layer is enough for it.
    wait_until(viewer, f"async () => {{ const r = await ({RECEIVED})(); return !!r && r[0] > 0 && r[0] < {widths['f']}; }}",
               timeout_ms=TIMEOUT_MS)
    small = viewer.evaluate(RECEIVED)  # type: ignore[attr-defined]

    # The tile grows to the spotlight on a large screen: the full layer, decoded, and frames
    # keep coming through the switch (sampled every 50 ms in the page).
    viewer.set_viewport_size({"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    viewer.click(".tile[data-identity='sim-linjiang']")  # type: ignore[attr-defined]
    result = viewer.evaluate(  # type: ignore[attr-defined]
        f"""async (full) => {{
          const started = performance.now();
          let last = await ({RECEIVED})(), lastChange = performance.now(), longest = 0;
          while (performance.now() - started < 20000) {{
            await new Promise((r) => setTimeout(r, 50));
            const now = await ({RECEIVED})();
            if (now && last && now[1] > last[1]) {{
              longest = Math.max(longest, performance.now() - lastChange);
              lastChange = performance.now();
            }}
            last = now || last;
            if (last && last[0] >= full) {{
              const until = performance.now() + 1000;  // a second of the full layer after the switch
              while (performance.now() < until) {{
                await new Promise((r) => setTimeout(r, 50));
                const n = await ({RECEIVED})();
                if (n && n[1] > last[1]) {{ longest = Math.max(longest, performance.now() - lastChange); lastChange = performance.now(); last = n; }}
              }}
              return {{ width: last[0], longest, after: performance.now() - started }};
            }}
          }}
          return {{ width: last ? last[0] : 0, longest, after: null }};
        }}""",
        widths["f"],
    )
    assert small[0] < widths["f"], small
    assert result["width"] >= widths["f"], result
    # Chromium answers a keyframe request within a few frames; a freeze of a keyframe interval
    # or more would show as a gap of a second or more between decoded frames.
    assert result["longest"] < 1000, result
    print(f"simulcast switch: small tile {small[0]} px wide, full {result['width']} px after {result['after']:.0f} ms, "
          f"longest gap between decoded frames {result['longest']:.0f} ms")
    shoot(viewer, "simulcast-spotlight-1920")
