"""The depth-100 experiment: its members (the paper's 100-layer net is depth 98) and its summary on hand-made
tables with known answers."""

import pandas as pd
import pytest

from netdyn.experiments.depth_100 import EXPERIMENT
from netdyn.experiments.residual import structure_table

PARAMS = {"member": "m", "variant": "residual", "depth": 4, "width": 8, "seed": 0}


def _acc(values):
    return pd.DataFrame([{"layer": l, "split": s, "accuracy": a} for l, a in enumerate(values)
                         for s in ("train", "test")]).assign(**PARAMS)


def test_small_and_paper_train_one_residual_bn_net_of_depth_98():
    experiment = EXPERIMENT()
    for scale in ("small", "paper"):
        members = experiment.members(experiment.config(scale))
        assert [m.params["seed"] for m in members] == [0, 1, 2]
        model = members[0].spec.model
        assert model.depth == 98 and model.residual == "pre" and model.batchnorm
        assert members[0].params == {"variant": "residual", "depth": 98, "width": model.width, "seed": 0}
    assert experiment.config("paper").data.name == "mnist"


def test_summary_reads_the_structure_and_the_rpd_gradient_by_layer():
    tables = {
        "network": pd.DataFrame({"split": ["train", "test"], "accuracy": [1.0, 0.95]}).assign(**PARAMS),
        "lmap": _acc([0.2, 0.5, 0.7, 0.95, 0.95]),
        "lp": _acc([0.8, 0.95, 0.95, 0.95, 0.95]),
        "rpd_summary": pd.DataFrame({"layer": [4, 1, 2, 3], "gradient": [2.5, 1.0, 1.5, 3.0], "top_mass": 0.1,
                                     "order_index": 0.1}).assign(**PARAMS),
        "neuron_mode_census": pd.DataFrame({"layer": [1, 2, 3, 4], "opm": [0.2, 0.5, 0.7, 0.9],
                                            "npm": [0.7, 0.4, 0.2, 0.1], "inactive": 0.1,
                                            "rho_median": [0.6, 0.8, 0.9, 0.95]}).assign(**PARAMS),
        "class_geometry": pd.DataFrame({"layer": [0, 1, 2, 3, 4], "cos_dist_mean": [0.5, 0.4, 0.3, 0.2, 0.1],
                                        "centre_similarity": [0.9, 0.8, 0.5, 0.2, 0.1],
                                        "nc1": 1.0}).assign(**PARAMS),
    }
    tables["structure"] = structure_table(tables, ["variant", "depth", "width", "seed"])
    out = EXPERIMENT().summary(tables, EXPERIMENT.scales["smoke"])
    assert out["residual_lp_effective_from"] == 1 and out["residual_lmap_effective_from"] == 3
    assert out["residual_standard_structure"] is True and out["residual_linear_tail"] == 1
    assert out["residual_rpd_gradient_first"] == 1.0 and out["residual_rpd_gradient_last"] == 2.5
    assert out["residual_rpd_gradient_max_layer"] == 3 and out["residual_rpd_gradient_at_lmap_effective_from"] == 3.0
    assert out["residual_rpd_gradient_layer_spearman"] == pytest.approx(0.8)  # ranks 1,2,4,3 against 1,2,3,4
    assert out["residual_npm_share_first"] == 0.7 and out["residual_rho_median_last"] == 0.95
    # the class geometry's first hidden layer is layer 1, not the input
    assert out["residual_centre_similarity_first"] == 0.8 and out["residual_cos_dist_last"] == 0.1
