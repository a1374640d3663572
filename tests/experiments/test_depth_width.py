"""The depth-width experiment's reading of its tables (paper Fig. 4): the best depth per width, whether
accuracy grows with width, the RPD's high-rank density, on hand-made tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from netdyn.experiments.depth_width import (
    EXPERIMENT,
    PAPER_OFFSET,
    DepthWidthConfig,
    best_depths,
    head_density,
    width_order_fraction,
)


def _accuracy(values):
    """values: {width: {depth: [acc per seed]}} -> a test-accuracy table."""
    rows = [{"member": f"w{w}d{d}s{s}", "width": w, "depth": d, "seed": s, "paper_layers": d + PAPER_OFFSET,
             "step": 100, "split": "test", "accuracy": a, "loss": 0.1}
            for w, by_depth in values.items() for d, accs in by_depth.items() for s, a in enumerate(accs)]
    return pd.DataFrame(rows).sample(frac=1, random_state=0)


# width 64 peaks at depth 6 (seed mean), width 128 at depth 4 (a tie with 6 goes to the shallower)
ACC = _accuracy({
    64: {2: [0.950, 0.952], 4: [0.955, 0.957], 6: [0.960, 0.958], 8: [0.954, 0.950]},
    128: {2: [0.955, 0.955], 4: [0.962, 0.962], 6: [0.961, 0.963], 8: [0.953, 0.955]},
})


def test_best_depth_is_the_seed_mean_maximum():
    assert best_depths(ACC) == {64: 6, 128: 4}


def test_width_order_fraction_counts_depths_where_wider_is_not_worse():
    # seed means: 128 beats 64 at every depth (at 6: 0.962 vs 0.959; at 8: 0.954 vs 0.952)
    assert width_order_fraction(ACC) == 1.0
    worse = _accuracy({64: {2: [0.95], 4: [0.96]}, 128: {2: [0.96], 4: [0.95]}, 256: {2: [0.97], 4: [0.97]}})
    assert width_order_fraction(worse) == pytest.approx(3 / 4)
    assert math.isnan(width_order_fraction(_accuracy({64: {2: [0.9]}})))


def test_head_density_is_the_mean_density_of_the_high_rank_bins():
    q = (np.arange(20) + 0.5) / 20  # bins of 0.05: two below q = 0.1
    rpd = pd.concat([
        pd.DataFrame({"member": "a", "layer": 1, "q": q, "density": 2 - 2 * q}),
        pd.DataFrame({"member": "a", "layer": 2, "q": q, "density": np.ones(20)}),
    ])
    out = head_density(rpd).set_index("layer")["head_density"]
    assert out[1] == pytest.approx(2 - 2 * 0.05) and out[2] == 1.0


def test_summary_names_the_optimum_in_both_countings_and_the_layer1_rpd_minimum():
    config = DepthWidthConfig(widths=(64, 128), depths=(2, 4, 6, 8), rpd_width=128)
    summary_rows = [{"member": f"w128d{d}s0", "width": 128, "depth": d, "seed": 0, "layer": l,
                     "gradient": g + l, "top_mass": 0.2, "order_index": 0.1, "head_density": h}
                    for d, g, h in ((2, 1.5, 1.8), (4, 1.2, 1.6), (6, 1.0, 1.4), (8, 1.3, 1.7))
                    for l in range(1, d + 1)]
    census = pd.DataFrame([{"member": f"w128d{d}s0", "width": 128, "depth": d, "seed": 0, "layer": l,
                            "opm": 0.5, "npm": 0.0 if l == 1 else 0.1 * d, "inactive": 0.0, "rho_median": 0.9}
                           for d in (2, 4, 6, 8) for l in range(1, d + 1)])
    tables = {"accuracy": ACC, "rpd_summary": pd.DataFrame(summary_rows), "neuron_mode_census": census}
    out = EXPERIMENT().summary(tables, config)
    assert out["best_depth_by_width"] == {"width64": 6, "width128": 4}
    assert out["best_paper_layers_by_width"] == {"width64": 8, "width128": 6}
    assert out["interior_optimum_by_width"] == {"width64": True, "width128": True}
    assert out["test_accuracy"]["width64"]["depth6"] == pytest.approx(0.959)
    assert out["layer1_lowest_gradient_depth"] == 6 and out["layer1_lowest_head_density_depth"] == 6
    assert out["layer1_rpd_gradient_by_depth"]["depth2"] == pytest.approx(2.5)
    assert out["npm_fraction_layers2plus_by_depth"]["depth4"] == pytest.approx(0.4)


def test_members_form_the_grid_of_bn_relu_nets():
    config = EXPERIMENT.scales["smoke"]
    members = EXPERIMENT().members(config)
    assert len(members) == len(config.widths) * len(config.depths) * config.seeds
    assert {(m.params["width"], m.params["depth"]) for m in members} == {
        (w, d) for w in config.widths for d in config.depths}
    assert all(m.spec.model.batchnorm and m.spec.model.activation == "relu" for m in members)
