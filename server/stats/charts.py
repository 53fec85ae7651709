"""Charts as SVG, drawn by matplotlib (its object API: no pyplot, no global figure state).

Text stays text in the SVG (`svg.fonttype: none`) so the browser sets the Chinese in its own fonts;
matplotlib only measures it, with a CJK font when the machine has one. Called in one worker thread
(server/stats/service.py): matplotlib's settings are process-wide while a chart is drawn.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib import font_manager

FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "DejaVu Sans")
SETTINGS = {"svg.fonttype": "none", "font.size": 11, "axes.edgecolor": "#9fb0cc",
            "axes.labelcolor": "#eef3fb", "xtick.color": "#eef3fb", "ytick.color": "#eef3fb", "text.color": "#eef3fb",
            "svg.hashsalt": "stats"}  # a fixed salt: the same chart gives the same SVG


def fonts(manager: font_manager.FontManager) -> list[str]:
    """The preferred fonts matplotlib has on this machine (asking for a missing one logs at every measure)."""
    have = {entry.name for entry in manager.ttflist}
    return [name for name in FONTS if name in have] or ["DejaVu Sans"]


def stacked_bars(labels: Sequence[str], series: Mapping[str, Sequence[int]], colors: Mapping[str, str], title: str,
                 *, horizontal: bool = False) -> str:
    """A stacked bar chart as SVG text: one bar per label, one colour per series (in the given order)."""
    # Imported on the first chart, not with the server: on a fresh machine matplotlib's first import
    # builds its font cache (seconds), which must not delay every server's start.
    import matplotlib
    from matplotlib import font_manager as fm
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({**SETTINGS, "font.family": fonts(fm.fontManager)}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(Glyph|findfont).*")  # a machine without CJK fonts still draws
        height = max(3.0, 0.42 * len(labels) + 1.2) if horizontal else 4.0
        figure = Figure(figsize=(11, height), facecolor="none")
        axes = figure.subplots()
        axes.set_facecolor("none")
        base = [0] * len(labels)
        for name, values in series.items():
            if horizontal:
                axes.barh(labels, values, left=base, color=colors.get(name), label=name)
            else:
                axes.bar(labels, values, bottom=base, color=colors.get(name), label=name)
            base = [b + v for b, v in zip(base, values)]
        if horizontal:
            axes.invert_yaxis()
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts
        else:
            axes.tick_params(axis="x", labelrotation=45)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(title)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the bars, never over them
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        figure.tight_layout()
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})  # no time stamp: the same chart, the same SVG
    return out.getvalue()
