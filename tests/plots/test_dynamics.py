"""The dynamics figures on small hand-made tables: the artists hold the tables' data, axes and legends are
labelled, marks sit where they were asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots._base import new_figure
from netdyn.plots.dynamics import (
    plot_accuracy_by_mode,
    plot_loss_and_rate,
    plot_noised_accuracy,
    plot_perturbation_vs_basin,
    plot_size_evolution,
    plot_stage_basins,
    plot_stage_local_fields,
)

STEPS = [0, 1, 10, 100, 1000]


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


def _labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None


def _history(modes=("none",), depth=None):
    rows = []
    for mode in modes:
        for split, values in (("train", [0.1, 0.5, 1.0, 1.0, 1.0]), ("test", [0.1, 0.2, 0.3, 0.8, 0.9])):
            shift = 0.05 if mode == "batch" else 0.0
            for s, a in zip(STEPS, values, strict=True):
                rows.append({"step": s, "split": split, "bn_mode": mode, "accuracy": a - shift, "loss": 2 - a})
    table = pd.DataFrame(rows)
    return table.assign(depth=depth) if depth is not None else table


NOISED = pd.DataFrame([{"step": s, "eps": e, "accuracy": max(0.1, 1 - e) * (i / 4), "ci_low": 0, "ci_high": 1}
                       for i, s in enumerate(STEPS) for e in (0.0, 0.5, 1.0)])
DISTANCE = pd.DataFrame({"sample": range(5), "label": 0, "distance": [0.4, 0.5, 0.6, 0.7, 0.8]})


def test_noised_accuracy_draws_splits_chosen_eps_and_marks():
    fig = plot_noised_accuracy(_history(), NOISED.sample(frac=1, random_state=0), eps=[0.5], marks={"jump": 100})
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    np.testing.assert_array_equal(_line(ax, "test accuracy").get_ydata(), [0.1, 0.2, 0.3, 0.8, 0.9])
    line = _line(ax, "noised training samples, ε = 0.5")
    np.testing.assert_array_equal(line.get_xdata(), STEPS)
    np.testing.assert_allclose(line.get_ydata(), [0.5 * i / 4 for i in range(5)])
    assert not [x for x in ax.get_lines() if x.get_label().endswith("ε = 1")]
    np.testing.assert_array_equal(_line(ax, "jump").get_xdata(), [100, 100])
    assert ax.get_xlim() == (0.0, 1000.0)  # marks do not stretch the symlog axis
    _labelled(ax)
    with pytest.raises(ConfigError, match="none of eps"):
        plot_noised_accuracy(_history(), NOISED, eps=[0.7])


def test_noised_accuracy_default_eps_leaves_out_zero_and_running_mode_is_drawn():
    ax = plot_noised_accuracy(_history(("running", "batch")), NOISED).axes[0]
    labels = [x.get_label() for x in ax.get_lines()]
    assert "noised training samples, ε = 0" not in labels and "noised training samples, ε = 1" in labels
    np.testing.assert_allclose(_line(ax, "train accuracy").get_ydata(), [0.1, 0.5, 1.0, 1.0, 1.0])


def test_size_evolution_sizes_distance_band_and_test_accuracy():
    sizes = pd.DataFrame({"step": STEPS[::-1], "size_half": [1.2, 0.9, np.nan, 0.2, 0.1]})
    fig = plot_size_evolution(sizes, _history(), distance=DISTANCE, marks={"after": 1000})
    ax, twin = fig.axes
    line = _line(ax, "sample-basin size ε (accuracy halved)")
    np.testing.assert_array_equal(line.get_xdata(), STEPS)
    np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.2, np.nan, 0.9, 1.2])
    distance = [x for x in ax.get_lines() if x.get_label().startswith("test samples' distance")]
    assert len(distance) == 1 and distance[0].get_ydata()[0] == pytest.approx(0.6)
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), [0.1, 0.2, 0.3, 0.8, 0.9])
    _labelled(ax)
    by = plot_size_evolution(pd.concat([sizes.assign(depth=2), sizes.assign(depth=4)]), by="depth").axes[0]
    assert len(by.get_lines()) == 2


def test_stage_basins_one_curve_per_stage_and_kind_with_the_distance():
    rows = []
    for stage, step, scale in (("initial", 0, 0.1), ("before", 10, 0.5), ("after", 1000, 1.0)):
        for kind in ("sample", "weight"):
            for e in (0.0, 0.5, 1.0):
                rows.append({"stage": stage, "step": step, "kind": kind, "eps": e, "accuracy": scale * (1 - e / 2),
                             "ci_low": 0.0, "ci_high": 1.0})
    fig = plot_stage_basins(pd.DataFrame(rows), distance=DISTANCE, titles={"before": "just before"})
    sample, weight = fig.axes
    np.testing.assert_allclose(_line(sample, "just before (step 10)").get_ydata(), [0.5, 0.375, 0.25])
    np.testing.assert_allclose(_line(weight, "after (step 1000)").get_ydata(), [1.0, 0.75, 0.5])
    assert any(x.get_label().startswith("test samples' distance") for x in sample.get_lines())
    assert not any(x.get_label().startswith("test samples' distance") for x in weight.get_lines())
    _labelled(sample)
    _labelled(weight)


def test_stage_local_fields_one_panel_per_stage():
    points = pd.DataFrame({"stage": ["before"] * 4 + ["after"] * 4, "split": ["train", "train", "test", "test"] * 2,
                           "label": [1, 2, 1, 2] * 2, "h_a": np.arange(8.0), "h_b": -np.arange(8.0)})
    fig = plot_stage_local_fields(points, stages=("before", "after"), titles={"after": "after the jump"},
                                  neurons=(1, 2))
    before, after = fig.axes
    assert before.get_title() == "before" and after.get_title() == "after the jump"
    offsets = np.concatenate([c.get_offsets() for c in after.collections])
    assert sorted(offsets[:, 0].tolist()) == [4.0, 5.0, 6.0, 7.0]
    with pytest.raises(ConfigError, match="no points for stage"):
        plot_stage_local_fields(points, stages=("later",))
    # one row per split, the panels of a column sharing their axes
    fig = plot_stage_local_fields(points, stages=("before", "after"), splits=("test", "train"))
    test_before, test_after, train_before, train_after = fig.axes
    assert train_after.get_title() == "train samples, after"
    assert sorted(np.concatenate([c.get_offsets() for c in train_after.collections])[:, 0].tolist()) == [4.0, 5.0]
    assert sorted(np.concatenate([c.get_offsets() for c in test_after.collections])[:, 0].tolist()) == [6.0, 7.0]
    assert test_before.get_shared_x_axes().joined(test_before, train_before)


def test_accuracy_by_mode_solid_running_dashed_batch_per_depth():
    history = pd.concat([_history(("running", "batch"), depth=2), _history(("running", "batch"), depth=10)])
    ax = plot_accuracy_by_mode(history, by="depth").axes[0]
    running = _line(ax, "depth 10, test, BN running statistics")
    batch = _line(ax, "depth 10, test, BN batch statistics")
    assert running.get_linestyle() == "-" and batch.get_linestyle() == "--"
    np.testing.assert_allclose(batch.get_ydata(), np.array([0.1, 0.2, 0.3, 0.8, 0.9]) - 0.05)
    np.testing.assert_allclose(_line(ax, "depth 2, train, BN batch statistics").get_ydata(),
                               np.array([0.1, 0.5, 1.0, 1.0, 1.0]) - 0.05)
    # the training accuracy under running statistics too: whether the training samples wait for them as well
    train_running = _line(ax, "depth 2, train, BN running statistics")
    assert train_running.get_linestyle() == "-."
    np.testing.assert_allclose(train_running.get_ydata(), [0.1, 0.5, 1.0, 1.0, 1.0])
    assert "train, running statistics" in [t.get_text() for t in ax.get_legend().get_texts()]
    _labelled(ax)


def test_perturbation_vs_basin_lines_and_log_axis():
    table = pd.DataFrame({"step": STEPS, "eps_equivalent": [20.0, 5.0, 1.0, 0.1, 0.05],
                          "size_half": [np.nan, np.nan, 0.2, 0.3, 0.3], "depth": 6})
    ax = plot_perturbation_vs_basin(table, by="depth").axes[0]
    np.testing.assert_array_equal(_line(ax, "BN perturbation (running vs batch), depth 6").get_ydata(),
                                  [20.0, 5.0, 1.0, 0.1, 0.05])
    np.testing.assert_array_equal(_line(ax, "weight-basin size (size_half), depth 6").get_ydata(),
                                  [np.nan, np.nan, 0.2, 0.3, 0.3])
    assert ax.get_yscale() == "log"
    _labelled(ax)


def test_loss_and_rate_panels_and_peaks():
    history = _history(("running", "batch"))
    rates = pd.DataFrame({"step": [3.16, 31.6, 316.0] * 2, "layer": [3] * 3 + [4] * 3,
                          "rate": [0.1, 0.5, 0.2, 0.3, 0.7, 0.1]})
    mean = rates.groupby("step", as_index=False)["rate"].mean()
    fig = plot_loss_and_rate(history, rates, mean, loss_peak=(100.0, 1.2), rate_peak=(31.6, 0.6))
    top, bottom = fig.axes
    np.testing.assert_allclose(_line(top, "test loss, BN batch statistics").get_ydata(),
                               2 - np.array([0.1, 0.2, 0.3, 0.8, 0.9]))  # the loss column is 2 - unshifted
    np.testing.assert_array_equal(_line(top, "test-loss bump maximum (step 100)").get_xdata(), [100.0])
    np.testing.assert_allclose(_line(bottom, "layer 4").get_ydata(), [0.3, 0.7, 0.1])
    np.testing.assert_allclose(_line(bottom, "mean over these layers").get_ydata(), [0.2, 0.6, 0.15])
    np.testing.assert_array_equal(_line(bottom, "rate maximum (step 32)").get_ydata(), [0.6])
    assert top.get_ylabel() and top.get_legend() is not None  # the x axis is shared with the bottom panel
    _labelled(bottom)


def test_every_function_draws_into_given_axes():
    fig = new_figure((8, 8))
    axes = fig.subplots(3, 2).ravel()
    plot_noised_accuracy(_history(), NOISED, ax=axes[0])
    plot_size_evolution(pd.DataFrame({"step": STEPS, "size_half": 0.5}), ax=axes[1])
    plot_accuracy_by_mode(_history(("running", "batch")), ax=axes[2])
    plot_perturbation_vs_basin(pd.DataFrame({"step": STEPS, "eps_equivalent": 1.0, "size_half": 0.5}), ax=axes[3])
    plot_loss_and_rate(_history(), pd.DataFrame({"step": [3.0], "layer": [1], "rate": [0.1]}), axes=axes[4:])
    assert all(ax.get_lines() for ax in axes)
    with pytest.raises(ConfigError, match="needs 2 Axes"):
        plot_loss_and_rate(_history(), pd.DataFrame({"step": [3.0], "layer": [1], "rate": [0.1]}), axes=axes[:1])
