"""Every figure function on small synthetic tables: the artists hold the table's data, axes are labelled."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.figure import Figure

from netdyn.errors import ConfigError
from netdyn.plots import (
    plot_basin,
    plot_class_geometry,
    plot_evolution,
    plot_layer_accuracy,
    plot_local_fields,
    plot_neuron_modes,
    plot_rpd,
    plot_rpd_summary,
    plot_training,
    save_figure,
)

RNG = np.random.default_rng(0)


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(matches) == 1, [line.get_label() for line in ax.get_lines()]
    return matches[0]


def _assert_labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend() is not None


def _accuracy_table(values_by_split):
    return pd.DataFrame(
        [
            {"layer": layer, "split": split, "accuracy": acc}
            for split, values in values_by_split.items()
            for layer, acc in enumerate(values)
        ]
    )


# Rows shuffled on purpose: the figure must sort by layer.
LMAP = _accuracy_table({"train": [0.5, 0.7, 0.9, 0.99, 1.0], "test": [0.4, 0.6, 0.85, 0.977, 0.98]}).sample(
    frac=1, random_state=1
)
LP = _accuracy_table({"train": [0.9, 0.95, 0.99, 1.0, 1.0], "test": [0.88, 0.96, 0.976, 0.99, 0.98]})


def test_layer_accuracy_lines_hold_the_tables_and_mark_effective_layers():
    fig = plot_layer_accuracy(LMAP, LP, {"train": 1.0, "test": 0.98})
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    test_lmap = LMAP[LMAP.split == "test"].sort_values("layer")
    lmap_line = _line(ax, "L-map pruning")
    np.testing.assert_array_equal(lmap_line.get_xdata(), test_lmap.layer)
    np.testing.assert_array_equal(lmap_line.get_ydata(), test_lmap.accuracy)
    np.testing.assert_array_equal(_line(ax, "LP pruning").get_ydata(), LP[LP.split == "test"].accuracy)
    # Effective = at least 0.98 - 0.005: L-map at layers 3 (0.977) and 4; LP at 2, 3, 4 (0.99 above counts).
    np.testing.assert_array_equal(_line(ax, "_L-map effective").get_xdata(), [3, 4])
    np.testing.assert_array_equal(_line(ax, "_LP effective").get_xdata(), [2, 3, 4])
    np.testing.assert_array_equal(_line(ax, "network (0.9800)").get_ydata(), [0.98, 0.98])
    _assert_labelled(ax)
    assert "test" in ax.get_title()


def test_layer_accuracy_accepts_network_accuracy_as_number_or_table_and_other_split():
    table = pd.DataFrame({"split": ["train", "test"], "accuracy": [1.0, 0.98]})
    for network in (0.98, table):
        ax = plot_layer_accuracy(LMAP, LP, network).axes[0]
        np.testing.assert_array_equal(_line(ax, "_L-map effective").get_xdata(), [3, 4])
    ax = plot_layer_accuracy(LMAP, None, table, split="train").axes[0]
    np.testing.assert_array_equal(
        _line(ax, "L-map pruning").get_ydata(), LMAP[LMAP.split == "train"].sort_values("layer").accuracy
    )
    assert not [line for line in ax.get_lines() if line.get_label().startswith("LP")]
    # Without the network's accuracy: curves only, nothing marked.
    ax = plot_layer_accuracy(LMAP, LP).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["L-map pruning", "LP pruning"]


def test_layer_accuracy_rejects_bad_tables():
    with pytest.raises(ConfigError, match="accuracy"):
        plot_layer_accuracy(LMAP.drop(columns="accuracy"), None)
    with pytest.raises(ConfigError, match="one of lmap and lp"):
        plot_layer_accuracy(None, None)
    with pytest.raises(ConfigError, match="several rows"):
        plot_layer_accuracy(pd.concat([LMAP, LMAP]), None)
    with pytest.raises(ConfigError, match="'valid'"):
        plot_layer_accuracy(LMAP, LP, {"train": 1.0, "test": 0.98}, split="valid")


def _rpd_table(layers, bins=10):
    q = (np.arange(bins) + 0.5) / bins
    frames = [
        pd.DataFrame({"layer": layer, "q": q, "density": 1 + 0.3 * layer * (0.5 - q)}) for layer in layers
    ]
    return pd.concat(frames).sample(frac=1, random_state=2)


def test_rpd_one_curve_per_layer_and_flat_reference():
    table = _rpd_table([1, 2, 3])
    ax = plot_rpd(table).axes[0]
    for layer in (1, 2, 3):
        rows = table[table.layer == layer].sort_values("q")
        line = _line(ax, f"layer {layer}")
        np.testing.assert_allclose(line.get_xdata(), rows.q)
        np.testing.assert_allclose(line.get_ydata(), rows.density)
    np.testing.assert_array_equal(_line(ax, "flat (random order)").get_ydata(), [1, 1])
    colours = {tuple(_line(ax, f"layer {layer}").get_color()) for layer in (1, 2, 3)}
    assert len(colours) == 3
    _assert_labelled(ax)
    assert len(plot_rpd(table, layers=[1, 3]).axes[0].get_lines()) == 3


def test_rpd_many_layers_get_a_colorbar_and_other_columns_can_split_curves():
    fig = plot_rpd(_rpd_table(range(1, 13)))
    assert len(fig.axes) == 2  # the plot and its colour bar
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 13
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["flat (random order)"]
    by_step = pd.concat([_rpd_table([2]).assign(step=s) for s in (10, 100, 1000)])
    ax = plot_rpd(by_step, by="step").axes[0]
    assert {line.get_label() for line in ax.get_lines()} >= {"step 10", "step 100", "step 1000"}
    with pytest.raises(ConfigError, match="several rows"):
        plot_rpd(by_step)


SUMMARY = pd.DataFrame(
    {"layer": [3, 1, 2], "gradient": [2.0, 1.0, 1.5], "top_mass": 0.2, "order_index": [0.3, 0.1, 0.2]}
)


def test_rpd_summary_panels_twin_axis_and_given_axes():
    fig = plot_rpd_summary(SUMMARY)
    grad_ax, order_ax = fig.axes
    np.testing.assert_array_equal(_line(grad_ax, "RPD gradient").get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(_line(grad_ax, "RPD gradient").get_ydata(), [1.0, 1.5, 2.0])
    np.testing.assert_array_equal(_line(order_ax, "order index").get_ydata(), [0.1, 0.2, 0.3])
    assert order_ax.get_xlabel() and grad_ax.get_ylabel() and order_ax.get_ylabel()
    assert grad_ax.get_legend() is not None and order_ax.get_legend() is not None

    host = Figure()
    ax = host.add_subplot()
    assert plot_rpd_summary(SUMMARY, ax=ax) is host
    assert len(host.axes) == 2  # the twin y axis
    assert ax.get_legend() is not None and len(ax.get_legend().get_texts()) == 2

    host = Figure()
    axes = host.subplots(1, 2)
    assert plot_rpd_summary(SUMMARY, ax=axes) is host
    with pytest.raises(ConfigError, match="needs 2 Axes"):
        plot_rpd_summary(SUMMARY, ax=[axes[0]])


def test_neuron_modes_stacked_bars_equal_the_census():
    census = pd.DataFrame(
        {
            "layer": [2, 1],
            "opm": [0.7, 0.2],
            "npm": [0.2, 0.5],
            "inactive": [0.1, 0.3],
            "mean_rho": [0.9, 0.5],
        }
    )
    ax = plot_neuron_modes(census).axes[0]
    bars = ax.patches
    assert len(bars) == 6
    heights = np.array([bar.get_height() for bar in bars]).reshape(3, 2)
    bottoms = np.array([bar.get_y() for bar in bars]).reshape(3, 2)
    np.testing.assert_allclose(
        heights, [[0.2, 0.7], [0.5, 0.2], [0.3, 0.1]]
    )  # opm, npm, inactive; layers 1, 2
    np.testing.assert_allclose(bottoms, [[0, 0], [0.2, 0.7], [0.7, 0.9]])
    np.testing.assert_allclose([bar.get_x() + bar.get_width() / 2 for bar in bars[:2]], [1, 2])
    _assert_labelled(ax)
    assert len(ax.get_legend().get_texts()) == 3


def _geometry(layers):
    mean = np.linspace(0.6, 0.1, len(layers))
    return pd.DataFrame(
        {
            "layer": layers,
            "cos_dist_mean": mean,
            "cos_dist_q25": mean - 0.05,
            "cos_dist_median": mean,
            "cos_dist_q75": mean + 0.05,
            "centre_similarity": np.linspace(0.9, 0.0, len(layers)),
            "nc1": 1.0,
        }
    )


def test_class_geometry_mean_band_similarity_and_one_line_per_sample():
    layers = [0, 1, 2, 3]
    geometry = _geometry(layers)
    per_sample = pd.DataFrame(
        [
            {"layer": l, "sample": s, "label": 5, "cos_dist": 0.1 * s + 0.01 * l}
            for s in range(7)
            for l in layers
        ]
    ).sample(frac=1, random_state=3)
    ax = plot_class_geometry(geometry, per_sample).axes[0]
    np.testing.assert_allclose(
        _line(ax, "distance to own class centre (mean)").get_ydata(), geometry.cos_dist_mean
    )
    np.testing.assert_allclose(
        _line(ax, "similarity between class centres (mean)").get_ydata(), geometry.centre_similarity
    )
    (samples,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = samples.get_segments()
    assert len(segments) == 7
    np.testing.assert_allclose(segments[4], [[l, 0.4 + 0.01 * l] for l in layers])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    _assert_labelled(ax)
    assert "n = 7" in " ".join(t.get_text() for t in ax.get_legend().get_texts())

    ax = plot_class_geometry(geometry).axes[0]
    assert not [c for c in ax.collections if isinstance(c, LineCollection)]


def _curve(size, n=13):
    eps = np.linspace(0, 3, n)
    acc = 0.1 + 0.9 / (1 + np.exp(4 * (eps - size)))
    return pd.DataFrame({"eps": eps, "accuracy": acc, "ci_low": acc - 0.02, "ci_high": acc + 0.02})


def test_basin_curves_bands_sizes_and_chance():
    curves = {"depth 2": _curve(0.5), "depth 4": _curve(1.0), "depth 8": _curve(1.5)}
    fig = plot_basin(curves, sizes={"depth 2": 0.5, "depth 8": 1.5}, chance=0.1, legend_title="depth")
    ax = fig.axes[0]
    for label, table in curves.items():
        line = _line(ax, label)
        np.testing.assert_allclose(line.get_xdata(), table.eps)
        np.testing.assert_allclose(line.get_ydata(), table.accuracy)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 3
    marker = _line(ax, "_depth 8 size_half")
    assert marker.get_xdata()[0] == 1.5
    np.testing.assert_allclose(
        marker.get_ydata(), np.interp(1.5, curves["depth 8"].eps, curves["depth 8"].accuracy)
    )
    assert not [line for line in ax.get_lines() if line.get_label() == "_depth 4 size_half"]
    np.testing.assert_array_equal(_line(ax, "chance (0.10)").get_ydata(), [0.1, 0.1])
    _assert_labelled(ax)
    assert ax.get_legend().get_title().get_text() == "depth"
    assert "input" in ax.get_xlabel()


def test_basin_single_table_and_basin_curve_objects():
    ax = plot_basin(_curve(1.0), kind="weight").axes[0]
    assert "weight" in ax.get_xlabel() and "weight" in ax.get_title()
    assert len(ax.get_lines()) == 1
    curve = SimpleNamespace(curve=_curve(0.7), size_half=0.7, size_mid=0.9)
    ax = plot_basin({"after": curve}).axes[0]
    assert _line(ax, "_after size_half").get_xdata()[0] == 0.7
    with pytest.raises(ConfigError, match="kind"):
        plot_basin(_curve(1.0), kind="input")


def test_local_fields_one_scatter_per_label_and_split():
    rows = []
    for split, n in (("train", 5), ("test", 4)):
        for label in (1, 2, 3):
            xy = RNG.standard_normal((n, 2)) + label
            rows += [{"split": split, "label": label, "h_a": a, "h_b": b} for a, b in xy]
    points = pd.DataFrame(rows)
    ax = plot_local_fields(points, neurons=(1, 2)).axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 6
    by_label = {c.get_label(): c for c in scatters}
    expected = points[(points.split == "test") & (points.label == 2)][["h_a", "h_b"]].to_numpy()
    np.testing.assert_allclose(by_label["test, class 2"].get_offsets(), expected)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["class 1", "class 2", "class 3", "train", "test"]
    assert "neuron 1" in ax.get_xlabel() and "neuron 2" in ax.get_ylabel()


def _history(bn_modes=("running",), steps=(0, 1, 3, 10, 30, 100)):
    rows = []
    for bn_mode in bn_modes:
        for split in ("train", "test"):
            for i, step in enumerate(steps):
                acc = 0.1 + 0.15 * i + (0.05 if split == "train" else 0) + (0.01 if bn_mode == "batch" else 0)
                rows.append(
                    {
                        "step": step,
                        "epoch": step / 10,
                        "wall_time": step * 0.01,
                        "split": split,
                        "bn_mode": bn_mode,
                        "loss": 2.5 - 0.4 * i,
                        "accuracy": acc,
                    }
                )
    return pd.DataFrame(rows)


def test_training_accuracy_and_loss_panels_per_split_and_bn_mode():
    history = _history(("running", "batch"))
    fig = plot_training(history)
    acc_ax, loss_ax = fig.axes
    assert len(acc_ax.get_lines()) == 4 and len(loss_ax.get_lines()) == 4
    rows = history[(history.split == "test") & (history.bn_mode == "batch")]
    np.testing.assert_array_equal(_line(acc_ax, "test, BN batch").get_xdata(), rows.step)
    np.testing.assert_allclose(_line(acc_ax, "test, BN batch").get_ydata(), rows.accuracy)
    np.testing.assert_allclose(_line(loss_ax, "test, BN batch").get_ydata(), rows.loss)
    assert _line(acc_ax, "test, BN batch").get_linestyle() == "--"
    assert _line(acc_ax, "test, BN running").get_linestyle() == "-"
    assert acc_ax.get_xscale() == "symlog"  # step 0 is on the axis
    assert loss_ax.get_yscale() == "log"
    assert loss_ax.get_xlabel() and acc_ax.get_ylabel() and loss_ax.get_ylabel()
    assert acc_ax.get_legend() is not None

    fig = plot_training(_history(steps=(1, 10, 100)), metrics=["accuracy"])
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert {line.get_label() for line in ax.get_lines()} == {"train", "test"}


def test_training_by_run_column():
    history = pd.concat([_history().assign(depth=d) for d in (2, 4)])
    acc_ax, _ = plot_training(history, by="depth").axes
    assert len(acc_ax.get_lines()) == 4
    assert _line(acc_ax, "depth 4, train").get_linestyle() == "--"
    with pytest.raises(ConfigError, match="bn_mode"):
        plot_training(pd.concat([_history(("running", "batch")).assign(depth=d) for d in (2, 4)]), by="depth")
    with pytest.raises(ConfigError, match="several rows"):
        plot_training(history)


def test_evolution_one_line_per_layer_over_steps():
    steps = [0, 10, 100, 1000]
    table = pd.DataFrame(
        [{"step": s, "layer": l, "gradient": l + np.log1p(s)} for s in steps for l in (1, 2, 3)]
    )
    ax = plot_evolution(table, "gradient", ylabel="RPD gradient").axes[0]
    assert len(ax.get_lines()) == 3
    np.testing.assert_array_equal(_line(ax, "layer 2").get_xdata(), steps)
    np.testing.assert_allclose(_line(ax, "layer 2").get_ydata(), [2 + np.log1p(s) for s in steps])
    assert ax.get_xscale() == "symlog" and ax.get_ylabel() == "RPD gradient"
    _assert_labelled(ax)
    assert len(plot_evolution(table, "gradient", layers=[3]).axes[0].get_lines()) == 1
    many = pd.DataFrame([{"step": s, "layer": l, "v": l * s} for s in (1, 10) for l in range(12)])
    fig = plot_evolution(many, "v")
    assert len(fig.axes) == 2 and fig.axes[0].get_xscale() == "log"
    with pytest.raises(ConfigError, match="lacks column"):
        plot_evolution(table, "order_index")


def test_every_function_draws_into_a_given_axes():
    host = Figure()
    axes = host.subplots(2, 2).ravel()
    assert plot_rpd(_rpd_table([1, 2]), ax=axes[0]) is host
    assert (
        plot_neuron_modes(
            pd.DataFrame({"layer": [1], "opm": [1.0], "npm": [0.0], "inactive": [0.0]}), ax=axes[1]
        )
        is host
    )
    assert plot_basin(_curve(1.0), ax=axes[2]) is host
    assert plot_training(_history(), ax=axes[3], metrics=["loss"]) is host
    assert all(ax.get_xlabel() for ax in axes)


def test_save_figure_writes_png_and_svg_atomically(tmp_path):
    fig = plot_rpd(_rpd_table([1, 2]))
    paths = save_figure(fig, tmp_path / "figures" / "rpd_q0.5")
    assert [p.name for p in paths] == ["rpd_q0.5.png", "rpd_q0.5.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["rpd_q0.5.png", "rpd_q0.5.svg"]
    assert save_figure(fig, tmp_path / "only", formats=["png"]) == [tmp_path / "only.png"]
    with pytest.raises(ConfigError, match="formats"):
        save_figure(fig, tmp_path / "x", formats=["jpg"])


def test_neuron_modes_show_the_rho_distribution_beside_the_census():
    from netdyn.plots import plot_rho_distribution

    census = pd.DataFrame(
        {
            "layer": [2, 1],
            "opm": [0.2, 0.7],
            "npm": [0.5, 0.2],
            "inactive": [0.3, 0.1],
            "rho_mean": [0.8, 0.95],
            "rho_q10": [0.5, 0.9],
            "rho_q25": [0.7, 0.92],
            "rho_median": [0.85, 0.96],
            "rho_q75": [0.9, 0.99],
        }
    )
    fig = plot_neuron_modes(census)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 6
    median = _line(fig.axes[1], "median")
    np.testing.assert_allclose(median.get_xdata(), [1, 2])
    np.testing.assert_allclose(median.get_ydata(), [0.96, 0.85])
    assert _line(fig.axes[1], "OPM threshold (0.9)").get_ydata()[0] == 0.9
    single = plot_rho_distribution(census)
    np.testing.assert_allclose(_line(single.axes[0], "mean").get_ydata(), [0.95, 0.8])
