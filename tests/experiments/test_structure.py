"""The structure experiment's criteria (SPEC 6.1) on hand-made tables with known answers."""

import dataclasses

import pandas as pd
import pytest

from netdyn.experiments.criteria import evaluate_criteria, verdict
from netdyn.experiments.structure import EXPERIMENT, loss_bumps

KEYS = {"member": "m", "variant": "plain", "depth": 4, "seed": 0}


def _per_layer(column, values, start=0):
    return pd.DataFrame({"layer": range(start, start + len(values)), column: values}).assign(**KEYS)


def _accuracy(values):
    return pd.concat([_per_layer("accuracy", values).assign(split=split) for split in ("test", "train")])


def _history(losses_by_depth, bn_mode):
    rows = []
    for depth, losses in losses_by_depth.items():
        for step, loss in enumerate(losses):
            rows.append({**KEYS, "depth": depth, "step": step, "split": "test", "bn_mode": bn_mode, "loss": loss})
    return pd.DataFrame(rows)


def _tables():
    return {
        "network": pd.DataFrame({"split": ["train", "test"], "accuracy": [1.0, 0.95]}).assign(**KEYS),
        "lmap": _accuracy([0.3, 0.6, 0.8, 0.95, 0.95]),  # effective from layer 3: a one-layer tail
        "lp": _accuracy([0.9, 0.95, 0.96, 0.95, 0.95]),  # effective from layer 1
        "rpd_summary": _per_layer("gradient", [1.0, 2.0, 3.0, 2.9], start=1),
        "class_geometry": _per_layer("cos_dist_mean", [0.3, 0.2, 0.1, 0.05, 0.02]).assign(
            centre_similarity=[0.7, 0.6, 0.4, 0.3, 0.2]),
        "history": pd.concat([
            _history({2: [2.3, 2.2, 1.0], 4: [2.3, 2.5, 0.8]}, "running"),  # bumps 0 and 0.2
            _history({2: [2.3, 2.31, 1.0], 4: [2.3, 2.2, 0.8]}, "batch"),  # bumps 0.01 and 0
        ]),
    }  # fmt: skip


def test_structure_criteria_on_known_tables():
    config = EXPERIMENT.scales["smoke"]
    criteria = [c for c in EXPERIMENT().criteria(config) if "plain" in c.name]
    results = {r.criterion.name: r.seeds[0] for r in evaluate_criteria(criteria, _tables(), config, [0])}
    assert results["lp_before_lmap_plain"].value == 2 and results["lp_before_lmap_plain"].passes
    assert results["linear_tail_plain"].value == 1 and results["linear_tail_plain"].passes
    assert results["rpd_gradient_grows_plain"].value == pytest.approx(0.8)
    assert results["rpd_gradient_max_at_lmap_plain"].value == pytest.approx(1.0)
    assert results["samples_cluster_plain"].value == pytest.approx(0.1)
    assert results["centres_orthogonal_plain"].value == pytest.approx(0.2)
    assert results["loss_bump_plain_running"].value == pytest.approx(0.2)
    assert results["loss_bump_grows_plain_running"].value == pytest.approx(1.0)
    assert results["loss_bump_plain_batch"].value == 0.0 and not results["loss_bump_plain_batch"].passes
    assert results["loss_bump_grows_plain_batch"].value == pytest.approx(-1.0)
    running = [c for c in criteria if c.running_only]
    assert {c.name for c in running} == {"loss_bump_plain_running", "loss_bump_grows_plain_running"}
    # the residual variant has no rows here: every one of its criteria says why
    residual = [c for c in EXPERIMENT().criteria(config) if "residual" in c.name]
    evaluated = evaluate_criteria(residual, _tables(), config, [0])
    assert all(r.seeds[0].value is None and r.seeds[0].reason for r in evaluated)
    assert verdict(evaluated) == "not reproduced"


def test_structure_criteria_that_cannot_be_evaluated_say_why():
    config = EXPERIMENT.scales["smoke"]
    tables = _tables()
    tables["lmap"] = _accuracy([0.1] * 5)  # L-map pruning never effective
    tables["rpd_summary"] = _per_layer("gradient", [1.0] * 4, start=1)
    by_name = {c.name: c for c in EXPERIMENT().criteria(config)}
    assert by_name["linear_tail_plain"].evaluate(tables, config, 0).reason == "L-map pruning never becomes effective"
    assert "same at every layer" in by_name["rpd_gradient_grows_plain"].evaluate(tables, config, 0).reason
    one_depth = _history({4: [2.3, 2.5]}, "batch")
    assert "fewer than two depths" in by_name["loss_bump_grows_plain_batch"].evaluate(
        {"history": one_depth}, config, 0).reason
    assert loss_bumps(one_depth, "plain", 0, "batch").tolist() == [pytest.approx(0.2)]


def test_a_config_without_residual_nets_declares_only_plain_criteria():
    config = EXPERIMENT().config("smoke")
    plain = EXPERIMENT().criteria(dataclasses.replace(config, residuals=("none",)))
    assert plain and all("residual" not in c.name for c in plain)
    assert len(EXPERIMENT().criteria(config)) == 2 * len(plain)
