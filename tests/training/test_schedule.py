"""The one schedule parser: TrainConfig's eval/checkpoint points and the Monitor's open-ended log schedule."""

import pytest

from netdyn import ConfigError, Monitor, TrainConfig
from netdyn.monitor import monitor_steps
from netdyn.training import StepSchedule, parse_schedule


@pytest.mark.parametrize("spec", ["log:1", "log:7", "log:30", 1, 3, 250, "40", "none"])
@pytest.mark.parametrize("total", [1, 9, 100, 1234])
def test_due_over_a_known_total_is_membership_in_its_steps(spec, total):
    schedule = StepSchedule.parse(spec)
    steps = set(parse_schedule(spec, total))
    assert {s for s in range(total + 1) if schedule.due(s, total)} == steps


def test_an_open_ended_log_schedule_places_n_points_in_every_decade():
    schedule = StepSchedule.parse("log:4")
    due = [s for s in range(1, 10_001) if schedule.due(s)]
    assert due == [1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5623, 10000]
    assert schedule.due(0) and StepSchedule.parse(7).due(70_000) and not StepSchedule.parse(7).due(70_001)
    assert monitor_steps("log:4", None, 56) and not monitor_steps("log:4", None, 57)


@pytest.mark.parametrize("bad", ["log:x", "log:0", 0, -3, "weekly", 2.5, True, None, "log:"])
def test_every_reader_refuses_the_same_schedules(bad, tmp_path, tiny_data):
    with pytest.raises(ConfigError):
        StepSchedule.parse(bad)
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(eval_every=bad)
    with pytest.raises(ConfigError, match="every"):
        Monitor(tmp_path / "m", tiny_data, every=bad)


def test_a_monitor_must_record_something(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="records something"):
        Monitor(tmp_path / "m", tiny_data, every="none")
