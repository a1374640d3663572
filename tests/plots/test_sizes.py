"""The figures against size (training-set size, depth, step): the drawn lines and bars hold the table's data,
averaged over seeds with a min-max band, one panel per value of a column; axes and legends labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots.sizes import plot_against, plot_census_by


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


# Two seeds per (width, depth); rows shuffled on purpose: the figure sorts by x.
ACCURACY = pd.DataFrame(
    [
        {"width": w, "depth": d, "seed": s, "accuracy": 0.9 + 0.01 * d / 2 + 0.001 * w / 64 + 0.002 * s}
        for w in (64, 128)
        for d in (2, 4, 6)
        for s in (0, 1)
    ]
).sample(frac=1, random_state=3)


def test_against_one_line_per_curve_with_the_seed_median_and_a_min_max_band():
    fig = plot_against(ACCURACY, "depth", "accuracy", by="width", ylabel="test accuracy")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    for width in (64, 128):
        rows = ACCURACY[ACCURACY.width == width]
        line = _line(ax, f"width {width}")
        np.testing.assert_array_equal(line.get_xdata(), [2, 4, 6])
        expected = rows.groupby("depth")["accuracy"].median().sort_index().to_numpy()
        np.testing.assert_allclose(line.get_ydata(), expected)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # one band per width: two seeds each
    # the band of width 64 spans seed 0 to seed 1 (0.002 apart) at every depth
    low, high = bands[0].get_paths()[0].vertices[:, 1].min(), bands[0].get_paths()[0].vertices[:, 1].max()
    rows = ACCURACY[ACCURACY.width == 64]
    assert low == pytest.approx(rows.accuracy.min()) and high == pytest.approx(rows.accuracy.max())
    assert ax.get_xlabel() == "depth" and ax.get_ylabel() == "test accuracy"
    assert ax.get_legend().get_title().get_text() == "width"
    assert list(ax.get_xticks()) == [2, 4, 6]


def test_against_panels_named_curves_in_the_given_order_and_log_x():
    table = pd.DataFrame(
        [
            {"inputs": inputs, "train_size": n, "curve": curve, "accuracy": acc}
            for inputs, offset in (("unit-norm inputs", 0.0), ("inputs in [0, 1]", 0.05))
            for n in (600, 5000)
            for curve, acc in (("tanh network", 0.85 + offset), ("linear network", 0.85))
        ]
    )
    fig = plot_against(table, "train_size", "accuracy", by="curve", panel="inputs", logx=True,
                       order=["tanh network", "linear network"], legend_title="")
    left, right = fig.axes
    assert left.get_title() == "inputs in [0, 1]" and right.get_title() == "unit-norm inputs"
    np.testing.assert_allclose(_line(left, "tanh network").get_ydata(), [0.9, 0.9])
    np.testing.assert_allclose(_line(right, "tanh network").get_ydata(), [0.85, 0.85])
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["tanh network", "linear network"]
    assert left.get_xscale() == "log"
    assert [t.get_text() for t in left.get_xticklabels()] == ["600", "5000"]  # few sizes: each one ticked
    assert not [c for c in left.collections if isinstance(c, PolyCollection)]  # one row per point: no band
    assert left.get_ylabel() == "accuracy"


def test_against_separate_y_axes_and_given_axes():
    table = ACCURACY.melt(id_vars=["width", "depth", "seed"], value_vars=["accuracy"], var_name="q")
    table = pd.concat([table, table.assign(q="double", value=2 * table["value"])])
    fig = plot_against(table, "depth", "value", panel="q", sharey=False)
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy", "double"]
    assert _line(fig.axes[1], "value").get_ydata()[0] == pytest.approx(
        2 * table[(table.q == "accuracy") & (table.depth == 2)]["value"].mean())
    host = Figure()
    ax = host.add_subplot()
    assert plot_against(ACCURACY, "depth", "accuracy", by="width", ax=ax) is host
    assert len(ax.get_lines()) == 2


def test_against_rejects_bad_tables():
    with pytest.raises(ConfigError, match="lacks column"):
        plot_against(ACCURACY, "depth", "loss")
    with pytest.raises(ConfigError, match="no rows with width"):
        plot_against(ACCURACY, "depth", "accuracy", by="width", order=[64, 512])
    with pytest.raises(ConfigError, match="must hold numbers"):
        plot_against(ACCURACY.assign(depth=ACCURACY.depth.astype(str)), "depth", "accuracy")
    with pytest.raises(ConfigError, match="needs 2 Axes"):
        plot_against(ACCURACY, "depth", "accuracy", panel="width", ax=Figure().add_subplot())


CENSUS = pd.DataFrame(
    {
        "case": ["unit, 5000", "[0,1], 600", "[0,1], 5000"],
        "opm": [1.0, 0.7, 0.5],
        "npm": [0.0, 0.2, 0.4],
        "inactive": [0.0, 0.1, 0.1],
        "rho_mean": [1.0, 0.9, 0.8],
        "rho_q10": [1.0, 0.6, 0.5],
        "rho_q25": [1.0, 0.8, 0.7],
        "rho_median": [1.0, 0.95, 0.85],
        "rho_q75": [1.0, 0.99, 0.95],
    }
)


def test_census_by_stacks_the_modes_in_the_given_order_beside_the_rho_distribution():
    order = ["[0,1], 600", "[0,1], 5000", "unit, 5000"]
    fig = plot_census_by(CENSUS, by="case", order=order)
    bars_ax, rho_ax = fig.axes
    rows = CENSUS.set_index("case").loc[order]
    heights = [patch.get_height() for patch in bars_ax.patches]
    bottoms = [patch.get_y() for patch in bars_ax.patches]
    # patches: three OPM bars, then three NPM, then three inactive
    np.testing.assert_allclose(heights, [*rows.opm, *rows.npm, *rows.inactive])
    np.testing.assert_allclose(bottoms[3:6], rows.opm)
    np.testing.assert_allclose(bottoms[6:], rows.opm + rows.npm)
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == order
    np.testing.assert_allclose(_line(rho_ax, "median").get_ydata(), rows.rho_median)
    assert bars_ax.get_xlabel() == "case" and bars_ax.get_ylabel() and rho_ax.get_ylabel()
    assert bars_ax.get_legend() is not None and rho_ax.get_legend() is not None
    # sorted when no order is given; bars only into a given Axes
    ax = Figure().add_subplot()
    plot_census_by(CENSUS, by="case", ax=ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == sorted(CENSUS.case)


def test_census_by_rejects_several_rows_per_value():
    with pytest.raises(ConfigError, match="several rows per case"):
        plot_census_by(pd.concat([CENSUS, CENSUS]), by="case")
    with pytest.raises(ConfigError, match="no rows with case"):
        plot_census_by(CENSUS, by="case", order=["nope"])
