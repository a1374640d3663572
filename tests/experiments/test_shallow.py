"""The shallow experiment's reading of its tables (paper Fig. 2): the readouts at layer 0, the four curves of
Fig. 2(a, b), and the headline gaps, on hand-made tables with known answers."""

import pandas as pd
import pytest

from netdyn.experiments.shallow import CURVES, EXPERIMENT, ShallowConfig, curve_table, gap_table, readout_table


def _split_table(accuracy, **columns):
    return pd.DataFrame([{**columns, "split": s, "accuracy": a} for s, a in (("train", 1.0), ("test", accuracy))])


def _layers(values, **columns):
    return pd.DataFrame([{**columns, "layer": l, "split": s, "accuracy": a}
                         for l, a in enumerate(values) for s in ("train", "test")])


def test_readouts_take_layer_0_of_the_lmap_and_lp():
    params = {"member": "m", "normalize": "none", "train_size": 600, "activation": "tanh", "seed": 0, "step": 10}
    table = readout_table(_split_table(0.9, **params), _layers([0.85, 0.9], **params), _layers([0.8, 0.9], **params))
    test = table[table["split"] == "test"].set_index("readout")["accuracy"]
    assert test.to_dict() == {"network": 0.9, "L-map0": 0.85, "LP0": 0.8}
    assert "layer" not in table.columns and list(table.columns[-3:]) == ["split", "readout", "accuracy"]
    assert (table["step"] == 10).all() and len(table) == 6


def _readouts(normalize, size, tanh, lmap0, lp0, linear):
    rows = []
    for activation, values in (("tanh", (tanh, lmap0, lp0)), ("linear", (linear, linear, linear))):
        for readout, acc in zip(("network", "L-map0", "LP0"), values, strict=True):
            for split, a in (("train", 1.0), ("test", acc)):
                rows.append({"member": f"{normalize}-{size}-{activation}", "normalize": normalize,
                             "train_size": size, "activation": activation, "seed": 0, "split": split,
                             "readout": readout, "accuracy": a})
    return rows


SIZES = pd.DataFrame(
    _readouts("none", 600, 0.86, 0.858, 0.80, 0.855) + _readouts("none", 5000, 0.93, 0.88, 0.89, 0.885)
    + _readouts("unit", 600, 0.85, 0.85, 0.849, 0.85) + _readouts("unit", 5000, 0.90, 0.90, 0.90, 0.899)
)


def test_curve_table_keeps_three_tanh_readouts_and_the_linear_network():
    curves = curve_table(SIZES)
    assert set(curves["curve"]) == set(CURVES)
    assert (curves["split"] == "test").all()
    assert len(curves) == 4 * 4  # 4 (inputs, size) points x 4 curves
    row = curves[(curves["curve"] == "linear network") & (curves["train_size"] == 5000)
                 & (curves["normalize"] == "none")]
    assert row["accuracy"].tolist() == [0.885] and row["inputs"].tolist() == ["inputs in [0, 1]"]


def test_gap_table_subtracts_each_curve_from_the_tanh_network():
    gaps = gap_table(curve_table(SIZES), "train_size")
    assert len(gaps) == 4 * 3
    at = gaps.set_index(["inputs", "train_size", "gap_of"])["gap"]
    assert at[("inputs in [0, 1]", 5000, "L-map0")] == pytest.approx(0.05)
    assert at[("inputs in [0, 1]", 5000, "LP0")] == pytest.approx(0.04)
    assert at[("inputs in [0, 1]", 600, "linear network")] == pytest.approx(0.005)
    assert at[("unit-norm inputs", 600, "L-map0")] == pytest.approx(0.0)


def _rpd_summary():
    rows = []
    for normalize in ("none", "unit"):
        for size in (600, 5000):
            for activation, gradient in (("tanh", 2.0), ("linear", 2.2)):
                steps = (0, 10, 100, 1000) if size == 5000 else (0, 1000)
                for step in steps:
                    g = {0: 0.1, 10: 1.5, 100: 2.5, 1000: gradient}[step]
                    rows.append({"member": f"{normalize}-{size}-{activation}", "normalize": normalize,
                                 "train_size": size, "activation": activation, "seed": 0, "step": step,
                                 "layer": 1, "gradient": g, "top_mass": 0.2, "order_index": 0.1})
    return pd.DataFrame(rows)


def test_summary_gaps_and_the_rise_and_fall_of_the_rpd_gradient():
    config = ShallowConfig(train_sizes=(600, 5000))
    out = EXPERIMENT().summary({"size_accuracy": SIZES, "rpd_summary": _rpd_summary()}, config)
    assert out["01_size5000"]["tanh_minus_lmap0"] == pytest.approx(0.05)
    assert out["01_size5000"]["tanh_minus_lp0"] == pytest.approx(0.04)
    assert out["01_size5000"]["tanh_minus_linear"] == pytest.approx(0.045)
    assert out["01_tanh_minus_lmap0_smallest"] == pytest.approx(0.002)
    assert out["unit_tanh_minus_lmap0_largest"] == pytest.approx(0.0)
    # final gradients come from each member's last step
    assert out["unit_size600"]["rpd_gradient_tanh"] == 2.0 and out["unit_size600"]["rpd_gradient_linear"] == 2.2
    # over training at the largest size: rises to 2.5 at step 100, falls to 2.0
    assert out["01_rpd_gradient_over_training"] == {"first": 1.5, "peak": 2.5, "peak_step": 100, "last": 2.0}


def test_members_cover_sizes_inputs_and_activations_and_only_the_largest_keeps_checkpoints():
    config = EXPERIMENT.scales["smoke"]
    members = EXPERIMENT().members(config)
    assert len(members) == len(config.train_sizes) * 2 * 2 * config.seeds
    for member in members:
        assert member.spec.data.train_size == member.params["train_size"]
        assert member.spec.data.normalize == member.params["normalize"]
        assert member.spec.model.activation == member.params["activation"] and member.spec.model.depth == 1
        largest = member.params["train_size"] == max(config.train_sizes)
        assert (member.spec.train.checkpoint_every == config.checkpoints) == largest
