"""Chart geometry for the evidence pages: numbers in, SVG coordinates out.

The templates draw what these dataclasses hold; nothing here writes markup. Shares and
values are kept next to the coordinates so the drawn SVG carries them as ``data-*``
attributes (tests and screen readers read them there).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from markupsafe import Markup, escape

WIDTH = 640
"""Width of every chart's view box (the page scales it)."""
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 56, 628, 12, 176
"""The plot area inside a ``WIDTH`` × ``HEIGHT`` view box; axes and labels go around it."""
HEIGHT = 216
DISPLAY_BINS = 40
"""Bins a numeric histogram draws: fine bins merged to about this many of equal width."""
MAX_CATEGORIES = 24
"""Categories a categorical chart draws, the most frequent first; the rest are pooled."""
OUTER_WIDTH = 18.0
"""Width of the bars for values below the reference minimum and above its maximum."""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One bar: its box, the series it belongs to and the share of values it stands for
    (``low`` to ``high`` on the value axis, or a category)."""

    x: float
    y: float
    width: float
    height: float
    series: str
    share: float
    low: str
    high: str


@dataclass(frozen=True)
class BarChart:
    """Reference and window bars on one axis (a histogram or paired category bars)."""

    title: str
    description: str
    x_label: str
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    rotate_labels: bool = False


def _share(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros(len(counts), dtype=np.float64)


def y_scale(top: float) -> tuple[float, list[Tick]]:
    """Pixels per share unit and percent ticks for shares up to ``top``."""
    top = max(top, 1e-9)
    step = _nice_step(top / 4)
    ceiling = step * math.ceil(top / step)
    scale = (PLOT_BOTTOM - PLOT_TOP) / ceiling
    ticks = [
        Tick(PLOT_BOTTOM - value * scale, f"{value * 100:.3g}%")
        for value in np.arange(0, ceiling + step / 2, step)
    ]
    return scale, ticks


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def display_edges(finite: np.ndarray) -> np.ndarray:
    """Indices into ``finite`` (a feature's increasing fine edges) that cut it into at most
    ``DISPLAY_BINS`` bins on a grid of round steps (1, 2, 2.5 or 5 × 10ⁿ, so integer
    values get bins of whole, equal widths); the first and last edge are always kept."""
    k = len(finite)
    if k < 2 or finite[-1] <= finite[0]:
        return np.arange(k)
    step = _nice_step((finite[-1] - finite[0]) / DISPLAY_BINS)
    grid = np.arange(math.ceil(finite[0] / step) * step, finite[-1], step)
    cuts = np.searchsorted(finite, grid, side="left").clip(0, k - 1)
    return np.unique(np.concatenate(([0], cuts, [k - 1])))


def numeric_histogram(
    name: str, edges: np.ndarray, reference: np.ndarray, window: np.ndarray
) -> BarChart:
    """Reference and window histograms of one numeric feature from its fine bins.

    ``edges`` are the feature's padded edges, ``reference``/``window`` its fine-bin counts
    (bin ``j`` counts ``[edges[j-1], edges[j])``, the first and last bins reach to
    infinity). Bars are shares of each side's values, drawn on a shared value axis with the
    two open-ended bins at its ends.
    """
    finite = edges[np.isfinite(edges)]
    k = len(finite)
    reference, window = reference[: k + 1], window[: k + 1]
    cuts = display_edges(finite)
    series = {}
    for label, counts in (("reference", reference), ("window", window)):
        cumulative = np.concatenate(([0], np.cumsum(counts)))
        # display bin between edges a and b sums fine bins a+1 .. b
        inner = cumulative[cuts[1:] + 1] - cumulative[cuts[:-1] + 1]
        shares = _share(counts)
        total = counts.sum()
        series[label] = (
            shares[0],
            inner / total if total > 0 else np.zeros(len(inner)),
            shares[k] if k else 0.0,
        )
    top = max(max(s[0], s[2], float(s[1].max(initial=0.0))) for s in series.values())
    scale, y_ticks = y_scale(top)
    left, right = PLOT_LEFT + OUTER_WIDTH + 4, PLOT_RIGHT - OUTER_WIDTH - 4
    low, high = (float(finite[0]), float(finite[-1])) if k else (0.0, 1.0)
    span = high - low or 1.0

    def at(value: float) -> float:
        return left + (value - low) / span * (right - left)

    bars: list[Bar] = []
    for label, (below, inner, above) in series.items():
        bars.append(
            bar(PLOT_LEFT, OUTER_WIDTH, below, scale, label, "-inf", repr(low) if k else "inf")
        )
        for i in range(len(cuts) - 1):
            a, b = float(finite[cuts[i]]), float(finite[cuts[i + 1]])
            bars.append(bar(at(a), at(b) - at(a), float(inner[i]), scale, label, repr(a), repr(b)))
        if k:
            bars.append(bar(right + 4, OUTER_WIDTH, above, scale, label, repr(high), "inf"))
    x_ticks = [Tick(PLOT_LEFT + OUTER_WIDTH / 2, "<min"), Tick(right + 4 + OUTER_WIDTH / 2, "≥max")]
    x_ticks += [  # value ticks clear of the two end labels
        Tick(at(v), _number(v, 3))
        for v in _value_ticks(low, high)
        if left + 12 <= at(v) <= right - 12
    ]
    return BarChart(
        title=f"{name}: reference and window distributions",
        description=(
            f"Histogram of {name}: share of reference values (filled) and of window values "
            f"(outlined) per bin, from {_number(low, 4)} to {_number(high, 4)}, plus values "
            "below the reference minimum and at or above its maximum."
        ),
        x_label=f"{name} (value)",
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
    )


def categorical_bars(
    name: str, categories: Sequence[str], reference: np.ndarray, window: np.ndarray
) -> BarChart:
    """Paired bars of one categorical feature: ``categories`` then the rare and the unseen
    bucket (the last two counts)."""
    labels = [*categories, "(rare)", "(unseen)"]
    ref_share, win_share = _share(reference), _share(window)
    order = np.argsort(-np.maximum(ref_share[:-2], win_share[:-2]), kind="stable")
    shown = list(order[:MAX_CATEGORIES])
    rest = order[MAX_CATEGORIES:]
    rows = [(labels[i], ref_share[i], win_share[i]) for i in shown]
    if len(rest):
        rows.append((f"({len(rest)} more)", ref_share[rest].sum(), win_share[rest].sum()))
    rows += [(labels[-2], ref_share[-2], win_share[-2]), (labels[-1], ref_share[-1], win_share[-1])]
    top = max(max(r, w) for _, r, w in rows)
    scale, y_ticks = y_scale(float(top))
    slot = (PLOT_RIGHT - PLOT_LEFT) / len(rows)
    half = slot * 0.38
    bars, x_ticks = [], []
    for i, (label, ref, win) in enumerate(rows):
        x = PLOT_LEFT + i * slot + slot * 0.12
        bars.append(bar(x, half, float(ref), scale, "reference", label, label))
        bars.append(bar(x + half, half, float(win), scale, "window", label, label))
        x_ticks.append(Tick(x + half, label))
    return BarChart(
        title=f"{name}: reference and window categories",
        description=(
            f"Paired bars of {name}: share of reference values (filled) and of window values "
            "(outlined) per category, with categories rare in the reference and categories "
            "never seen in it as their own bars."
        ),
        x_label=f"{name} (category)",
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        rotate_labels=True,
    )


def bar(
    x: float, width: float, share: float, scale: float, series: str, low: str, high: str
) -> Bar:
    height = share * scale
    return Bar(
        round(x, 2),
        round(PLOT_BOTTOM - height, 2),
        round(max(width, 0.5), 2),
        round(height, 2),
        series,
        share,
        low,
        high,
    )


def _value_ticks(low: float, high: float) -> list[float]:
    if high <= low:
        return [low]
    step = _nice_step((high - low) / 5)
    first = math.ceil(low / step) * step
    return [float(v) for v in np.arange(first, high + step * 1e-9, step)]


def _number(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}g}"


# -- the model page: heat map and series over windows ------------------------------------------


LEVELS = (0.5, 0.8, 1.0, 1.5, 2.0)
"""Cell colour steps of statistic ÷ threshold: below 0.5, …, 2 and more (drift from 1)."""


def severity(value: float | None, threshold: float | None, direction: str) -> float | None:
    """How far ``value`` is toward its threshold: 1 at the threshold, above 1 past it."""
    if value is None or threshold is None:
        return None
    if direction == "above":
        return value / threshold if threshold > 0 else (math.inf if value > threshold else 0.0)
    return threshold / value if value > 0 else math.inf


def level(ratio: float | None) -> int:
    """The colour step of a severity ratio (-1: no value)."""
    if ratio is None:
        return -1
    return bisect.bisect_right(LEVELS, ratio)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    window: int
    value: float


@dataclass(frozen=True)
class Series:
    name: str
    style: int
    points: list[Point]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Span:
    x: float
    width: float
    label: str
    href: str


@dataclass(frozen=True)
class LineChart:
    """Values over windows: series, thresholds, marks (concept drift) and spans (incidents)."""

    title: str
    description: str
    y_label: str
    series: list[Series]
    thresholds: list[tuple[float, str]]
    marks: list[tuple[float, str]]
    spans: list[Span] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)


def window_axis(indices: Sequence[int]) -> tuple[dict[int, float], list[Tick]]:
    """The x position of each window index (equal steps, oldest first) and a few ticks."""
    n = len(indices)
    step = (PLOT_RIGHT - PLOT_LEFT) / max(n, 1)
    positions = {index: PLOT_LEFT + (i + 0.5) * step for i, index in enumerate(indices)}
    every = max(1, math.ceil(n / 8))
    ticks = [Tick(positions[index], str(index)) for index in list(indices)[::every]]
    return positions, ticks


def line_chart(
    title: str,
    y_label: str,
    indices: Sequence[int],
    series: dict[str, dict[int, float]],
    thresholds: dict[str, float],
    marks: dict[int, str],
    spans: Sequence[tuple[int, int, str, str]] = (),
) -> LineChart:
    """Series of values per window index on a shared axis, with horizontal thresholds,
    vertical marks and shaded spans (first and last window index, label, link)."""
    positions, x_ticks = window_axis(indices)
    values = [v for points in series.values() for v in points.values()] + list(thresholds.values())
    low, high = min(values, default=0.0), max(values, default=1.0)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    scale = (PLOT_BOTTOM - PLOT_TOP) / (high - low)

    def y(value: float) -> float:
        return round(PLOT_BOTTOM - (value - low) * scale, 2)

    step = (PLOT_RIGHT - PLOT_LEFT) / max(len(indices), 1)
    drawn = [
        Series(
            name,
            i % 6,
            [Point(positions[k], y(v), k, v) for k, v in sorted(points.items()) if k in positions],
        )
        for i, (name, points) in enumerate(sorted(series.items()))
    ]
    y_ticks = [Tick(y(v), _number(v, 3)) for v in _value_ticks(low, high)]
    shown_spans = [
        Span(positions[a] - step / 2, positions[b] - positions[a] + step, label, href)
        for a, b, label, href in spans
        if a in positions and b in positions
    ]
    names = ", ".join(sorted(series)) or "no values"
    return LineChart(
        title=title,
        description=f"{title}: {names} per window index"
        + (", with thresholds as dashed lines" if thresholds else ""),
        y_label=y_label,
        series=drawn,
        thresholds=[(y(v), f"{name} threshold {_number(v, 4)}") for name, v in thresholds.items()],
        marks=[(positions[k], text) for k, text in sorted(marks.items()) if k in positions],
        spans=shown_spans,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
    )


def rate_bars(attribute: str, groups: Sequence[str], rates: np.ndarray) -> BarChart:
    """Selection rate per group: the share of each group's predictions that are positive."""
    scale, y_ticks = y_scale(float(rates.max(initial=0.0)))
    slot = (PLOT_RIGHT - PLOT_LEFT) / max(len(rates), 1)
    bars, ticks = [], []
    for i, (group, rate) in enumerate(zip(groups, rates, strict=True)):
        x = PLOT_LEFT + i * slot + slot * 0.2
        bars.append(bar(x, slot * 0.6, float(rate), scale, "rate", str(group), str(group)))
        ticks.append(Tick(x + slot * 0.3, str(group)))
    return BarChart(
        title=f"selection rate by {attribute}",
        description=f"Share of predictions that are positive for each value of {attribute}.",
        x_label=f"{attribute} (group)",
        bars=bars,
        x_ticks=ticks,
        y_ticks=y_ticks,
        rotate_labels=True,
    )


ROW_HEIGHT = 14.0
HEAT_LEFT = 150
"""Where a heat map's cells start (feature names go to the left)."""
MAX_COLUMNS = 125
"""Columns a heat map draws at most: beyond, each column pools consecutive windows (its
colour is the worst of them; it links to the first one's page)."""


@dataclass(frozen=True)
class HeatMap:
    """Windows (columns) × features (rows, furthest past threshold first), each cell
    coloured by the feature's drift statistic over its threshold. ``marks`` is the cells'
    SVG, written here: tens of thousands of cells would dominate a template's time."""

    title: str
    description: str
    height: float
    marks: Markup
    rows: list[Tick]
    columns: list[Tick]


def heat_map(
    indices: Sequence[int],
    drift: Sequence[tuple[int, str, float | None, bool]],
    links: dict[int, str],
    pool: int = 1,
) -> HeatMap:
    """The heat map of ``drift`` cells (first window index of a group of ``pool``, feature,
    statistic ÷ threshold, drift) over the windows ``indices`` (oldest first); ``links``
    maps a window to its page (a group links to its first stored window)."""
    low = indices[0] if indices else 0
    starts: dict[int, int] = {}  # group start -> its first stored window
    for index in indices:
        starts.setdefault(low + (index - low) // pool * pool, index)
    column_of = {start: c for c, start in enumerate(starts)}
    worst: dict[str, float] = {}
    cells: dict[tuple[str, int], float] = {}
    for start, feature, ratio, _ in drift:
        if start not in column_of:
            continue
        value = -1.0 if ratio is None else ratio
        worst[feature] = max(worst.get(feature, -1.0), value)
        cells[feature, column_of[start]] = value
    features = sorted(worst, key=lambda name: (-worst[name], name))
    shown = list(starts.values())
    width = (PLOT_RIGHT - HEAT_LEFT) / max(len(shown), 1)
    heads = [  # per column: the link and the start of the rect, the same on every row
        f'<a href="{escape(links.get(index, ""))}"><rect x="{HEAT_LEFT + c * width:.2f}" '
        f'width="{width:.2f}" height="{ROW_HEIGHT - 1:.1f}" data-window="{index}"'
        for c, index in enumerate(shown)
    ]
    spans = [
        f"windows {index}–{index + pool - 1}" if pool > 1 else f"window {index}" for index in shown
    ]
    parts = []
    for row, feature in enumerate(features):
        y = PLOT_TOP + row * ROW_HEIGHT
        name = escape(feature)
        for column in range(len(shown)):
            value = cells.get((feature, column), -1.0)
            text = "no value" if value < 0 else f"{value:.3g}× threshold"
            shade = level(value if value >= 0 else None)
            parts.append(
                f'{heads[column]} y="{y:.1f}" class="l{shade}" data-feature="{name}" '
                f'data-level="{shade}"><title>{name}, {spans[column]}: {text}</title></rect></a>'
            )
    every = max(1, math.ceil(len(shown) / 8))
    columns = [
        Tick(HEAT_LEFT + (c + 0.5) * width, str(shown[c])) for c in range(0, len(shown), every)
    ]
    rows = [Tick(PLOT_TOP + (i + 0.7) * ROW_HEIGHT, f) for i, f in enumerate(features)]
    pooled = f", {pool} windows per column" if pool > 1 else ""
    return HeatMap(
        title="Feature drift over windows",
        description=(
            f"Heat map of {len(features)} features over {len(indices)} windows{pooled}: each "
            "cell is the feature's drift statistic furthest toward its threshold, divided by "
            "that threshold; cells past 1 are drift."
        ),
        height=PLOT_TOP + len(features) * ROW_HEIGHT,
        marks=Markup("\n".join(parts)),
        rows=rows,
        columns=columns,
    )


def bar_marks(bars: Sequence[Bar]) -> Markup:
    """The SVG of ``bars`` (their values escaped): a chart's repeated part."""
    return Markup(
        "\n".join(
            f'<rect class="{bar.series}" x="{bar.x}" y="{bar.y}" width="{bar.width}" '
            f'height="{bar.height}" data-series="{bar.series}" data-low="{escape(bar.low)}" '
            f'data-high="{escape(bar.high)}" data-share="{float(bar.share)!r}"><title>{bar.series} '
            f"{escape(bar.low)}{'' if bar.high == bar.low else ' to ' + escape(bar.high)}: "
            f"{bar.share * 100:.2f}%</title></rect>"
            for bar in bars
        )
    )
