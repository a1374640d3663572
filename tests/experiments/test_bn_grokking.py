"""The lag of ``bn-grokking`` on known answers, and the jump of each evaluation mode on a hand-made history
shaped like a deep BN net's (running statistics late, batch statistics early)."""

import math

import pandas as pd
import pytest

from netdyn.experiments.bn_grokking import mode_lag
from netdyn.transitions import accuracy_jump

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
RUNNING = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.9, 0.92, 0.92, 0.92]
BATCH = [0.1, 0.3, 0.5, 0.7, 0.85, 0.9, 0.9, 0.91, 0.91, 0.91, 0.91, 0.91]


def _history():
    rows = [{"step": s, "split": "test", "bn_mode": mode, "loss": 1 - a, "accuracy": a}
            for mode, values in (("running", RUNNING), ("batch", BATCH)) for s, a in zip(STEPS, values, strict=True)]
    return pd.DataFrame(rows)


def test_mode_lag_in_decades_between_half_rise_steps():
    assert mode_lag(100, 1) == pytest.approx(2.0)
    assert mode_lag(0, 10) == pytest.approx(-1.0)
    assert math.isnan(mode_lag(None, 10)) and math.isnan(mode_lag(10, float("nan")))


def test_running_statistics_jump_late_batch_statistics_early():
    h = _history()
    running = accuracy_jump(h, fit_threshold=None, bn_mode="running")
    batch = accuracy_jump(h, fit_threshold=None, bn_mode="batch")
    # running: foot 0.1 at 0, top 0.92 (median of the last five), half 0.51 -> 64, end 0.838 -> 128
    assert (running.start_step, running.mid_step, running.end_step) == (0, 64, 128)
    assert running.onset_step == 32
    # batch: foot 0.1 at 0, top 0.91, half 0.505 -> 4, end 0.829 -> 8
    assert (batch.mid_step, batch.end_step) == (4, 8)
    assert mode_lag(running.mid_step, batch.mid_step) == pytest.approx(math.log10(16))


def test_perturbation_crossing_step_is_the_first_step_below_the_basin_for_good():
    from netdyn.experiments.bn_grokking import perturbation_crossing_step

    table = pd.DataFrame({"step": [0, 10, 30, 50, 70, 100], "eps_equivalent": [20.0, 5.0, 0.5, 1.2, 0.3, 0.1]})
    assert perturbation_crossing_step(table.sample(frac=1, random_state=0), 1.0) == 70  # 30 dips below, 50 not
    assert perturbation_crossing_step(table, 0.05) is None
    assert perturbation_crossing_step(table, 50.0) == 0
