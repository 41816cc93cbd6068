"""Line charts as geometry: series of (x, y) in, the numbers an SVG needs out.

Pure: `line_chart` maps each series into a plot box with rounded ("nice") axis ticks, drops the
points that cannot be drawn (NaN, infinities), widens a flat or one-point range so it still has
an axis, and says in words what the chart shows (the SVG's aria-label). The page draws it with
the `chart` macro of templates/job_chart.html.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
MAX_DOTS = 40  # a series with more points shows only its last one as a dot
COLOURS = ("#0b57d0", "#b35c00", "#1e6b34", "#7b2fa3")  # 4.5:1 or better on white
_MAX_TICKS = 6


@dataclass(frozen=True)
class Series:
    """One named line."""

    name: str
    points: Sequence[Point]


@dataclass(frozen=True)
class Tick:
    """An axis tick: where it is drawn (pixels) and what it reads."""

    at: float
    label: str


@dataclass(frozen=True)
class Line:
    """A series in pixels: the polyline's points and the dots drawn on it."""

    name: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline points>
    dots: tuple[Point, ...]
    last: str  # the last value, as the legend shows it


@dataclass(frozen=True)
class Chart:
    """Everything an SVG line chart needs; `empty` when no series has a drawable point."""

    title: str
    width: int
    height: int
    left: float  # the plot box
    top: float
    right: float
    bottom: float
    lines: tuple[Line, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_label: str
    y_label: str
    label: str  # aria-label: what the chart shows, with each series' last value
    empty: bool


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "round",
    y_label: str = "",
    width: int = 560,
    height: int = 220,
) -> Chart:
    """Chart geometry for `series`; every drawn point lies inside the plot box."""
    left, top, right, bottom = 56.0, 12.0, width - 12.0, height - 40.0
    clean = [(s.name, [(x, y) for x, y in s.points if _finite(x) and _finite(y)]) for s in series]
    drawn = [(name, pts) for name, pts in clean if pts]
    if not drawn:
        return Chart(
            title, width, height, left, top, right, bottom, (), (), (), x_label, y_label,
            f"{title}: no data yet", True,
        )  # fmt: skip
    xs = [x for _, pts in drawn for x, _ in pts]
    ys = [y for _, pts in drawn for _, y in pts]
    x_lo, x_hi, x_values = _axis(min(xs), max(xs), whole=all(float(x).is_integer() for x in xs))
    y_lo, y_hi, y_values = _axis(min(ys), max(ys))

    def px(x: float) -> float:
        return _clamp(left + (x - x_lo) / (x_hi - x_lo) * (right - left), left, right)

    def py(y: float) -> float:
        return _clamp(bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top), top, bottom)

    lines = []
    said = []
    for i, (name, pts) in enumerate(drawn):
        pixels = [(round(px(x), 2), round(py(y), 2)) for x, y in pts]
        dots = tuple(pixels) if len(pixels) <= MAX_DOTS else (pixels[-1],)
        last_x, last_y = pts[-1]
        lines.append(
            Line(
                name,
                COLOURS[i % len(COLOURS)],
                " ".join(f"{a},{b}" for a, b in pixels),
                dots,
                number(last_y),
            )
        )
        said.append(f"{name} {number(last_y)} at {x_label} {number(last_x)}".strip())
    x_step = x_values[1] - x_values[0] if len(x_values) > 1 else 1.0
    y_step = y_values[1] - y_values[0] if len(y_values) > 1 else 1.0
    return Chart(
        title=title,
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        lines=tuple(lines),
        x_ticks=tuple(Tick(round(px(v), 2), number(v, x_step)) for v in x_values),
        y_ticks=tuple(Tick(round(py(v), 2), number(v, y_step)) for v in y_values),
        x_label=x_label,
        y_label=y_label,
        label=f"{title}: " + "; ".join(said),
        empty=False,
    )


def number(value: float, step: float | None = None) -> str:
    """A value as a chart labels it: 4 significant digits, or enough to tell ticks `step` apart."""
    digits = 4
    if step and _finite(step) and step > 0 and value != 0:
        digits = min(12, max(1, math.ceil(math.log10(abs(value) / step + 1)) + 1))
    text = f"{value:.{digits}g}"
    return "0" if text in ("-0", "0") else text


def _axis(lo: float, hi: float, whole: bool = False) -> tuple[float, float, list[float]]:
    """A range holding [lo, hi] with rounded ends, and the tick values inside it (whole numbers
    only if `whole`: rounds are counted, not measured)."""
    big = sys.float_info.max / 4  # beyond it, sums and spans below could overflow: clip there
    lo, hi = _clamp(lo, -big, big), _clamp(hi, -big, big)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step((hi - lo) / (_MAX_TICKS - 1))
    if whole:
        step = max(step, 1.0)
    low = min(math.floor(lo / step) * step, lo)
    high = max(math.ceil(hi / step) * step, hi)
    ticks: list[float] = []
    k = math.ceil(low / step)
    while len(ticks) <= _MAX_TICKS + 1:
        value = k * step
        if value > high:
            break
        if value >= low:
            ticks.append(value)
        k += 1
    return low, high, ticks


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if not _finite(raw) or raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    if power == 0.0:  # below the smallest normal float: a plain step is close enough
        return raw
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * power >= raw:
            return factor * power
    return 10.0 * power


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
