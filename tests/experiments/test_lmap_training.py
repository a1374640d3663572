"""The lmap-training experiment's definitions on hand-made histories and L-map tables: the rise step, the
grokking point and its lag, and when an L-map has converged."""

import numpy as np
import pandas as pd

from netdyn.experiments.lmap_training import (
    EXPERIMENT,
    converged_step,
    convergence_table,
    grokking_point,
    rise_step,
    tail_table,
)

STEPS = [0, 1, 2, 5, 10, 20, 50, 100]
CURVES = {
    ("train", "batch"): [0.1, 0.4, 0.8, 0.9, 0.95, 0.97, 0.99, 1.0],  # half of the rise (0.55) at step 2
    ("test", "running"): [0.1, 0.1, 0.12, 0.1, 0.3, 0.8, 0.9, 0.92],  # half of the rise (0.51) at step 20
    ("train", "running"): [0.1, 0.1, 0.1, 0.1, 0.35, 0.9, 0.98, 1.0],
}


def _history(curves):
    rows = []
    for (split, mode), values in curves.items():
        rows += [{"step": s, "split": split, "bn_mode": mode, "accuracy": a}
                 for s, a in zip(STEPS, values, strict=True)]
    return pd.DataFrame(rows).sample(frac=1, random_state=0)  # the functions must sort


HISTORY = _history(CURVES)


def test_rise_step_is_the_first_step_past_half_the_rise():
    assert rise_step(HISTORY, "train", "batch") == 2
    assert rise_step(HISTORY, "test", "running") == 20
    assert rise_step(HISTORY, "test", "batch") is None  # no such rows
    flat = _history({("test", "running"): [0.1] * len(STEPS)})
    assert rise_step(flat, "test", "running") is None  # no rise


def test_grokking_point_and_its_lag():
    point = grokking_point(HISTORY, min_lag=3.0)
    assert point == {"learning_step": 2, "grokking_step": 20, "grokking_lag": 10.0, "grokking": True}
    assert not grokking_point(HISTORY, min_lag=11.0)["grokking"]
    # test accuracy rising with the training accuracy: no grokking
    early = _history({("train", "batch"): CURVES[("train", "batch")],
                      ("test", "running"): CURVES[("train", "batch")]})
    assert grokking_point(early, 3.0)["grokking_lag"] == 1.0 and not grokking_point(early, 3.0)["grokking"]
    # without batch-statistics rows the learning step comes from the running-statistics training accuracy
    running = HISTORY[HISTORY.bn_mode == "running"]
    assert grokking_point(running, 3.0)["learning_step"] == 20


def test_converged_step_counts_from_the_reference_rise_on():
    steps = np.array([0, 1, 10, 100, 1000])
    ref = np.array([0.1, 0.5, 0.9, 1.0, 1.0])  # half its rise (0.55) first reached at step 10
    assert converged_step(steps, np.array([0.1, 0.2, 0.5, 0.996, 1.0]), ref) == 100
    # within tolerance at step 10, then at every later step: converged at 10
    assert converged_step(steps, np.array([0.1, 0.2, 0.9, 0.996, 1.0]), ref) == 10
    # equal to the reference throughout: agreement before its rise (at chance) does not count
    assert converged_step(steps, ref, ref) == 10
    assert converged_step(steps, np.array([0.1, 0.5, 0.9, 1.0, 0.9]), ref) is None
    assert converged_step(steps, np.array([0.2, 0.6, 0.95, 1.0, 1.0]), ref) == 10  # above the reference counts
    # within tolerance at the rise, out again, then back: the last re-entry counts
    assert converged_step(steps, np.array([0.1, 0.5, 0.9, 0.9, 1.0]), ref) == 1000
    assert converged_step(steps, ref, np.full(5, 0.1)) is None  # a reference that never rises


def _lmap(values_by_layer, split="train"):
    return pd.DataFrame([
        {"step": s, "layer": layer, "split": split, "accuracy": a}
        for layer, values in values_by_layer.items() for s, a in zip(STEPS, values, strict=True)
    ])


def test_convergence_table_against_both_references_and_the_tail_start():
    network = _lmap({0: CURVES[("train", "running")]}).drop(columns="layer")
    lmap = _lmap({
        1: [0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.9, 0.95],    # never within 0.005 of 1.0 at the end
        2: [0.1, 0.1, 0.1, 0.1, 0.3, 0.88, 0.978, 1.0],  # within tolerance of the network from step 50 on
        3: CURVES[("train", "running")],                 # equal to the network throughout (it rises at 20)
    })
    table = convergence_table(lmap, network, HISTORY, layers=[2, 3, 1])
    got = {(r.layer, r.reference): (None if pd.isna(r.converged_step) else int(r.converged_step))
           for r in table.itertuples()}
    assert got == {
        (2, "network"): 50, (3, "network"): 20, (1, "network"): None,
        # batch-statistics training accuracy (rises at step 2): 0.99 at step 50 and 1.0 at 100
        (2, "training_batch"): 100, (3, "training_batch"): 100, (1, "training_batch"): None,
    }
    tail = tail_table(lmap, network)
    # layers 1..3: layer 3 equals the network, layer 2 joins it from step 50 on, layer 1 only at chance
    assert tail.set_index("step")["lmap_effective_from"].to_dict() == {
        0: 1, 1: 1, 2: 1, 5: 1, 10: 3, 20: 3, 50: 2, 100: 2}


def test_members_are_one_depth21_bn_net_per_seed_checkpointed_where_it_is_evaluated():
    experiment = EXPERIMENT()
    config = experiment.config("small", seeds=2)
    assert config.depth == 21  # the paper's 23-layer net
    members = experiment.members(config)
    assert [m.params["seed"] for m in members] == [0, 1]
    train = members[0].spec.train
    assert train.eval_every == train.checkpoint_every and train.bn_eval == "both"
    assert members[0].spec.model.batchnorm and members[0].spec.model.depth == 21
    assert all(layer <= config.depth for layer in config.layers)
