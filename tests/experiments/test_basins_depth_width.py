"""basins-depth-width's own logic on hand-made tables: the trend and convergence read from sizes, the members,
the summary and the panels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from netdyn.experiments.basins_depth_width import (
    BasinsDepthWidth,
    BasinsDepthWidthConfig,
    converged_at,
    rank_trend,
)


@pytest.mark.parametrize(
    "x, y, expected",
    [
        ([1, 2, 3, 4], [0.1, 0.5, 0.7, 2.0], 1.0),  # monotone up, whatever the spacing
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([4, 1, 3, 2], [1, 4, 2, 3], -1.0),  # order of the rows does not matter
        ([1, 2, 3], [1.0, 3.0, 2.0], 0.5),
        ([1, 2, 3, 4], [1.0, math.nan, 2.0, 3.0], 1.0),  # a size never reached drops out
    ],
)
def test_rank_trend_is_spearman_over_the_finite_pairs(x, y, expected):
    assert rank_trend(x, y) == pytest.approx(expected)


def test_rank_trend_is_nan_without_two_distinct_pairs():
    assert math.isnan(rank_trend([1, 2], [1.0, math.nan]))
    assert math.isnan(rank_trend([1, 2, 3], [2.0, 2.0, 2.0]))


@pytest.mark.parametrize(
    "x, y, expected",
    [
        ([2, 4, 6, 8, 10], [1.0, 2.0, 2.9, 3.0, 3.05], 6.0),  # within 10% of the median 3.0 from depth 6 on
        ([10, 8, 6, 4, 2], [3.05, 3.0, 2.9, 2.0, 1.0], 6.0),  # unsorted input
        ([2, 4, 6, 8, 10], [2.29, 2.63, 2.67, 2.87, 2.59], 4.0),  # a noisy point inside the plateau
        ([2, 4, 6], [3.0, 3.0, 3.0], 2.0),  # flat from the start
        ([2, 4, 6, 8], [1.0, 2.0, 3.0, 4.0], math.nan),  # still growing at the end: no evidence of convergence
        ([2, 4, 6, 8, 10], [3.0, 1.0, 2.95, 3.0, 3.0], 6.0),  # a dip before the plateau restarts it
        ([2, 4, 6], [3.0, 3.0, math.nan], math.nan),  # the last size is unknown
        ([2, 4, 6, 8], [math.nan, 3.0, 3.0, 3.1], 4.0),
        ([2, 4, 6], [math.nan, 3.0, 3.0], math.nan),  # two points are no plateau
        ([16, 32, 64, 128, 256], [1.41, 1.41, 1.61, 1.92, 2.29], math.nan),  # still growing by 19% at the end
        ([2], [3.0], math.nan),
    ],
)
def test_converged_at_is_where_the_last_plateau_starts(x, y, expected):
    got = converged_at(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_members_cover_the_grid_with_and_without_batch_norm():
    config = BasinsDepthWidthConfig(depths=(2, 4), widths=(16, 32, 64), seeds=2)
    members = BasinsDepthWidth().members(config)
    # the grid, the depth-1 baseline of each variant at width 64, the BN nets from the plain rule at width 64
    assert len(members) == (2 * 2 * 3 + 2 + 3) * 2 == len({m.name for m in members})
    m = members[0]
    assert m.params == {"batchnorm": True, "init": "default", "depth": 2, "width": 16, "seed": 0}
    assert m.spec.model.depth == 2 and m.spec.model.width == 16 and m.spec.model.batchnorm is True
    assert m.spec.train.optimizer == "adam" and m.spec.train.epochs == config.epochs
    assert {(x.spec.model.batchnorm, x.spec.model.init) for x in members} == {
        (True, "default"), (False, "kaiming"), (True, "kaiming")}
    assert all(x.spec.model.init == x.params["init"] for x in members)
    baseline = {(x.params["batchnorm"], x.params["init"]) for x in members if x.params["depth"] == 1}
    assert baseline == {(True, "default"), (False, "kaiming"), (True, "kaiming")}
    control = [x for x in members if x.params["batchnorm"] and x.params["init"] == "kaiming"]
    assert {x.params["width"] for x in control} == {64} and {x.params["depth"] for x in control} == {1, 2, 4}
    plain = BasinsDepthWidthConfig(depths=(1, 2), widths=(16,), seeds=1, same_init_control=False)
    assert len(BasinsDepthWidth().members(plain)) == 4  # depth 1 is in the grid: not trained twice


def _tables(config: BasinsDepthWidthConfig):
    """Sizes that grow with depth and width in sample space and shrink in weight space, as the paper says."""
    curves, sizes, members = [], [], []
    for bn in config.batchnorms:
        for depth in config.depths:
            for width in config.widths:
                params = {"member": f"b{bn}-d{depth}-w{width}", "batchnorm": bn, "depth": depth, "width": width,
                          "seed": 0}
                for space, size in (("sample", 1.0 + 0.1 * depth + 0.001 * width),
                                    ("weight", 2.0 - 0.1 * depth - 0.001 * width)):
                    eps = np.linspace(0, 4, 9)
                    acc = np.clip(1 - eps / (2 * size), 0.1, 1)
                    curves.append(pd.DataFrame({**params, "space": space, "eps": eps, "accuracy": acc,
                                                "ci_low": acc - 0.01, "ci_high": acc + 0.01}))
                    sizes.append({**params, "space": space, "clean_accuracy": 1.0, "size_mid": 0.9 * size,
                                  "size_half": size})
                members.append({**params, "steps": 100, "epochs": 2.0, "train_accuracy": 1.0,
                                "test_accuracy": 0.9 + 0.001 * depth, "wall_time": 1.0})
    return {"basin_curves": pd.concat(curves, ignore_index=True), "basin_sizes": pd.DataFrame(sizes),
            "members": pd.DataFrame(members)}


def test_summary_reads_the_directions_and_the_sizes():
    config = BasinsDepthWidthConfig(depths=(2, 4, 6), widths=(16, 64))
    out = BasinsDepthWidth().summary(_tables(config), config)
    for v in ("bn", "nobn"):
        assert out[f"{v}_sample_depth_trend"] == pytest.approx(1.0)
        assert out[f"{v}_weight_depth_trend"] == pytest.approx(-1.0)
        assert out[f"{v}_sample_width_trend_mean"] == pytest.approx(1.0)
        assert out[f"{v}_sample_depth_trend_mean"] == pytest.approx(1.0)
        assert out[f"{v}_weight_depth_trend_mean"] == pytest.approx(-1.0)
        assert out[f"{v}_weight_width_trend_mean"] == pytest.approx(-1.0)
        assert out[f"{v}_sample_size_half_by_depth_at_width64"]["depth4 (6 layers)"] == pytest.approx(1.464)
        assert out[f"{v}_train_accuracy_min"] == 1.0
        assert out[f"{v}_sample_size_half_not_reached"] == 0
    assert out["curve_width"] == 64


def test_one_figure_per_panel_from_the_tables():
    config = BasinsDepthWidthConfig(depths=(2, 4), widths=(16, 64))
    tables = _tables(config)
    tables["basin_sizes"].loc[0, "size_half"] = math.nan  # a size never reached still draws
    figs = BasinsDepthWidth().figures(tables, config)
    assert set(figs) == {"fig5a_sample_basin", "fig5b_weight_basin", "fig5c_sample_size_width",
                         "fig5d_weight_size_width", "fig5_test_accuracy"}
    left, right = figs["fig5a_sample_basin"].axes[:2]
    assert "no BN" in right.get_title() and "no BN" not in left.get_title()
    labels = [line.get_label() for line in left.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["2 (4 layers)", "4 (6 layers)"]
    c = figs["fig5c_sample_size_width"].axes[0]
    line = next(line for line in c.get_lines() if line.get_label() == "depth 4")
    np.testing.assert_allclose(line.get_ydata(), [1.416, 1.464])


def test_the_test_accuracy_panel_draws_the_median_of_the_seeds_with_their_range():
    config = BasinsDepthWidthConfig(depths=(2, 4), widths=(16, 64))
    one = _tables(config)
    tables = {name: pd.concat([t, t.assign(seed=1)], ignore_index=True) for name, t in one.items()}
    tables["members"].loc[tables["members"]["seed"] == 1, "test_accuracy"] -= 0.02
    fig = BasinsDepthWidth().figures(tables, config)["fig5_test_accuracy"]
    assert "median of 2 seeds, bars min to max" in fig.get_suptitle()
    line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "depth 4")
    np.testing.assert_allclose(line.get_ydata(), [0.894, 0.894])  # (0.904 + 0.884) / 2 at both widths
    assert len(fig.axes[0].collections) == 2  # a min-max bar set per depth
