"""The criteria (SPEC 6.1) of shallow (Fig. 2), depth-width (Fig. 4), basins-depth-width (Fig. 5) and
basins-hparams (Fig. 6) on hand-made tables with known answers: each criterion's value, its pass / fail, and the
reason a seed cannot be evaluated where the tables give no value. Every test checks the whole declared list, so a
criterion added later without a known answer here fails it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from netdyn.experiments.basins_depth_width import BasinsDepthWidthConfig, basins_depth_width_criteria, member_nets
from netdyn.experiments.basins_hparams import BasinsHparamsConfig, basins_hparams_criteria
from netdyn.experiments.criteria import Criterion, evaluate_criteria, verdict
from netdyn.experiments.depth_width import depth_width_criteria
from netdyn.experiments.shallow import ShallowConfig, shallow_criteria


def _by_name(criteria: list[Criterion]) -> dict[str, Criterion]:
    return {c.name: c for c in criteria}


def _check(criteria, tables, config, seed, expected):
    """Every declared criterion on ``seed``: ``expected`` maps each name to (value, passes), or to the words of
    the reason it cannot be evaluated (a str)."""
    assert set(expected) == {c.name for c in criteria}
    for c in criteria:
        result = c.evaluate(tables, config, seed)
        want = expected[c.name]
        if isinstance(want, str):
            assert result.value is None and not result.passes, c.name
            assert want in result.reason, (c.name, result.reason)
        else:
            value, passes = want
            assert result.reason is None, (c.name, result.reason)
            assert result.value == pytest.approx(value), c.name
            assert result.passes is passes, c.name


# ------------------------------------------------------------------------------------------ shallow
SHALLOW = ShallowConfig(train_sizes=(600, 5000))

# (tanh network, tanh L-map0, tanh LP0, linear network) test accuracy, per seed and size
SHALLOW_SIZES = {
    0: {600: (0.860, 0.858, 0.855, 0.852), 5000: (0.930, 0.880, 0.890, 0.885)},  # agree, then separate
    1: {600: (0.860, 0.858, 0.840, 0.852), 5000: (0.930, 0.925, 0.920, 0.928)},  # LP0 2 points off; together
}
# per seed and step at the largest size: the tanh network first (final 0.9: 0.72 is first reached at step 100)
SHALLOW_TIME = {
    0: {0: (0.1, 0.1, 0.1, 0.1), 10: (0.5, 0.3, 0.3, 0.3), 100: (0.8, 0.795, 0.797, 0.8),
        1000: (0.9, 0.85, 0.85, 0.85)},
    1: {10: (0.5, 0.5, 0.5, 0.5), 100: (0.6, 0.6, 0.6, 0.6), 1000: (0.9, 0.85, 0.85, 0.85)},  # no early phase
}
# RPD gradient of the hidden layer per seed, size, activation and step (only the largest size over training)
SHALLOW_GRADIENTS = {
    0: {600: {"tanh": {1000: 2.0}, "linear": {1000: 2.05}},
        5000: {"tanh": {0: 9.0, 10: 1.0, 100: 3.0, 1000: 2.0}, "linear": {0: 0.1, 1000: 2.5}}},
    1: {600: {"tanh": {10: 2.0, 1000: 1.0}, "linear": {10: 2.0, 1000: 2.0}},  # the last checkpoint counts
        5000: {"tanh": {10: 1.0, 100: 2.0, 1000: 3.0}, "linear": {1000: 3.0}}},  # rises to the end
}


def _shallow_readouts(name, values, seed, normalize="none", **columns):
    rows = []
    for curve, accuracy in zip(("network", "L-map0", "LP0", "linear"), values, strict=True):
        activation, readout = ("linear", "network") if curve == "linear" else ("tanh", curve)
        member = f"{name}-{activation}-{seed}"
        for split, a in (("train", 1.0), ("test", accuracy)):
            rows.append({"member": member, "normalize": normalize, "activation": activation, "seed": seed,
                         **columns, "split": split, "readout": readout, "accuracy": a})
    return rows


def _shallow_tables():
    sizes, times, summary = [], [], []
    for seed, by_size in SHALLOW_SIZES.items():
        for size, values in by_size.items():
            sizes += _shallow_readouts(f"s{size}", values, seed, train_size=size)
    for seed, by_step in SHALLOW_TIME.items():
        for step, values in by_step.items():
            times += _shallow_readouts("s5000", values, seed, train_size=5000, step=step)
    for seed, by_size in SHALLOW_GRADIENTS.items():
        for size, by_activation in by_size.items():
            for activation, by_step in by_activation.items():
                summary += [{"member": f"s{size}-{activation}-{seed}", "normalize": "none", "train_size": size,
                             "activation": activation, "seed": seed, "step": step, "layer": 1, "gradient": g}
                            for step, g in by_step.items()]  # fmt: skip
    return {"size_accuracy": pd.DataFrame(sizes), "time_accuracy": pd.DataFrame(times),
            "rpd_summary": pd.DataFrame(summary)}  # fmt: skip


def test_shallow_criteria_on_known_tables():
    criteria, tables = shallow_criteria(SHALLOW), _shallow_tables()
    unit = {c.name: "with unit-norm inputs" for c in criteria if c.name.endswith("_unit")}  # no such rows
    _check(criteria, tables, SHALLOW, 0, {
        "curves_agree_smallest_01": (0.008, True),  # tanh 0.860 vs linear 0.852
        "curves_separate_largest_01": (0.05, True),  # tanh 0.930 vs L-map0 0.880
        "curves_overlap_early_01": (0.005, True),  # at step 100, not the last step's 0.05
        "rpd_aligned_smallest_01": (0.05 / 2.05, True),
        "rpd_linear_steeper_largest_01": (0.2, True),  # (2.5 - 2.0) / 2.5
        "rpd_gradient_rises_then_falls_01": (1 / 3, True),  # from 1 up to 3, down to 2; step 0's 9 left out
        **unit,
    })  # fmt: skip
    _check(criteria, tables, SHALLOW, 1, {
        "curves_agree_smallest_01": (0.02, False),
        "curves_separate_largest_01": (0.005, False),
        "curves_overlap_early_01": "only at the last evaluation: no early phase",
        "rpd_aligned_smallest_01": (0.5, False),  # the last checkpoint: 1 vs 2, not step 10's equal pair
        "rpd_linear_steeper_largest_01": (0.0, False),
        "rpd_gradient_rises_then_falls_01": (0.0, False),  # the peak is the last checkpoint
        **unit,
    })  # fmt: skip
    assert verdict(evaluate_criteria(criteria, tables, SHALLOW, [0])) == "partly"  # the unit-norm criteria fail


def test_shallow_criteria_that_cannot_be_evaluated_say_why():
    by_name, tables = _by_name(shallow_criteria(SHALLOW)), _shallow_tables()
    missing = tables["size_accuracy"][tables["size_accuracy"]["readout"] != "LP0"]
    reason = by_name["curves_agree_smallest_01"].evaluate({"size_accuracy": missing}, SHALLOW, 0).reason
    assert reason == "curve(s) tanh LP0 missing (a member diverged or was not run)"
    early = tables["time_accuracy"][tables["time_accuracy"]["step"] == 1000]
    assert by_name["curves_overlap_early_01"].evaluate({"time_accuracy": early}, SHALLOW, 0).reason == (
        "fewer than two evaluations after step 0")
    summary = tables["rpd_summary"]
    no_linear = summary[(summary["activation"] == "tanh") | (summary["train_size"] == 5000)]
    assert "the tanh or the linear net has no RPD" in by_name["rpd_aligned_smallest_01"].evaluate(
        {"rpd_summary": no_linear}, SHALLOW, 0).reason
    flat = summary.assign(gradient=np.where(summary["activation"] == "linear", 0.0, summary["gradient"]))
    for name in ("rpd_aligned_smallest_01", "rpd_linear_steeper_largest_01"):
        assert "linear net's RPD gradient is 0" in by_name[name].evaluate({"rpd_summary": flat}, SHALLOW, 0).reason
    short = summary[summary["step"] != 100]
    assert by_name["rpd_gradient_rises_then_falls_01"].evaluate({"rpd_summary": short}, SHALLOW, 0).reason == (
        "fewer than three checkpoints after step 0")
    negative = summary.assign(gradient=-summary["gradient"])
    assert by_name["rpd_gradient_rises_then_falls_01"].evaluate({"rpd_summary": negative}, SHALLOW, 0).reason == (
        "the RPD gradient is never positive")
    assert "no time_accuracy rows of seed 7" in by_name["curves_overlap_early_01"].evaluate(tables, SHALLOW, 7).reason


# ------------------------------------------------------------------------------------------ depth-width
# test accuracy per seed and width over the depths (2, 4, 6, 8)
DEPTH_WIDTH = {
    0: {64: (0.90, 0.92, 0.94, 0.93), 128: (0.93, 0.95, 0.96, 0.955), 256: (0.94, 0.955, 0.962, 0.965)},
    1: {64: (0.95, 0.94, 0.93, 0.92), 128: (0.96, 0.93, 0.94, 0.93), 256: (0.90, 0.92, 0.93, 0.92)},
}
DEPTHS = (2, 4, 6, 8)
# the width-128 nets' first-layer density at q < 0.1, over the depths (layer 2 lowest everywhere: not read)
HEAD_DENSITY = {0: (0.5, 0.4, 0.3, 0.45), 1: (0.5, 0.4, 0.45, 0.2)}


def _depth_width_tables():
    accuracy, summary = [], []
    for seed, by_width in DEPTH_WIDTH.items():
        for width, values in by_width.items():
            for depth, a in zip(DEPTHS, values, strict=True):
                member = f"w{width}-d{depth}-s{seed}"
                accuracy += [{"member": member, "width": width, "depth": depth, "seed": seed, "split": split,
                              "accuracy": acc} for split, acc in (("train", 1.0), ("test", a))]  # fmt: skip
        for depth, density in zip(DEPTHS, HEAD_DENSITY[seed], strict=True):
            summary += [{"member": f"w128-d{depth}-s{seed}", "width": 128, "depth": depth, "seed": seed,
                         "layer": layer, "head_density": density / layer} for layer in (1, 2)]  # fmt: skip
    return {"accuracy": pd.DataFrame(accuracy), "rpd_summary": pd.DataFrame(summary)}


def test_depth_width_criteria_on_known_tables():
    criteria, tables = depth_width_criteria(), _depth_width_tables()
    _check(criteria, tables, None, 0, {
        "accuracy_peaks_inside_depth_range": (2 / 3, True),  # widths 64 and 128 peak at depth 6, 256 at the end
        "optimum_near_8_layers": (8.0, True),  # median of depths 6, 6, 8, plus 2
        "accuracy_grows_with_width": (1.0, True),
        "curves_converge_with_width": (0.00675 / 0.02625, True),  # |256 - 128| over |128 - 64|, mean over depths
        "layer1_npm_richest_at_optimum": (0.0, True),  # lowest density at depth 6, the most accurate
    })  # fmt: skip
    _check(criteria, tables, None, 1, {
        "accuracy_peaks_inside_depth_range": (1 / 3, False),  # 64, 128 best at depth 2; 256 at 6
        "optimum_near_8_layers": (4.0, False),  # median of depths 2, 2, 6, plus 2
        "accuracy_grows_with_width": (3 / 8, False),
        "curves_converge_with_width": (0.0225 / 0.01, False),
        "layer1_npm_richest_at_optimum": (3.0, False),  # lowest at depth 8, width 128 best at depth 2
    })  # fmt: skip


def test_depth_width_criteria_that_cannot_be_evaluated_say_why():
    by_name, tables = _by_name(depth_width_criteria()), _depth_width_tables()
    accuracy = tables["accuracy"]
    two_depths = {**tables, "accuracy": accuracy[accuracy["depth"] <= 4]}
    assert by_name["accuracy_peaks_inside_depth_range"].evaluate(two_depths, None, 0).reason == (
        "fewer than three depths: no interior depth")
    one_width = {"accuracy": accuracy[accuracy["width"] == 64]}
    assert by_name["accuracy_grows_with_width"].evaluate(one_width, None, 0).reason == "fewer than two widths"
    two_widths = {"accuracy": accuracy[accuracy["width"] <= 128]}
    assert "fewer than three widths" in by_name["curves_converge_with_width"].evaluate(two_widths, None, 0).reason
    equal = accuracy.assign(accuracy=np.where(accuracy["width"] <= 128, 0.9, accuracy["accuracy"]))
    assert "the two narrowest widths have the same accuracy" in by_name["curves_converge_with_width"].evaluate(
        {"accuracy": equal}, None, 0).reason
    no_rpd = {**tables, "rpd_summary": tables["rpd_summary"].assign(head_density=math.nan)}
    assert by_name["layer1_npm_richest_at_optimum"].evaluate(no_rpd, None, 0).reason == "no first-layer RPD of seed 0"
    for name, c in by_name.items():
        words = "no first-layer RPD of seed 7" if name.startswith("layer1") else "no test accuracy of seed 7"
        assert c.evaluate(tables, None, 7).reason.startswith(words), name


# ------------------------------------------------------------------------------------------ basins-depth-width
BDW = BasinsDepthWidthConfig(depths=(2, 4, 6, 8, 10), widths=(16, 64, 256))
# size_half at width w is the depth's value times (1 + w / 1000) in sample space, (1 - w / 1000) in weight space
BDW_SIZES = {
    # BN nets from their own rule: the sample basin grows with depth and levels off from depth 6 (its 4.05 at
    # depth 10 below depth 8's 4.1: Spearman 0.9), the weight basin shrinks and levels off from depth 6 (-0.7)
    (True, "default", "sample"): {1: 1.0, 2: 2.0, 4: 3.0, 6: 4.0, 8: 4.1, 10: 4.05},
    (True, "default", "weight"): {1: 3.0, 2: 2.0, 4: 1.5, 6: 1.0, 8: 0.98, 10: 1.02},
    # the control, BN nets from the plain rule (widest width only): no sample trend (-0.3), a weight one (-1)
    (True, "kaiming", "sample"): {1: 2.0, 2: 2.0, 4: 2.1, 6: 1.9, 8: 2.05, 10: 1.95},
    (True, "kaiming", "weight"): {1: 2.0, 2: 1.8, 4: 1.6, 6: 1.4, 8: 1.2, 10: 1.0},
    # without BN: both basins against the paper in depth (sample -1, weight +1), with it in width
    (False, "kaiming", "sample"): {1: 5.0, 2: 4.4, 4: 3.8, 6: 3.2, 8: 2.6, 10: 2.0},
    (False, "kaiming", "weight"): {1: 1.1, 2: 1.2, 4: 1.4, 6: 1.6, 8: 1.8, 10: 2.0},
}


def _bdw_sizes(config=BDW, sizes=None, seed=0):
    sizes = BDW_SIZES if sizes is None else sizes
    rows = []
    for batchnorm, init, depth, width in member_nets(config):
        for space, scale in (("sample", 1 + width / 1000), ("weight", 1 - width / 1000)):
            rows.append({"member": f"{batchnorm}-{init}-d{depth}-w{width}-s{seed}", "batchnorm": batchnorm,
                         "init": init, "depth": depth, "width": width, "seed": seed, "space": space,
                         "clean_accuracy": 1.0, "size_half": sizes[(batchnorm, init, space)][depth] * scale})
    return pd.DataFrame(rows)


def test_basins_depth_width_criteria_on_known_tables():
    criteria, tables = basins_depth_width_criteria(BDW), {"basin_sizes": _bdw_sizes()}
    narrow = "narrower than the paper's converged width (400)"
    _check(criteria, tables, BDW, 0, {
        "sample_basin_grows_with_depth_bn": (0.9, True),  # mean over the three widths
        "weight_basin_shrinks_with_depth_bn": (-0.7, True),
        "sample_basin_grows_with_width_bn": (1.0, True),  # mean over the five depths
        "weight_basin_shrinks_with_width_bn": (-1.0, True),
        "sample_basin_converges_in_depth_bn": (6.0, True),
        "sample_basin_converges_in_width_bn": narrow,
        "weight_basin_converges_in_depth_bn": (6.0, True),
        "weight_basin_converges_in_width_bn": narrow,
        "sample_basin_deep_exceeds_shallow_bn": (4.05, True),  # depth 10 over depth 1 at width 256
        "sample_basin_grows_with_depth_plain": (-1.0, False),
        "weight_basin_shrinks_with_depth_plain": (1.0, False),
        "sample_basin_grows_with_width_plain": (1.0, True),
        "weight_basin_shrinks_with_width_plain": (-1.0, True),
        "sample_basin_grows_with_depth_bn_same_init": (-0.3, False),  # depth 1 left out, as in the others
        "weight_basin_shrinks_with_depth_bn_same_init": (-1.0, True),
    })  # fmt: skip
    plain = _by_name(criteria)["sample_basin_grows_with_depth_plain"]
    assert plain.evaluate(tables, BDW, 1).reason == (
        "no sample-space basin of a no BN net of seed 1 (diverged or not run)")
    # no control declared where the variants share a rule, no plain criteria without plain nets
    same = _by_name(basins_depth_width_criteria(dataclasses.replace(BDW, init_plain="default")))
    assert not [n for n in same if n.endswith("same_init")] and "sample_basin_grows_with_depth_plain" in same
    bn_only = _by_name(basins_depth_width_criteria(dataclasses.replace(BDW, batchnorms=(True,))))
    assert not [n for n in bn_only if n.endswith("_plain")] and len(bn_only) == 9 + 2


def test_basins_converge_in_width_by_twice_the_papers_width():
    """Sizes levelling off from width 200 at depths 2 and 4 and never at depths 6, 8 and 10 (sample space), and
    from width 100 at every depth (weight space)."""
    config = dataclasses.replace(BDW, widths=(100, 200, 400, 800), baseline_depth=None, same_init_control=False)
    rows = []
    for depth in config.depths:
        for i, width in enumerate(config.widths):
            sample = (1.0, 2.0, 2.05, 2.0)[i] if depth <= 4 else 1.0 + i
            for space, size in (("sample", sample), ("weight", 1.0 + 0.01 * i)):
                rows.append({"batchnorm": True, "init": "default", "depth": depth, "width": width, "seed": 0,
                             "space": space, "size_half": size})
    tables = {"basin_sizes": pd.DataFrame(rows)}
    by_name = _by_name(basins_depth_width_criteria(config))
    sample = by_name["sample_basin_converges_in_width_bn"].evaluate(tables, config, 0)
    assert sample.value == pytest.approx(2 / 5) and not sample.passes
    weight = by_name["weight_basin_converges_in_width_bn"].evaluate(tables, config, 0)
    assert weight.value == pytest.approx(1.0) and weight.passes
    three = {"basin_sizes": tables["basin_sizes"].query("width >= 400")}
    assert by_name["weight_basin_converges_in_width_bn"].evaluate(three, config, 0).reason == (
        "fewer than 3 widths on the grid: no plateau to find")


def test_basins_depth_width_criteria_that_cannot_be_evaluated_say_why():
    by_name = _by_name(basins_depth_width_criteria(BDW))
    growing = {**BDW_SIZES, (True, "default", "sample"): {1: 1.0, 2: 1.0, 4: 2.0, 6: 3.0, 8: 4.0, 10: 5.0}}
    tables = {"basin_sizes": _bdw_sizes(sizes=growing)}
    result = by_name["sample_basin_converges_in_depth_bn"].evaluate(tables, BDW, 0)
    assert result.reason == ("the sample-space size does not level off over the grid's depths (its last 3 are not "
                             "within 0.1 of their median)")
    assert by_name["sample_basin_grows_with_depth_bn"].evaluate(tables, BDW, 0).value == pytest.approx(1.0)
    sizes = _bdw_sizes()
    deepest = (sizes["depth"] == 10) & (sizes["width"] == 256) & (sizes["space"] == "weight") & (
        sizes["init"] == "default")
    tables = {"basin_sizes": sizes.assign(size_half=sizes["size_half"].mask(deepest))}
    assert by_name["weight_basin_converges_in_depth_bn"].evaluate(tables, BDW, 0).reason == (
        "the weight-space size_half was not reached on the noise grid at depth 10")
    # a size not reached drops out of a trend: width 256 is ranked over depths 2-8 alone (-1, the others -0.7)
    assert by_name["weight_basin_shrinks_with_depth_bn"].evaluate(tables, BDW, 0).value == pytest.approx(-0.8)
    baseline = {"basin_sizes": sizes[sizes["depth"] != 1]}
    assert by_name["sample_basin_deep_exceeds_shallow_bn"].evaluate(baseline, BDW, 0).reason == (
        "no depth-1 baseline or no deepest net at the widest width")
    shallow = (sizes["depth"] == 1) & (sizes["space"] == "sample")
    unreached = {"basin_sizes": sizes.assign(size_half=sizes["size_half"].mask(shallow))}
    assert by_name["sample_basin_deep_exceeds_shallow_bn"].evaluate(unreached, BDW, 0).reason == (
        "a size_half was not reached on the noise grid")
    flat = {"basin_sizes": sizes.assign(size_half=1.0)}
    assert "no width with a rank correlation against depth" in by_name["sample_basin_grows_with_depth_bn"].evaluate(
        flat, BDW, 0).reason
    assert "no rank correlation over depths" in by_name["sample_basin_grows_with_depth_bn_same_init"].evaluate(
        flat, BDW, 0).reason
    # the smoke grid, depths (1, 2): too few depths for a plateau
    smoke = BasinsDepthWidthConfig(depths=(1, 2), widths=(16, 32))
    assert by_name["sample_basin_converges_in_depth_bn"].evaluate(
        {"basin_sizes": _bdw_sizes(smoke)}, smoke, 0).reason == "fewer than 3 depths on the grid: no plateau to find"


# ------------------------------------------------------------------------------------------ basins-hparams
BH = BasinsHparamsConfig(batch_sizes=(50, 200, 1000, 2500), lrs=(1e-4, 1e-3, 1e-2), lr_batch_size=50, lr=1e-3,
                         equal_steps=250)  # fmt: skip
BATCHES = np.array(BH.batch_sizes, dtype=float)
# equal epochs: both basins and the test accuracy shrink as the batch grows, the weight basin the faster
EPOCHS = {"sample": 3 - np.log10(BATCHES) / 2, "weight": 2 * np.sqrt(50 / BATCHES),
          "test": 0.99 - 0.001 * np.log10(BATCHES)}  # fmt: skip
# equal steps (the control): the basins grow with the batch (the largest batch's weight basin not reached) and
# the test accuracy is the same at every batch
STEPS = {"sample": 1 + np.log10(BATCHES) / 10, "weight": np.array([1.0, 1.1, 1.2, math.nan]),
         "test": np.full(4, 0.95)}  # fmt: skip
# the lr sweep at batch 50 beside the shared point (lr 1e-3): sizes per lr 1e-4 and 1e-2, test accuracy peaking
LRS = {"sample": {1e-4: 1.0, 1e-2: 4.0}, "weight": {1e-4: 1.5, 1e-2: 2.5}, "test": {1e-4: 0.97, 1e-2: 0.96}}


def _bh_tables():
    sizes, members = [], []

    def add(schedule, batch_size, lr, sample, weight, test):
        params = {"member": f"{schedule}-bs{batch_size}-lr{lr:g}", "schedule": schedule, "batch_size": batch_size,
                  "lr": lr, "seed": 0}  # fmt: skip
        sizes.extend({**params, "space": space, "clean_accuracy": 1.0, "size_half": size}
                     for space, size in (("sample", sample), ("weight", weight)))  # fmt: skip
        members.append({**params, "train_accuracy": 1.0, "test_accuracy": test})

    for schedule, values in (("epochs", EPOCHS), ("steps", STEPS)):
        for i, batch_size in enumerate(BH.batch_sizes):
            add(schedule, batch_size, BH.lr, values["sample"][i], values["weight"][i], values["test"][i])
    for lr in (1e-4, 1e-2):
        add("epochs", BH.lr_batch_size, lr, LRS["sample"][lr], LRS["weight"][lr], LRS["test"][lr])
    return {"basin_sizes": pd.DataFrame(sizes), "members": pd.DataFrame(members)}


def test_basins_hparams_criteria_on_known_tables():
    criteria, tables = basins_hparams_criteria(BH), _bh_tables()
    weight_spread, sample_spread = math.log(2 / (2 * math.sqrt(50 / 2500))), math.log(EPOCHS["sample"][0] /
                                                                                       EPOCHS["sample"][-1])
    lr_ratio = math.log(2.5 / 1.5) / math.log(4.0 / 1.0)  # batch 50 at lr 1e-3: sample 2.15, weight 2.0, inside
    _check(criteria, tables, BH, 0, {
        "sample_basin_grows_as_batch_shrinks": (-1.0, True),
        "weight_basin_grows_as_batch_shrinks": (-1.0, True),
        "test_accuracy_rises_as_batch_shrinks": (-1.0, True),
        "weight_basin_more_sensitive_to_batch": (weight_spread / sample_spread, True),  # 3.9
        "sample_basin_grows_as_batch_shrinks_equal_steps": (1.0, False),
        "weight_basin_grows_as_batch_shrinks_equal_steps": (1.0, False),  # over the three sizes reached
        "test_accuracy_rises_as_batch_shrinks_equal_steps": "fewer than two test accuracies, or all equal",
        "weight_basin_more_sensitive_to_batch_equal_steps": "a weight-space size_half was not reached",
        "test_accuracy_peaks_inside_lr_range": (True, True),  # 0.988 at lr 1e-3, between 0.97 and 0.96
        "weight_basin_more_sensitive_to_lr": (lr_ratio, False),  # 0.37: here the sample basin moves more
    })  # fmt: skip
    assert weight_spread / sample_spread == pytest.approx(3.89, abs=0.01)
    assert verdict(evaluate_criteria(criteria, tables, BH, [0])) == "partly"
    # no control criteria without the control members
    assert len(basins_hparams_criteria(dataclasses.replace(BH, equal_steps=None))) == 4 + 2


def test_basins_hparams_criteria_that_cannot_be_evaluated_say_why():
    by_name, tables = _by_name(basins_hparams_criteria(BH)), _bh_tables()
    members = tables["members"]
    best_at_end = members.assign(test_accuracy=members["test_accuracy"].mask(members["lr"] == 1e-2, 0.999))
    result = by_name["test_accuracy_peaks_inside_lr_range"].evaluate({"members": best_at_end}, BH, 0)
    assert result.value is False and not result.passes
    two_rates = {"members": members[members["lr"] != 1e-4]}
    assert by_name["test_accuracy_peaks_inside_lr_range"].evaluate(two_rates, BH, 0).reason == (
        "fewer than three learning rates: no interior rate")
    # a folder from before the control: no schedule column, every member trained for equal epochs
    older = {name: table[table["schedule"] == "epochs"].drop(columns="schedule") for name, table in tables.items()}
    assert by_name["sample_basin_grows_as_batch_shrinks"].evaluate(older, BH, 0).value == pytest.approx(-1.0)
    assert by_name["sample_basin_grows_as_batch_shrinks_equal_steps"].evaluate(older, BH, 0).reason == (
        "no basin_sizes rows of the batch_size sweep at equal steps, seed 0")
    sizes = tables["basin_sizes"]
    flat = {"basin_sizes": sizes.assign(size_half=sizes["size_half"].where(sizes["space"] == "weight", 1.0))}
    assert by_name["weight_basin_more_sensitive_to_batch"].evaluate(flat, BH, 0).reason == (
        "the sample-space size is the same at every point of the sweep")
    assert "fewer than two sample-space sizes reached, or all equal" in by_name[
        "sample_basin_grows_as_batch_shrinks"].evaluate(flat, BH, 0).reason
    assert by_name["weight_basin_more_sensitive_to_lr"].evaluate(tables, BH, 3).reason == (
        "no basin_sizes rows of the lr sweep at equal epochs, seed 3")
