"""Screenshots of the journeys at the three screens people use, and the layout checks run on them.

Screenshots go under `test-output/screens/` (gitignored). The checks read the page itself: an element
that people must see is inside the viewport, does not overlap another one of them, and its text is
large enough to read at that screen's distance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import REPO

OUT = REPO / "test-output" / "screens"

DESKTOP: dict[str, Any] = {"viewport": {"width": 1920, "height": 1080}}
WALL: dict[str, Any] = {"viewport": {"width": 3840, "height": 2160}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

# For every element matching any selector (visible ones only): where it lies outside the viewport,
# which pairs overlap (an element and its own descendants excepted), and text under the minimum size.
_LAYOUT_JS = """([selectors, minFont]) => {
  const W = window.innerWidth, H = window.innerHeight, out = [];
  const items = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
      const name = `${sel}[${(el.dataset.identity || el.id || el.textContent || '').trim().slice(0, 30)}]`;
      items.push({ el, r, name });
      if (r.left < -1 || r.top < -1 || r.right > W + 1 || r.bottom > H + 1)
        out.push(`outside: ${name} ${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)}`);
      if (minFont && el.textContent.trim()) {
        const size = parseFloat(style.fontSize);
        if (size < minFont) out.push(`small text: ${name} ${size}px`);
      }
    }
  }
  for (let i = 0; i < items.length; i++) for (let j = i + 1; j < items.length; j++) {
    const a = items[i], b = items[j];
    if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
    const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
    const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
    if (w > 1 && h > 1) out.push(`overlap: ${a.name} / ${b.name}`);
  }
  return out;
}"""

# Whether the element at each tile's centre is that tile (or inside it): a tile stacked under
# another cannot be hovered or clicked.
_REACHABLE_JS = """(selector) => [...document.querySelectorAll(selector)].filter((t) => !t.closest('[hidden]')).map((t) => {
  const r = t.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit && t.contains(hit) ? null : (t.dataset.identity || t.id || 'tile');
}).filter(Boolean)"""


def shoot(page: Any, name: str) -> Path:
    """Save a screenshot of the viewport as test-output/screens/<name>.png and return its path."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def layout_problems(page: Any, selectors: list[str], *, min_font_px: float = 0) -> list[str]:
    """What is wrong with these elements' layout in `page` (an empty list when nothing is)."""
    return list(page.evaluate(_LAYOUT_JS, [selectors, min_font_px]))


def unreachable(page: Any, selector: str) -> list[str]:
    """The elements matching `selector` whose centre a click would not reach."""
    return list(page.evaluate(_REACHABLE_JS, selector))
