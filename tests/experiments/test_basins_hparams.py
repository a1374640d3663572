"""basins-hparams' own logic: training length per batch size, the two sweeps sharing a member, the summary
and the panels on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from netdyn.data.spec import DataSpec
from netdyn.experiments.basins_hparams import (
    BasinsHparams,
    BasinsHparamsConfig,
    batch_sweep,
    lr_sweep,
    train_size,
    training_steps,
)

CONFIG = BasinsHparamsConfig(
    data=DataSpec("mnist5k", train_size=5000), batch_sizes=(50, 200, 1000, 2500), lrs=(1e-4, 1e-3, 1e-2),
    lr_batch_size=50, epochs=10, min_steps=100, seeds=1,
)


@pytest.mark.parametrize(
    "batch_size, expected",
    [(50, 1000), (200, 250), (1000, 100), (2500, 100), (3000, 100)],  # 10 epochs, at least 100 steps
)
def test_training_steps_are_epochs_with_a_floor(batch_size, expected):
    assert training_steps(5000, batch_size, 10, 100) == expected


def test_train_size_comes_from_the_spec_when_given():
    assert train_size(DataSpec("mnist5k", train_size=1234)) == 1234


def test_members_are_the_batch_sweep_plus_the_lr_sweep_sharing_one_point():
    members = BasinsHparams().members(CONFIG)
    points = [(m.params["batch_size"], m.params["lr"]) for m in members if m.params["seed"] == 0]
    assert points == [(50, 1e-3), (200, 1e-3), (1000, 1e-3), (2500, 1e-3), (50, 1e-4), (50, 1e-2)] + [
        (50, 1e-3), (200, 1e-3), (1000, 1e-3), (2500, 1e-3)]  # the control: the batch sweep at equal steps
    assert len({m.name for m in members}) == len(members) == 10 * CONFIG.seeds
    control = [m for m in members if m.params["schedule"] == "steps"]
    assert {m.spec.train.steps for m in control} == {CONFIG.equal_steps}
    by_point = {(m.params["batch_size"], m.params["lr"]): m.spec for m in members
                if m.params["schedule"] == "epochs"}
    assert by_point[(2500, 1e-3)].train.steps == 100 and by_point[(50, 1e-2)].train.steps == 1000
    assert by_point[(50, 1e-2)].train.lr == 1e-2 and by_point[(200, 1e-3)].train.batch_size == 200
    spec = by_point[(50, 1e-3)]
    assert spec.model.depth == 10 and spec.model.batchnorm is True and spec.train.optimizer == "adam"
    table = pd.DataFrame([m.params for m in members])
    assert sorted(batch_sweep(table, CONFIG)["batch_size"]) == [50, 200, 1000, 2500]
    assert sorted(lr_sweep(table, CONFIG)["lr"]) == [1e-4, 1e-3, 1e-2]


def _tables():
    """Basins that shrink as the batch grows; test accuracy peaking at the middle learning rate."""
    curves, sizes, members = [], [], []
    points = [(bs, 1e-3) for bs in CONFIG.batch_sizes] + [(50, 1e-4), (50, 1e-2)]
    for bs, lr in points:
        params = {"member": f"bs{bs}-lr{lr}", "batch_size": bs, "lr": lr, "seed": 0}
        for space, size in (("sample", 3.0 - np.log10(bs) / 2), ("weight", 1.5 - np.log10(bs) / 4)):
            eps = np.linspace(0, 4, 9)
            acc = np.clip(1 - eps / (2 * size), 0.1, 1)
            curves.append(pd.DataFrame({**params, "space": space, "eps": eps, "accuracy": acc,
                                        "ci_low": acc - 0.01, "ci_high": acc + 0.01}))
            sizes.append({**params, "space": space, "clean_accuracy": 1.0, "size_mid": size, "size_half": size})
        test = 0.99 - 0.001 * np.log10(bs) - 0.01 * abs(np.log10(lr) + 3)
        members.append({**params, "steps": training_steps(5000, bs, 10, 100), "epochs": 10.0,
                        "train_accuracy": 1.0, "test_accuracy": test, "wall_time": 1.0})
    return {"basin_curves": pd.concat(curves, ignore_index=True), "basin_sizes": pd.DataFrame(sizes),
            "members": pd.DataFrame(members)}


def test_summary_reports_the_directions_of_both_sweeps():
    out = BasinsHparams().summary(_tables(), CONFIG)
    assert out["sample_size_half_batch_size_trend"] == pytest.approx(-1.0)
    assert out["weight_size_half_batch_size_trend"] == pytest.approx(-1.0)
    assert out["test_accuracy_batch_size_trend"] == pytest.approx(-1.0)
    assert out["best_batch_size_by_test_accuracy"] == 50 and not out["best_batch_size_is_interior"]
    assert out["best_lr_by_test_accuracy"] == pytest.approx(1e-3) and out["best_lr_is_interior"]
    assert set(out["test_accuracy_by_lr"]) == {"0.0001", "0.001", "0.01"}
    assert out["steps_by_batch_size"] == {"50": 1000, "200": 250, "1000": 100, "2500": 100}
    assert out["sample_size_half_by_batch_size"]["50"] == pytest.approx(3.0 - np.log10(50) / 2)
    assert out["paper_layers"] == 12


def test_one_figure_per_panel_with_test_accuracy_in_the_legend():
    figs = BasinsHparams().figures(_tables(), CONFIG)
    assert set(figs) == {"fig6a_sample_basin_batch_size", "fig6b_weight_basin_batch_size", "fig6c_sample_basin_lr",
                         "fig6d_weight_basin_lr", "fig6_sizes"}
    ax = figs["fig6c_sample_basin_lr"].axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["lr 0.0001 (test 0.978)", "lr 0.001 (test 0.988)", "lr 0.01 (test 0.978)"]
    sizes = figs["fig6_sizes"].axes
    assert len(sizes) == 6
    line = next(line for line in sizes[0].get_lines() if line.get_label() == "one seed")
    np.testing.assert_array_equal(line.get_xdata(), [50, 200, 1000, 2500])
    low, high = sizes[2].get_ylim()  # test accuracy within 0.003: the axis still spans two points
    assert high - low == pytest.approx(0.02)


def test_the_curve_panels_say_in_a_title_that_fits_which_seed_they_draw():
    """Panels (a-d) draw one seed's basin curves: their title says so, on a first line the figure does not cut
    off (on one line, the paper-sized net's settings pushed it past the edge)."""
    one = _tables()
    tables = {name: pd.concat([t, t.assign(seed=1)], ignore_index=True) for name, t in one.items()}
    figs = BasinsHparams().figures(tables, CONFIG)
    for name in ("fig6a_sample_basin_batch_size", "fig6b_weight_basin_batch_size", "fig6c_sample_basin_lr",
                 "fig6d_weight_basin_lr"):
        fig = figs[name]
        title = fig.axes[0].title
        assert "(seed 0 only of 2)" in title.get_text().splitlines()[0], name
        fig.canvas.draw()
        box, frame = title.get_window_extent(), fig.bbox
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1, name
    sizes = figs["fig6_sizes"]
    assert "median of 2 seeds, bars min to max" in sizes.get_suptitle()
