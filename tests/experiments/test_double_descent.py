"""The definitions of ``double-descent`` on hand-made tables with known answers: the loss bump, the rate per
log-step and its maximum, the later layers and the distance in decades."""

import math

import numpy as np
import pandas as pd
import pytest

from netdyn.errors import ConfigError
from netdyn.transitions import later_layers, log_distance, log_rate, loss_bump, rate_maximum

STEPS = [0, 1, 10, 100, 1000, 10000]


def _history(test_loss, bn_mode="running"):
    rows = [{"step": s, "split": "test", "bn_mode": bn_mode, "loss": v, "accuracy": 0.5}
            for s, v in zip(STEPS, test_loss, strict=True)]
    rows += [{"step": s, "split": "train", "bn_mode": bn_mode, "loss": 0.1, "accuracy": 0.9} for s in STEPS]
    return pd.DataFrame(rows)


def test_loss_bump_is_the_largest_rise_above_the_running_minimum():
    # falls to 1.0 at 10, rises to 1.5 at 100, falls to 0.5: the bump is 100, its valley 10, its after 10000
    bump = loss_bump(_history([2.3, 1.5, 1.0, 1.5, 0.8, 0.5]))
    assert (bump.valley_step, bump.peak_step, bump.after_step) == (10, 100, 10000)
    assert bump.rise == pytest.approx(0.5) and bump.relative_rise == pytest.approx(0.5)
    assert bump.descends_again
    record = bump.to_dict()
    assert record["peak_level"] == 1.5 and record["after_level"] == 0.5


def test_loss_bump_the_initial_loss_is_no_peak_and_a_monotone_curve_has_none():
    # the highest loss is the first one, but the bump is the later rise above 1.0
    bump = loss_bump(_history([5.0, 1.0, 1.2, 1.1, 0.9, 0.8]))
    assert (bump.valley_step, bump.peak_step) == (1, 10)
    none = loss_bump(_history([2.3, 2.0, 1.0, 0.9, 0.8, 0.7]))
    assert none.peak_step is None and none.rise == 0.0 and not none.descends_again
    assert none.valley_step == 10000  # the overall minimum
    # a rise below min_relative_rise x the valley is noise, not a bump
    small = loss_bump(_history([2.3, 1.0, 1.01, 0.9, 0.8, 0.7]), min_relative_rise=0.02)
    assert small.peak_step is None


def test_loss_bump_at_the_last_step_does_not_descend_again():
    bump = loss_bump(_history([2.3, 1.0, 0.9, 0.8, 0.9, 1.2]))
    assert bump.peak_step == 10000 and bump.after_step is None and not bump.descends_again


def test_log_rate_per_decade_at_the_geometric_midpoint_without_step_zero():
    table = pd.DataFrame({"step": [0, 1, 10, 1000], "gradient": [5.0, 1.0, 2.0, 2.5]}).sample(frac=1, random_state=2)
    rates = log_rate(table, "gradient")
    np.testing.assert_array_equal(rates["step_low"], [1, 10])
    np.testing.assert_array_equal(rates["step_high"], [10, 1000])
    np.testing.assert_allclose(rates["step"], [math.sqrt(10), 100.0])
    np.testing.assert_allclose(rates["rate"], [1.0, 0.25])  # +1 over one decade, +0.5 over two
    assert rate_maximum(rates) == pytest.approx((math.sqrt(10), 1.0))
    assert rate_maximum(log_rate(table.iloc[:1], "gradient")) is None
    with pytest.raises(ConfigError, match="several rows"):
        log_rate(pd.concat([table, table]), "gradient")


def test_rate_maximum_is_the_largest_increase_not_the_largest_magnitude():
    rates = pd.DataFrame({"step": [1.0, 10.0, 100.0], "rate": [0.5, -3.0, 0.7]})
    assert rate_maximum(rates) == (100.0, 0.7)


def test_later_layers_from_the_first_effective_lmap_layer():
    lmap = pd.DataFrame({"layer": [0, 1, 2, 3, 4], "split": "test", "accuracy": [0.5, 0.8, 0.976, 0.98, 0.98]})
    assert later_layers(lmap, 0.98, range(1, 5)) == [2, 3, 4]  # 0.976 is within 0.005 of 0.98
    assert later_layers(lmap, 0.99, range(1, 5)) == [4]  # none effective: the last hidden layer
    assert later_layers(lmap.assign(accuracy=0.98), 0.98, range(1, 5)) == [1, 2, 3, 4]  # layer 0: every one


def test_log_distance_in_decades():
    assert log_distance(1000, 10) == pytest.approx(2.0)
    assert log_distance(10, 1000) == pytest.approx(-2.0)
    assert log_distance(0, 10) == pytest.approx(-1.0)  # below 1 counts as 1
    assert math.isnan(log_distance(None, 10))


@pytest.mark.parametrize("descends_again, marked", [(True, True), (False, False)])
def test_the_figure_marks_a_bump_only_where_the_loss_falls_again(descends_again, marked):
    from netdyn.experiments.double_descent import _loss_and_rate_figure

    history = _history([2.3, 2.0, 1.0, 0.5, 0.6, 0.4 if descends_again else 0.7])
    rates = pd.DataFrame({"step": [3.0, 30.0, 300.0] * 2, "layer": [1] * 3 + [2] * 3, "rate": [0.5, 1.5, 0.2] * 2})
    mean = rates.groupby("step", as_index=False)["rate"].mean()
    descent = pd.DataFrame([{"bn_mode": "running", "peak_step": 1000.0 if descends_again else 10000.0,
                             "peak_level": 0.6 if descends_again else 0.7, "rate_max_step": 30.0, "rate_max": 1.5,
                             "descends_again": descends_again}])
    fig = _loss_and_rate_figure({"history": history, "gradient_rate": rates, "gradient_rate_mean": mean,
                                 "descent": descent}, "running")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert any("bump maximum" in label for label in labels) is marked
    assert any("rate maximum" in text.get_text() for text in fig.axes[1].get_legend().get_texts())
