"""The pruning figures (netdyn.plots.pruning) on hand-made tables: the artists hold the tables' data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots.pruning import plot_by_size, plot_effective_layers, plot_lmap_training, plot_pruning_grid


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


def _curves(kind_offset):
    """Accuracy tables of four networks (width 8/16 x depth 2/3), layers 0..depth, both splits."""
    rows = []
    for width in (8, 16):
        for depth in (2, 3):
            for layer in range(depth + 1):
                for split in ("train", "test"):
                    acc = 0.5 + 0.1 * layer + kind_offset + (0.01 if width == 16 else 0) - 0.001 * depth
                    rows.append({"width": width, "depth": depth, "layer": layer, "split": split, "accuracy": acc})
    return pd.DataFrame(rows).sample(frac=1, random_state=0)  # the figure must sort


LMAP, LP = _curves(0.0), _curves(0.1)
NETWORK = pd.DataFrame([
    {"width": w, "depth": d, "split": s, "accuracy": 0.5 + 0.1 * d + (0.01 if w == 16 else 0) - 0.001 * d}
    for w in (8, 16) for d in (2, 3) for s in ("train", "test")
])


def test_pruning_grid_has_one_panel_per_network_holding_its_curves():
    fig = plot_pruning_grid(LMAP, LP, NETWORK)
    assert isinstance(fig, Figure)
    axes = np.asarray(fig.axes).reshape(2, 2)  # rows: width 8, 16; columns: depth 2, 3
    for i, width in enumerate((8, 16)):
        for j, depth in enumerate((2, 3)):
            ax = axes[i, j]
            assert ax.get_title() == f"depth {depth}, width {width}"
            want = LMAP[(LMAP.width == width) & (LMAP.depth == depth) & (LMAP.split == "test")].sort_values("layer")
            line = _line(ax, "L-map pruning")
            np.testing.assert_array_equal(line.get_xdata(), want.layer)
            np.testing.assert_allclose(line.get_ydata(), want.accuracy)
            # the L-map reaches the network only at its last layer; the LP (0.1 higher) one layer earlier
            np.testing.assert_array_equal(_line(ax, "_L-map effective").get_xdata(), [depth])
            np.testing.assert_array_equal(_line(ax, "_LP effective").get_xdata(), [depth - 1, depth])
            assert ax.get_legend() is None
            assert line.get_zorder() > _line(ax, "LP pruning").get_zorder()  # the L-map drawn in front
    assert axes[1, 0].get_xlabel() and axes[0, 0].get_ylabel() and not axes[0, 1].get_ylabel()
    assert len(fig.legends) == 1 and "L-map pruning" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_pruning_grid_leaves_missing_networks_empty_and_checks_its_input():
    lmap = LMAP[~((LMAP.width == 16) & (LMAP.depth == 3))]
    fig = plot_pruning_grid(lmap, None, NETWORK)
    assert not np.asarray(fig.axes).reshape(2, 2)[1, 1].axison
    with pytest.raises(ConfigError, match="accuracy"):
        plot_pruning_grid(LMAP.drop(columns="accuracy"), LP, NETWORK)
    with pytest.raises(ConfigError, match="one network per panel"):
        plot_pruning_grid(LMAP, LP, pd.concat([NETWORK, NETWORK]))
    host = Figure()
    with pytest.raises(ConfigError, match="2 x 2 Axes"):
        plot_pruning_grid(LMAP, LP, NETWORK, axes=host.subplots(1, 3))


STRUCTURE = pd.DataFrame({
    "variant": ["plain"] * 3 + ["residual"] * 3,
    "depth": [4, 8, 16] * 2,
    "width": 32,
    "lmap_effective_from": [3, 8, 16, 2, 5, 9],
    "lp_effective_from": [1, 2, pd.NA, 1, 1, 2],
    "standard_structure": [True, False, False, True, True, True],
}).astype({"lmap_effective_from": "Int64", "lp_effective_from": "Int64"})


def test_effective_layers_are_drawn_relative_to_the_depth_with_filled_marks_where_the_structure_holds():
    fig = plot_effective_layers(STRUCTURE)
    plain, residual = fig.axes
    assert plain.get_title() == "plain" and residual.get_title() == "residual"
    np.testing.assert_allclose(_line(plain, "L-map, width 32").get_ydata(), [3 / 4, 1, 1])
    np.testing.assert_allclose(_line(plain, "LP, width 32").get_ydata(), [1 / 4, 2 / 8, np.nan])
    np.testing.assert_array_equal(_line(plain, "_holds 32").get_xdata(), [4])
    np.testing.assert_array_equal(_line(plain, "_fails 32").get_xdata(), [8, 16])
    np.testing.assert_allclose(_line(residual, "L-map, width 32").get_ydata(), [2 / 4, 5 / 8, 9 / 16])
    assert plain.get_xlabel() == "depth" and plain.get_ylabel()
    assert len(fig.legends) == 1
    # two widths: drawn a little to either side of their depth, in width order
    two = plot_effective_layers(pd.concat([STRUCTURE, STRUCTURE.assign(width=64)])).axes[0]
    narrow, wide = _line(two, "L-map, width 32").get_xdata(), _line(two, "L-map, width 64").get_xdata()
    assert (narrow < [4, 8, 16]).all() and (wide > [4, 8, 16]).all() and (wide / narrow < 1.1).all()
    with pytest.raises(ConfigError, match="lp_effective_from"):
        plot_effective_layers(STRUCTURE.drop(columns="lp_effective_from"))


def test_by_size_draws_one_line_per_variant_and_width():
    table = pd.concat([STRUCTURE, STRUCTURE.assign(width=64)]).assign(test_accuracy=np.linspace(0.9, 0.99, 12))
    ax = plot_by_size(table, "test_accuracy").axes[0]
    want = table[(table.variant == "residual") & (table.width == 64)].sort_values("depth")
    line = _line(ax, "residual, width 64")
    np.testing.assert_array_equal(line.get_xdata(), want.depth)
    np.testing.assert_allclose(line.get_ydata(), want.test_accuracy)
    assert _line(ax, "plain, width 64").get_linestyle() != line.get_linestyle()
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    with pytest.raises(ConfigError, match="one row per network"):
        plot_by_size(pd.concat([table, table]), "test_accuracy")


STEPS = [0, 1, 10, 100, 1000]
LMAP_STEPS = pd.DataFrame([
    {"step": s, "layer": layer, "split": split, "accuracy": min(1.0, 0.1 + 0.2 * i + 0.01 * layer)}
    for i, s in enumerate(STEPS) for layer in (2, 3, 4) for split in ("train", "test")
])
HISTORY = pd.DataFrame([
    {"step": s, "split": split, "bn_mode": mode, "accuracy": 0.1 + 0.2 * i + (0.05 if mode == "batch" else 0)}
    for i, s in enumerate(STEPS) for split in ("train", "test") for mode in ("running", "batch")
])
NET_STEPS = LMAP_STEPS[LMAP_STEPS.layer == 4].drop(columns="layer")


def test_lmap_training_draws_the_layers_the_training_accuracy_and_the_grokking_point():
    fig = plot_lmap_training(LMAP_STEPS, HISTORY, layers=[2, 3], network=NET_STEPS, grokking_step=100)
    top, bottom = fig.axes
    for layer in (2, 3):
        want = LMAP_STEPS[(LMAP_STEPS.layer == layer) & (LMAP_STEPS.split == "train")]
        line = _line(top, f"L-map, layer {layer}")
        np.testing.assert_array_equal(line.get_xdata(), STEPS)
        np.testing.assert_allclose(line.get_ydata(), want.accuracy)
    assert not [line for line in top.get_lines() if line.get_label() == "L-map, layer 4"]
    batch = HISTORY[(HISTORY.split == "train") & (HISTORY.bn_mode == "batch")]
    np.testing.assert_allclose(_line(top, "train accuracy (batch statistics)").get_ydata(), batch.accuracy)
    np.testing.assert_allclose(
        _line(top, "network train accuracy (checkpoints, running statistics)").get_ydata(),
        NET_STEPS[NET_STEPS.split == "train"].accuracy,
    )
    test = HISTORY[(HISTORY.split == "test") & (HISTORY.bn_mode == "running")]
    np.testing.assert_allclose(_line(bottom, "test accuracy (running statistics)").get_ydata(), test.accuracy)
    for ax in (top, bottom):
        np.testing.assert_array_equal(_line(ax, "grokking point (step 100)").get_xdata(), [100, 100])
        assert ax.get_ylabel() and ax.get_legend() is not None and ax.get_xscale() == "symlog"
    assert bottom.get_xlabel()


def test_lmap_training_without_grokking_point_and_bad_input():
    top, _ = plot_lmap_training(LMAP_STEPS, HISTORY, grokking_step=None).axes
    assert not [line for line in top.get_lines() if line.get_label().startswith("grokking")]
    assert len([line for line in top.get_lines() if line.get_label().startswith("L-map")]) == 3
    with pytest.raises(ConfigError, match="split='valid'"):
        plot_lmap_training(LMAP_STEPS, HISTORY, split="valid")
    with pytest.raises(ConfigError, match="one run"):
        plot_lmap_training(pd.concat([LMAP_STEPS, LMAP_STEPS]), HISTORY)


def test_lmap_training_third_panel_shows_where_the_linear_tail_starts():
    tail = pd.DataFrame({"step": STEPS[::-1], "lmap_effective_from": [2, 2, 3, pd.NA, 4]})
    tail = tail.astype({"lmap_effective_from": "Int64"})
    fig = plot_lmap_training(LMAP_STEPS, HISTORY, tail=tail, grokking_step=10, chance_until=5)
    assert len(fig.axes) == 3
    panel = fig.axes[2]
    line = _line(panel, "first layer of the linear tail (train set)")
    np.testing.assert_array_equal(line.get_xdata(), STEPS)
    np.testing.assert_array_equal(line.get_ydata(), [np.nan, np.nan, 3, 2, 2])  # steps 0 and 1: before the rise
    assert panel.get_xlabel() and panel.get_ylabel() and not fig.axes[1].get_xlabel()
    np.testing.assert_array_equal(_line(panel, "grokking point (step 10)").get_xdata(), [10, 10])
    for ax in fig.axes:
        (shade,) = [p for p in ax.patches if p.get_label() == "before the network's rise (running statistics)"]
        np.testing.assert_allclose([shade.get_x(), shade.get_x() + shade.get_width()], [0, 5])
    with pytest.raises(ConfigError, match="lmap_effective_from"):
        plot_lmap_training(LMAP_STEPS, HISTORY, tail=tail.rename(columns={"lmap_effective_from": "layer"}))


def test_lmap_training_draws_the_tail_only_from_the_networks_rise_on():
    """Before the rise the net is at chance and every L-map agrees with it: the tail is undefined there."""
    tail = pd.DataFrame({"step": STEPS, "lmap_effective_from": [0, 0, 3, 2, 2]})
    fig = plot_lmap_training(LMAP_STEPS, HISTORY, network=NET_STEPS, tail=tail, chance_until=STEPS[2],
                             bn_mode="batch")
    panel = fig.axes[2]
    np.testing.assert_array_equal(_line(panel, "first layer of the linear tail (train set)").get_ydata(),
                                  [np.nan, np.nan, 3, 2, 2])
    assert "drawn from the network's half-rise on" in panel.get_title()
    _line(fig.axes[0], "network train accuracy (checkpoints, batch statistics)")
    never = plot_lmap_training(LMAP_STEPS, HISTORY, tail=tail, chance_until=np.inf).axes
    assert np.isnan(_line(never[2], "first layer of the linear tail (train set)").get_ydata()).all()
    assert "never rises" in never[2].get_title()
    for ax in never:  # the whole run shaded as the chance phase
        (shade,) = [p for p in ax.patches if p.get_label() == "before the network's rise (running statistics)"]
        assert shade.get_x() + shade.get_width() >= STEPS[-1]
