"""The definitions of ``grokking`` on hand-made histories with known answers: the fit step, the plateau, the
jump, the stages and the crossing of a size over a distance; and (slow) the delay at small scale."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from netdyn.errors import ConfigError
from netdyn.experiments.grokking import before_learning_step, first_crossing_step, grokking_stages
from netdyn.transitions import accuracy_jump, curve, fit_step, plateau

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
TRAIN = [0.1, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0]
TEST = [0.1, 0.12, 0.3, 0.4, 0.35, 0.3, 0.32, 0.4, 0.6, 0.85, 0.9, 0.91, 0.9]


def _history(train=TRAIN, test=TEST, steps=STEPS, bn_mode="none"):
    rows = [{"step": s, "split": split, "bn_mode": bn_mode, "loss": 1.0 - a, "accuracy": a}
            for split, values in (("train", train), ("test", test)) for s, a in zip(steps, values, strict=True)]
    return pd.DataFrame(rows).sample(frac=1, random_state=0)  # shuffled: the definitions sort by step


def test_curve_sorts_by_step_and_needs_one_mode():
    h = _history()
    np.testing.assert_array_equal(curve(h, "test").index, STEPS)
    np.testing.assert_array_equal(curve(h, "test").to_numpy(), TEST)
    both = pd.concat([_history(bn_mode="running"), _history(bn_mode="batch")])
    with pytest.raises(ConfigError, match="several bn_mode"):
        curve(both, "test")
    assert curve(both, "test", bn_mode="batch").index.tolist() == STEPS
    with pytest.raises(ConfigError, match="several 'test' rows per step"):
        curve(pd.concat([h, h]), "test")


def test_fit_step_is_the_first_step_at_the_threshold():
    h = _history()
    assert fit_step(h) == 16  # 1.0 first at 16 (the later dip to 0.99 does not matter)
    assert fit_step(h, threshold=0.6) == 4
    assert fit_step(_history(train=[0.5] * len(STEPS))) is None


def test_plateau_level_is_the_tail_median_and_its_step_the_last_reentry():
    h = _history()
    step, level = plateau(h)  # median of the last five test values 0.6 0.85 0.9 0.91 0.9 -> 0.9
    assert level == pytest.approx(0.9)
    assert step == 512  # 0.85 at 256 is below 0.9 - 0.01; from 512 on every value is >= 0.89
    step, _ = plateau(h, tolerance=0.06)
    assert step == 256
    # a dip after an early high resets the plateau step
    test = [0.1, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    assert plateau(_history(test=test))[0] == 16  # the dip is at 8


def test_jump_foot_onset_mid_end_and_delay():
    jump = accuracy_jump(_history())
    assert jump.fit_step == 16
    # foot: the minimum at or after 16 is 0.3 at 16; top 0.9; rise 0.6
    assert (jump.start_step, jump.start_level) == (16, 0.3)
    assert jump.rise == pytest.approx(0.6)
    # end: first >= 0.3 + 0.9 * 0.6 = 0.84 -> 256; onset: last <= 0.36 before it -> 32; mid: first >= 0.6 -> 128
    assert (jump.onset_step, jump.mid_step, jump.end_step) == (32, 128, 256)
    assert jump.found and jump.plateau_step == 512
    assert jump.delay == pytest.approx(512 / 16)
    record = jump.to_dict()
    assert record["mid_step"] == 128 and record["delay"] == pytest.approx(32)


def test_jump_without_fit_reference_and_without_rise():
    jump = accuracy_jump(_history(), fit_threshold=None)
    assert jump.fit_step is None and math.isnan(jump.delay)
    assert (jump.start_step, jump.start_level) == (0, 0.1)  # the minimum over the whole run
    # rise 0.8: end first >= 0.82 -> 256, onset last <= 0.18 -> 1, mid first >= 0.5 -> 128
    assert (jump.onset_step, jump.mid_step, jump.end_step) == (1, 128, 256)
    flat = accuracy_jump(_history(test=[0.5] * len(STEPS)))
    assert not flat.found and flat.onset_step is None and flat.mid_step is None
    assert flat.rise == pytest.approx(0.0)


def test_stages_are_checkpoints_around_the_jump():
    h = _history()
    jump = accuracy_jump(h)
    checkpoints = [0, 2, 8, 32, 128, 512, 2048]
    assert before_learning_step(h, checkpoints, chance=0.1) == 0  # at 2 the train accuracy is 0.3
    assert before_learning_step(h, checkpoints, chance=0.1, margin=0.25) == 2
    # a candidate that was not evaluated reads the latest evaluated step before it
    assert before_learning_step(h, [0, 1, 3], chance=0.1, margin=0.25) == 3
    stages = grokking_stages(h, checkpoints, jump, chance=0.1)
    assert stages == {"initial": 0, "before": 32, "after": 512}  # onset 32, end 256 -> next checkpoint 512
    flat = accuracy_jump(_history(test=[0.5] * len(STEPS)))
    assert grokking_stages(h, checkpoints, flat, chance=0.1) == {"initial": 0, "before": 8, "after": 2048}


def test_first_crossing_step_counts_only_a_crossing_for_good():
    steps = [0, 10, 100, 1000, 10000]
    assert first_crossing_step(steps, [0.1, 0.7, 0.3, 0.8, 0.9], 0.6) == 1000
    assert first_crossing_step(steps, [0.1, 0.2, 0.3, 0.4, 0.5], 0.6) is None
    assert first_crossing_step(steps, [0.1, 0.2, np.nan, 0.8, np.nan], 0.6) == 100  # NaN: beyond the grid


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_grokking_at_small_shows_the_delay(tmp_path):
    """Test accuracy reaches its plateau at least ten times later than training accuracy reaches 100%.

    Trains the small configuration (10^5 steps: about 6 minutes on 2 free CPU cores). To check a finished
    experiment folder instead, point NETDYN_GROKKING_SMALL at it: it is resumed, nothing is trained again.
    """
    from netdyn.experiments import run_experiment

    given = os.environ.get("NETDYN_GROKKING_SMALL")
    out = Path(given) if given else tmp_path / "grokking-small"
    result = run_experiment("grokking", "small", out, resume=out.exists())
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(summary))
    jump = result.tables["jump"].iloc[0]
    assert jump["fit_step"] > 0, "the training set is fitted"
    assert jump["plateau_step"] >= 10 * jump["fit_step"], (jump["fit_step"], jump["plateau_step"])
    assert summary["delay_at_least_10x"] is True
