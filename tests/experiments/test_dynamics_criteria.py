"""The criteria of grokking, bn-grokking, double-descent, lmap-training and depth-100 (SPEC 6.1) on hand-made
tables with known answers: values, pass / fail, the reasons a seed cannot be evaluated, running-only criteria and
criteria revised after a result (listed, never deciding)."""

import math

import numpy as np
import pandas as pd
import pytest

from netdyn.experiments.bn_grokking import BNGrokkingConfig, bn_grokking_criteria
from netdyn.experiments.criteria import evaluate_criteria, verdict
from netdyn.experiments.depth_100 import Depth100Config, depth_100_criteria
from netdyn.experiments.double_descent import DoubleDescentConfig, double_descent_criteria
from netdyn.experiments.grokking import GrokkingConfig, grokking_criteria
from netdyn.experiments.lmap_training import LmapTrainingConfig, lmap_training_criteria

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]


def _results(criteria, tables, config, seeds=(0,)):
    return {r.criterion.name: r for r in evaluate_criteria(criteria, tables, config, seeds)}


def _values(result):
    return [s.value for s in result.seeds]


def _history(curves, **params):
    """History rows from {(split, bn_mode): accuracies over STEPS}."""
    rows = [{"step": s, "split": split, "bn_mode": mode, "accuracy": a, "loss": 1 - a, **params}
            for (split, mode), values in curves.items() for s, a in zip(STEPS, values, strict=True)]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------- grokking
def _grokking_tables():
    stages = [
        {"seed": 0, "stage": "before", "sample_size_half": 0.2, "weight_size_half": 0.3},
        {"seed": 0, "stage": "after", "sample_size_half": np.nan, "weight_size_half": 2.5},  # beyond the grid
        {"seed": 1, "stage": "before", "sample_size_half": 0.2, "weight_size_half": 0.3},
        {"seed": 1, "stage": "after", "sample_size_half": 0.4, "weight_size_half": 0.5},
    ]
    return {
        "jump": pd.DataFrame({"seed": [0, 1, 2], "fit_step": [100.0, 100.0, np.nan],
                              "end_step": [5000.0, np.nan, np.nan], "delay": [20.0, 1.5, np.nan]}),
        "stages": pd.DataFrame(stages),
        "stage_basins": pd.DataFrame({"seed": 0, "stage": "after", "kind": "sample", "eps": [0.0, 1.5, 3.0]}),
        "nearest_train_distance": pd.DataFrame({"distance": [0.5, 0.6, 0.7, np.nan]}),
        "local_fields_summary": pd.DataFrame({"seed": 0, "stage": ["before"] * 3 + ["after"] * 3,
                                              "test_in_train_fraction": [0.3, 0.4, 0.5, 0.9, 0.8, 1.0]}),
    }


def test_grokking_criteria_on_known_tables():
    r = _results(grokking_criteria(GrokkingConfig()), _grokking_tables(), GrokkingConfig(), seeds=(0, 1, 2))
    assert _values(r["delayed_generalisation"])[:2] == [20.0, 0.0]  # seed 1: no jump, no delay
    assert "never fitted" in r["delayed_generalisation"].seeds[2].reason
    assert r["basin_inside_test_distance_before_jump"].seeds[0].value == pytest.approx(0.2 / 0.6)
    assert r["basin_beyond_test_distance_after_jump"].seeds[0].value == pytest.approx(3.0 / 0.6)  # the grid's top
    assert r["weight_transition_later"].seeds[0].value == pytest.approx(2.5 / 3.0)  # after: weight < sample
    assert not r["weight_transition_later"].seeds[0].passes
    assert r["test_fields_mixed_before_jump"].seeds[0].value == pytest.approx(0.4)
    assert r["test_fields_overlap_after_jump"].seeds[0].value == pytest.approx(0.9)
    passing = [n for n, res in r.items() if res.seeds[0].passes]
    assert passing == ["delayed_generalisation", "basin_inside_test_distance_before_jump",
                       "basin_beyond_test_distance_after_jump", "test_fields_mixed_before_jump",
                       "test_fields_overlap_after_jump"]
    for name in ("basin_inside_test_distance_before_jump", "test_fields_overlap_after_jump"):
        assert "no jump" in r[name].seeds[1].reason and not r[name].seeds[1].passes


# ------------------------------------------------------------------------------------------------ bn-grokking
LATE = [0.1] * 6 + [0.5, 0.9, 0.9, 0.9]  # mid-rise at step 32, onset 16, end 64
LATER = [0.1] * 7 + [0.5, 0.9, 0.9]  # mid-rise at step 64
EARLY = [0.1, 0.3, 0.6, 0.9, 0.95, 0.96, 0.97, 0.98, 0.98, 0.98]  # mid-rise at step 2


def _bn_grokking_tables():
    history = pd.concat([
        _history({("train", "batch"): EARLY, ("test", "batch"): EARLY, ("train", "running"): LATE,
                  ("test", "running"): LATE}, depth=2, seed=0),
        _history({("train", "batch"): EARLY, ("test", "batch"): EARLY, ("train", "running"): LATER,
                  ("test", "running"): LATER}, depth=6, seed=0),
    ])
    jump = pd.DataFrame({"depth": 6, "seed": 0, "bn_mode": ["running", "batch"], "onset_step": [32.0, 1.0],
                         "mid_step": [64.0, 2.0], "end_step": [128.0, 4.0]})
    bn_vs_basin = pd.DataFrame({"depth": 6, "seed": 0, "step": [0, 16, 128, 256],
                                "eps_equivalent": [10.0, 2.0, 0.1, 0.05], "size_half": [np.nan, np.nan, 1.0, 1.5]})
    fields = pd.DataFrame({"depth": 6, "seed": 0, "stage": ["before", "after"] * 2,
                           "bn_mode": ["running", "running", "batch", "batch"],
                           "test_in_train_fraction": [0.3, 0.9, 0.8, 0.9]})
    return {"history": history, "jump": jump, "bn_vs_basin": bn_vs_basin, "local_fields_summary": fields}


def test_bn_grokking_criteria_on_known_tables():
    config = BNGrokkingConfig(depths=(2, 6))
    criteria = bn_grokking_criteria(config)
    r = _results(criteria, _bn_grokking_tables(), config)
    assert r["late_jump_running"].seeds[0].value == pytest.approx(math.log10(64 / 2))
    assert r["no_late_jump_batch"].seeds[0].value == pytest.approx(0.0) and r["no_late_jump_batch"].holds
    assert r["late_jump_grows_with_depth_running"].seeds[0].value == pytest.approx(1.0)
    # the training samples wait for the running statistics as well: no gap before the jump in either mode
    assert r["training_ahead_before_jump_running"].seeds[0].value == pytest.approx(0.0)
    assert r["training_ahead_before_jump_batch"].seeds[0].value == pytest.approx(0.0)
    assert r["perturbation_beyond_basin_before_jump"].seeds[0].value == pytest.approx(2.0 / 1.5)
    assert r["perturbation_inside_basin_after_jump"].seeds[0].value == pytest.approx(0.1 / 1.5)
    assert r["test_fields_far_before_jump_running"].holds and not r["test_fields_far_before_jump_batch"].holds
    assert r["test_fields_overlap_after_jump_batch"].holds
    marked = {c.name for c in criteria if c.running_only}
    assert marked == {"late_jump_running", "late_jump_grows_with_depth_running", "training_ahead_before_jump_running",
                      "test_fields_far_before_jump_running", "test_fields_overlap_after_jump_running"}
    # no running-statistics jump: every criterion read around it says so
    tables = _bn_grokking_tables()
    tables["jump"] = tables["jump"].assign(onset_step=np.nan, mid_step=np.nan, end_step=np.nan)
    r = _results(criteria, tables, config)
    for name in ("training_ahead_before_jump_batch", "perturbation_inside_basin_after_jump",
                 "test_fields_overlap_after_jump_batch"):
        assert "no jump" in r[name].seeds[0].reason


# --------------------------------------------------------------------------------------------- double-descent
def _descent_tables():
    rows = [
        {"depth": 6, "bn_mode": "running", "peak_step": 40.0, "relative_rise": 0.5, "descends_again": True,
         "rate_max_step": 50.0, "log10_distance": math.log10(40 / 50)},
        {"depth": 2, "bn_mode": "running", "peak_step": np.nan, "relative_rise": np.nan, "descends_again": False,
         "rate_max_step": 3.0, "log10_distance": np.nan},
        {"depth": 6, "bn_mode": "batch", "peak_step": 400.0, "relative_rise": 0.3, "descends_again": False,
         "rate_max_step": 50.0, "log10_distance": 0.9},
        {"depth": 2, "bn_mode": "batch", "peak_step": np.nan, "relative_rise": np.nan, "descends_again": False,
         "rate_max_step": 3.0, "log10_distance": np.nan},
    ]
    steps = [1.4, 3, 6, 12, 25, 50, 100, 200, 400, 800]
    rate = pd.DataFrame({"depth": 6, "seed": 0, "bn_mode": "running", "step": steps,
                         "rate": [0.1, 0.2, 0.1, 0.3, 0.5, 2.0, 0.4, 0.1, 0.0, 0.1]})
    return {"descent": pd.DataFrame(rows).assign(seed=0), "gradient_rate_mean": rate}


def test_double_descent_criteria_on_known_tables():
    config = DoubleDescentConfig(depths=(2, 6))
    criteria = double_descent_criteria(config)
    r = _results(criteria, _descent_tables(), config)
    assert r["loss_bump_running"].seeds[0].value == pytest.approx(0.5)
    assert r["loss_bump_grows_with_depth_running"].seeds[0].value == pytest.approx(1.0)
    assert r["bump_near_rate_max_running"].seeds[0].value == pytest.approx(math.log10(50 / 40))
    # only the rate maximum itself lies as near the peak as it: 1 of 10 checkpoint intervals
    assert r["bump_near_rate_max_null_running"].seeds[0].value == pytest.approx(0.1)
    assert r["loss_bump_batch"].seeds[0].value == 0.0  # a rise that does not fall again is no bump
    assert "same at every depth" in r["loss_bump_grows_with_depth_batch"].seeds[0].reason
    assert "no bump to place" in r["bump_near_rate_max_batch"].seeds[0].reason
    revised = [c for c in criteria if not c.decides]
    assert [(c.name, c.revises, c.since) for c in revised] == [
        ("bump_near_rate_max_null_running", "bump_near_rate_max_running", "2026-12-06"),
        ("bump_near_rate_max_null_batch", "bump_near_rate_max_batch", "2026-12-06")]
    assert verdict(list(r.values())) == "partly"  # the batch criteria fail; the revised ones do not count


# ---------------------------------------------------------------------------------------------- lmap-training
def test_lmap_training_criteria_on_known_tables():
    config = LmapTrainingConfig(layers=(2, 3, 4))
    history = _history({("train", "batch"): EARLY, ("test", "batch"): EARLY, ("train", "running"): LATE,
                        ("test", "running"): LATE}, seed=0)
    convergence = pd.DataFrame({
        "seed": 0, "reference": "network", "layer": [2, 3, 4, 2, 3, 4, 9],
        "bn_mode": ["running"] * 3 + ["batch"] * 3 + ["running"],
        "converged_step": pd.array([32, 64, 32, None, 4, 4, None], dtype="Int64"),  # layer 9 is not followed
    })
    r = _results(lmap_training_criteria(config), {"history": history, "convergence": convergence}, config)
    assert r["grokking_running"].seeds[0].value == pytest.approx(32 / 2) and r["grokking_running"].holds
    assert r["grokking_batch"].seeds[0].value == pytest.approx(1.0) and not r["grokking_batch"].holds
    assert r["lmap_converges_shortly_after_grokking_running"].seeds[0].value == pytest.approx(1.0)
    assert "layer(s) [2] never converges" in r["lmap_converges_shortly_after_grokking_batch"].seeds[0].reason


# -------------------------------------------------------------------------------------------------- depth-100
def _layers(values, **params):
    return pd.DataFrame([{"layer": l, "split": s, "accuracy": a, **params} for l, a in enumerate(values)
                         for s in ("train", "test")])


def test_depth_100_criteria_on_known_tables():
    config = Depth100Config(depth=5)
    params = {"variant": "residual", "depth": 5, "width": 8, "seed": 0}
    tables = {
        "network": pd.DataFrame({"split": ["train", "test"], "accuracy": [1.0, 0.95]}).assign(**params),
        "lp": _layers([0.5, 0.8, 0.95, 0.95, 0.95, 0.95], **params),
        "lmap": _layers([0.2, 0.3, 0.5, 0.7, 0.95, 0.95], **params),
        "rpd_summary": pd.DataFrame({"layer": [1, 2, 3, 4, 5], "gradient": [1.0, 3.0, 1.5, 2.5, 2.0]}).assign(**params),
        "class_geometry": pd.DataFrame({"layer": range(6), "cos_dist_mean": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
                                        "centre_similarity": [0.9, 0.8, 0.5, 0.3, 0.2, 0.1]}).assign(**params),
    }
    criteria = depth_100_criteria(config)
    r = _results(criteria, tables, config)
    assert _values(r["lp_before_lmap_residual"]) == [2.0] and _values(r["linear_tail_residual"]) == [1.0]
    assert r["rpd_gradient_grows_residual"].seeds[0].value == pytest.approx(0.3)
    assert r["rpd_gradient_max_at_lmap_residual"].seeds[0].value == pytest.approx(2.5 / 3.0)
    assert r["samples_cluster_residual"].seeds[0].value == pytest.approx(0.05 / 0.4)
    assert r["centres_orthogonal_residual"].holds
    revised = r["rpd_gradient_grows_skip_layers_residual"]  # layers 3 and 5: 1.5 -> 2.0
    assert revised.seeds[0].value == pytest.approx(1.0) and not revised.criterion.decides
    assert revised.criterion.revises == "rpd_gradient_grows_residual" and revised.criterion.since == "2026-11-30"
    assert verdict(list(r.values())) == "partly"
