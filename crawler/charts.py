"""The report's charts: SVG drawn by matplotlib on the server, inlined in the HTML.

No script runs in the report: the SVG is complete when written (text as outlines of DejaVu
Sans, which ships with matplotlib and covers Cyrillic), so it shows offline and in print.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import Any

PALETTE = (
    "#c0392b",
    "#2471a3",
    "#239b56",
    "#b9770e",
    "#7d3c98",
    "#17a589",
    "#5d6d7e",
    "#d35400",
    "#1f618d",
    "#a93226",
)


def _plain(draw: Callable[..., str]) -> Callable[..., str]:
    """Labels are residents' words: never read ``$…$`` in them as mathematics."""

    @functools.wraps(draw)
    def wrapped(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapped


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96)
    fig.patch.set_alpha(0)
    return fig


def _svg(fig: Any, name: str) -> str:
    """The figure as an inline ``<svg>`` element (ids salted by ``name``: several charts in
    one page never share an id)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"glas-{name}", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    return svg.replace("<svg", f'<svg class="chart" role="img" aria-label="{name}"', 1)


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


@_plain
def trend_chart(days: Sequence[str], series: dict[str, Sequence[int]], name: str) -> str:
    """Lines: residents per day for each topic (the busiest ten)."""
    fig = _figure(9.5, 3.6)
    ax = fig.add_subplot()
    _style(ax)
    ticks = [f"{d[8:10]}.{d[5:7]}" for d in days]
    ranked = sorted(series.items(), key=lambda kv: -sum(kv[1]))[: len(PALETTE)]
    for (_label, values), color in zip(ranked, PALETTE, strict=False):
        ax.plot(ticks, list(values), marker="o", markersize=3, linewidth=1.8, color=color)
    ax.set_ylabel("жителей в день", fontsize=9)
    if len(ticks) > 16:
        step = (len(ticks) + 15) // 16
        ax.set_xticks(range(0, len(ticks), step), ticks[::step])
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if ranked:
        ax.legend(
            [label for label, _ in ranked],
            fontsize=8,
            frameon=False,
            ncols=5,
            loc="upper left",
            bbox_to_anchor=(0, -0.12),
        )
    return _svg(fig, name)


@_plain
def share_chart(rows: Sequence[tuple[str, float | None, int]], name: str) -> str:
    """Horizontal bars: the share of cases answered within the norm, per row (label, share,
    cases); a row with no decided case shows an empty bar."""
    height = 0.9 + 0.32 * max(1, len(rows))
    fig = _figure(7.5, height)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    labels = [f"{label} ({cases})" for label, _, cases in rows][::-1]
    shares = [(share or 0) * 100 for _, share, _ in rows][::-1]
    colors = ["#239b56" if s >= 80 else "#b9770e" if s >= 50 else "#c0392b" for s in shares]
    bars = ax.barh(labels, shares, color=colors, height=0.6)
    for bar, (_, share, _) in zip(bars, list(rows)[::-1], strict=True):
        text = "нет данных" if share is None else f"{share * 100:.0f}%"
        ax.annotate(
            text,
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=8,
            va="center",
        )
    ax.set_xlim(0, 110)
    ax.set_xticks([0, 25, 50, 75, 100], ["0", "25", "50", "75", "100%"])
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return _svg(fig, name)


@_plain
def places_chart(rows: Sequence[tuple[str, int, int]], name: str) -> str:
    """Paired bars: residents at each tension point now and in the period before."""
    height = 0.9 + 0.38 * max(1, len(rows))
    fig = _figure(7.5, height)
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    labels = [label for label, _, _ in rows][::-1]
    now = [n for _, n, _ in rows][::-1]
    before = [b for _, _, b in rows][::-1]
    positions = list(range(len(labels)))
    ax.barh([p + 0.2 for p in positions], now, height=0.4, color="#c0392b", label="за период")
    ax.barh([p - 0.2 for p in positions], before, height=0.4, color="#aab7b8", label="за прошлый")
    ax.set_yticks(positions, labels)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _svg(fig, name)
