"""Line chart geometry: points inside the plot box, readable ticks, the awkward series."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.web.charts import Chart, Series, line_chart, number


def pixels(chart: Chart) -> list[tuple[float, float]]:
    out = []
    for line in chart.lines:
        out += [tuple(map(float, p.split(","))) for p in line.points.split()]
        out += list(line.dots)
    return out  # type: ignore[return-value]


def inside(chart: Chart, x: float, y: float) -> bool:
    return chart.left <= x <= chart.right and chart.top <= y <= chart.bottom


any_float = st.floats(allow_nan=True, allow_infinity=True)
points = st.lists(st.tuples(any_float, any_float), max_size=60)


@given(st.lists(points, min_size=1, max_size=4))
@example([[(0.0, 1.634266486238469e308)]])  # one value near the float limit
@example([[(-1e308, -1e308), (1e308, 1e308)]])  # a span wider than a float holds
@example([[(1.0, 5e-324), (2.0, 1e-323)]])  # subnormal values
def test_every_point_and_tick_lies_in_the_plot_box(
    series_points: list[list[tuple[float, float]]],
) -> None:
    chart = line_chart(
        [Series(f"s{i}", pts) for i, pts in enumerate(series_points)], title="Loss by round"
    )
    drawable = any(math.isfinite(x) and math.isfinite(y) for pts in series_points for x, y in pts)
    assert chart.empty is (not drawable)
    for x, y in pixels(chart):
        assert inside(chart, x, y)
    for tick in chart.x_ticks:
        assert chart.left <= tick.at <= chart.right
    for tick in chart.y_ticks:
        assert chart.top <= tick.at <= chart.bottom
    if drawable:
        assert 1 <= len(chart.y_ticks) <= 8 and 1 <= len(chart.x_ticks) <= 8


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30))
def test_the_lowest_value_is_lowest_on_the_page(values: list[float]) -> None:
    chart = line_chart([Series("loss", list(enumerate(values)))], title="Loss")
    ys = [y for _, y in pixels(chart)[: len(values)]]
    low, high = values.index(min(values)), values.index(max(values))
    assert ys[low] == max(ys) and ys[high] == min(ys)  # SVG's y grows downwards


def test_an_empty_chart_says_no_data_yet() -> None:
    for series in ([], [Series("loss", [])], [Series("loss", [(1, math.nan), (math.inf, 2)])]):
        chart = line_chart(series, title="Loss by round")
        assert chart.empty and chart.lines == () and chart.label == "Loss by round: no data yet"


def test_one_point_gets_a_dot_and_an_axis_around_it() -> None:
    chart = line_chart([Series("train loss", [(1, 2.5)])], title="Loss by round")
    (line,) = chart.lines
    assert len(line.dots) == 1 and inside(chart, *line.dots[0])
    assert len(chart.y_ticks) >= 2 and len(chart.x_ticks) >= 2
    assert chart.label == "Loss by round: train loss 2.5 at round 1"


def test_a_constant_series_is_drawn_mid_height_with_ticks_around_it() -> None:
    chart = line_chart([Series("accuracy", [(1, 0.5), (2, 0.5), (3, 0.5)])], title="Accuracy")
    ys = {y for _, y in chart.lines[0].dots}
    assert len(ys) == 1 and chart.top < ys.pop() < chart.bottom
    labels = [t.label for t in chart.y_ticks]
    assert len(labels) == len(set(labels)) >= 2


def test_bad_points_are_skipped_and_the_rest_drawn() -> None:
    chart = line_chart(
        [Series("loss", [(1, 3.0), (2, math.nan), (3, math.inf), (4, 1.0)])], title="Loss"
    )
    assert len(chart.lines[0].dots) == 2 and chart.lines[0].last == "1"


def test_ticks_are_round_numbers_and_the_label_names_every_series() -> None:
    chart = line_chart(
        [Series("train loss", [(1, 2.31), (2, 1.7)]), Series("held-out loss", [(2, 1.9)])],
        title="Loss by round",
    )
    assert [t.label for t in chart.y_ticks] == ["1.6", "1.8", "2", "2.2", "2.4"]
    assert chart.label == "Loss by round: train loss 1.7 at round 2; held-out loss 1.9 at round 2"
    assert chart.lines[0].colour != chart.lines[1].colour


def test_a_long_series_keeps_only_its_last_dot() -> None:
    chart = line_chart([Series("loss", [(i, 1 / (i + 1)) for i in range(100)])], title="Loss")
    assert len(chart.lines[0].dots) == 1 and len(chart.lines[0].points.split()) == 100


def test_numbers_are_short_but_tell_ticks_apart() -> None:
    assert number(0.123456) == "0.1235"
    assert number(-0.0) == "0"
    assert number(1.0001, step=0.0001) == "1.0001"


def test_rounds_get_whole_number_ticks() -> None:
    chart = line_chart([Series("loss", [(1, 3.0), (2, 1.5), (3, 1.0)])], title="Loss")
    assert [t.label for t in chart.x_ticks] == ["1", "2", "3"]
    one = line_chart([Series("loss", [(1, 3.0)])], title="Loss")
    assert [t.label for t in one.x_ticks] == ["0", "1", "2"]
