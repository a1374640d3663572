"""plot_sweep on small hand-made tables: the lines hold the means of the table, seeds give bars, a size never
reached is marked rather than dropped, axes and legend are labelled."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots.basin_sweeps import plot_sweep


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


SIZES = pd.DataFrame(
    [
        {"depth": depth, "width": width, "seed": seed, "size_half": 0.5 * depth + 0.01 * width + 0.1 * seed}
        for depth in (2, 8)
        for width in (64, 16, 256)  # shuffled on purpose: the line must be sorted by width
        for seed in (0, 1)
    ]
)


def test_lines_hold_the_median_over_seeds_per_group_sorted_by_x():
    fig = plot_sweep(SIZES, "width", "size_half", by="depth", ylabel="sample-space size_half")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    for depth in (2, 8):
        line = _line(ax, f"depth {depth}")
        np.testing.assert_array_equal(line.get_xdata(), [16, 64, 256])
        expected = [0.5 * depth + 0.01 * w + 0.05 for w in (16, 64, 256)]
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "width" and ax.get_ylabel() == "sample-space size_half"
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "depth"
    assert [t.get_text() for t in legend.get_texts()] == ["depth 2", "depth 8"]
    # two seeds per point: one error bar per point, from the lowest seed to the highest
    bars = [c for c in ax.collections if c.get_segments()]
    segments = np.concatenate([np.asarray(c.get_segments()) for c in bars])
    assert len(segments) == 6
    np.testing.assert_allclose(np.sort(np.abs(segments[:, 1, 1] - segments[:, 0, 1])), [0.1] * 6)


def test_three_seeds_draw_their_median_not_their_mean_and_the_legend_says_so():
    table = pd.DataFrame({"batch_size": [50] * 3 + [200] * 3, "size_half": [1.0, 1.1, 3.0, 2.0, 2.2, 2.1]})
    ax = plot_sweep(table, "batch_size", "size_half").axes[0]
    line = _line(ax, "median of 3 seeds (bars: min to max)")
    np.testing.assert_allclose(line.get_ydata(), [1.1, 2.1])


def test_a_size_never_reached_is_marked_at_the_top_not_drawn_as_a_value():
    table = pd.DataFrame({"batch_size": [50, 200, 1000, 2500], "size_half": [2.0, 1.5, math.nan, 1.0]})
    ax = plot_sweep(table, "batch_size", "size_half").axes[0]
    line = _line(ax, "one seed")
    np.testing.assert_array_equal(line.get_xdata(), [50, 200, 2500])
    np.testing.assert_allclose(line.get_ydata(), [2.0, 1.5, 1.0])
    markers = [m for m in ax.get_lines() if m.get_label() == "_not reached on the grid"]
    assert len(markers) == 1
    assert markers[0].get_xdata()[0] == 1000 and markers[0].get_marker() == "^"
    assert 0.9 < markers[0].get_ydata()[0] <= 1.0  # axes coordinates: the top edge
    assert "not reached on the grid" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "200", "1000", "2500"]


def test_missing_points_of_two_groups_at_one_x_stay_apart():
    table = pd.DataFrame(
        {"depth": [1, 1, 2, 2], "width": [16, 32, 16, 32], "size_half": [math.nan, 1.0, math.nan, 2.0]}
    )
    ax = plot_sweep(table, "width", "size_half", by="depth").axes[0]
    heights = sorted(m.get_ydata()[0] for m in ax.get_lines() if m.get_label() == "_not reached on the grid")
    assert len(heights) == 2 and heights[0] < heights[1]


def test_draws_into_a_given_axes_and_checks_its_columns():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_sweep(SIZES, "width", "size_half", by="depth", ax=ax, title="t") is fig
    assert ax.get_title() == "t"
    with pytest.raises(ConfigError, match="lacks column"):
        plot_sweep(SIZES, "lr", "size_half")
