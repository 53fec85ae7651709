"""Charts as SVG, drawn by matplotlib (its object API: no pyplot, no global figure state).

Text stays text in the SVG (`svg.fonttype: none`) so the browser sets the Chinese in its own fonts;
matplotlib only measures it, with a CJK font when the machine has one. Called in one worker thread
(server/stats/service.py): matplotlib's settings are process-wide while a chart is drawn.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from matplotlib import font_manager
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "DejaVu Sans")
SETTINGS = {"svg.fonttype": "none", "font.size": 11, "axes.edgecolor": "#9fb0cc",
            "axes.labelcolor": "#eef3fb", "xtick.color": "#eef3fb", "ytick.color": "#eef3fb", "text.color": "#eef3fb",
            "svg.hashsalt": "stats"}  # a fixed salt: the same chart gives the same SVG


def fonts(manager: font_manager.FontManager) -> list[str]:
    """The preferred fonts matplotlib has on this machine (asking for a missing one logs at every measure)."""
    have = {entry.name for entry in manager.ttflist}
    return [name for name in FONTS if name in have] or ["DejaVu Sans"]


PAPER = {"axes.edgecolor": "#333333", "axes.labelcolor": "#111111", "xtick.color": "#111111", "ytick.color": "#111111",
         "text.color": "#111111"}  # dark on white, for a printed page or a document
Format = Literal["svg", "png"]


@contextmanager
def _drawing(fmt: Format) -> Iterator[Callable[[float], Figure]]:
    """matplotlib's settings for one chart, and a maker of its figure of a given height."""
    # Imported on the first chart, not with the server: on a fresh machine matplotlib's first import
    # builds its font cache (seconds), which must not delay every server's start.
    import matplotlib
    from matplotlib import font_manager as fm
    from matplotlib.figure import Figure

    settings = {**SETTINGS, **(PAPER if fmt == "png" else {}), "font.family": fonts(fm.fontManager)}
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(Glyph|findfont).*")  # a machine without CJK fonts still draws
        yield lambda height: Figure(figsize=(11, height), facecolor="none" if fmt == "svg" else "white")


def warm() -> None:
    """Import matplotlib and find its fonts ahead of the first chart (seconds, on the chart thread)."""
    with _drawing("svg"):
        pass


def _saved(figure: Figure, fmt: Format) -> str | bytes:
    figure.tight_layout()
    if fmt == "png":
        raw = io.BytesIO()
        figure.savefig(raw, format="png", dpi=110)
        return raw.getvalue()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})  # no time stamp: the same chart, the same SVG
    return out.getvalue()


def rate_bars(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], colors: Mapping[str, str], title: str,
              fmt: Format = "svg") -> str | bytes:
    """Rates (0..1) per label as grouped horizontal bars in per cent, one colour per series; a missing rate draws nothing."""
    from matplotlib.ticker import PercentFormatter

    with _drawing(fmt) as make:
        figure = make(max(3.0, 0.5 * len(labels) * max(1, len(series)) / 2 + 1.4))
        axes = figure.subplots()
        axes.set_facecolor("none")
        height = 0.8 / max(1, len(series))
        for n, (name, values) in enumerate(series.items()):
            positions = [i + n * height for i in range(len(labels))]
            axes.barh(positions, [100 * v if v is not None else 0 for v in values], height=height,
                      color=colors.get(name), label=name)
        axes.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))], labels)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.xaxis.set_major_formatter(PercentFormatter())
        _finish(axes, title)
        return _saved(figure, fmt)


def rate_lines(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], colors: Mapping[str, str], title: str,
               fmt: Format = "svg") -> str | bytes:
    """Rates (0..1) over time as lines in per cent; a day without a rate leaves a gap."""
    from matplotlib.ticker import PercentFormatter

    with _drawing(fmt) as make:
        figure = make(4.0)
        axes = figure.subplots()
        axes.set_facecolor("none")
        for name, values in series.items():
            axes.plot(range(len(labels)), [100 * v if v is not None else float("nan") for v in values], marker="o",
                      markersize=3, color=colors.get(name), label=name)
        step = max(1, len(labels) // 16)
        axes.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)], rotation=45)
        axes.set_ylim(0, 105)
        axes.yaxis.set_major_formatter(PercentFormatter())
        _finish(axes, title)
        return _saved(figure, fmt)


def _finish(axes: Axes, title: str) -> None:
    axes.set_title(title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the chart, never over it
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def stacked_bars(labels: Sequence[str], series: Mapping[str, Sequence[int]], colors: Mapping[str, str], title: str,
                 *, horizontal: bool = False, fmt: Format = "svg") -> str | bytes:
    """A stacked bar chart (SVG text, or PNG bytes): one bar per label, one colour per series (in the given order)."""
    from matplotlib.ticker import MaxNLocator

    with _drawing(fmt) as make:
        height = max(3.0, 0.42 * len(labels) + 1.2) if horizontal else 4.0
        figure = make(height)
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
        _finish(axes, title)
        return _saved(figure, fmt)
