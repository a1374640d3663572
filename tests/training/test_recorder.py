"""The recorder apart from the step: schedules, tables, checkpoints and hooks for any loop, and resume without
recording a step twice."""

import pandas as pd
import pytest

from netdyn import MLP, TrainConfig, load_run, train
from netdyn.store import RunFolder
from netdyn.training.recorder import Recorder, Schedule


def test_schedule_from_config_and_sync_points():
    schedule = Schedule.of(TrainConfig(eval_every=10, checkpoint_every="log:3", steps=100), 100)
    assert sorted(schedule.measure_steps) == list(range(0, 101, 10))
    assert sorted(schedule.checkpoint_steps) == [0, 1, 10, 100]
    assert schedule.due(1) and schedule.due(20) and not schedule.due(21)
    assert Schedule(5000, frozenset(), frozenset()).due(3000)  # the divergence flag is read every 1000 steps


def test_recorder_serves_any_loop_with_tagged_tables(tmp_path):
    """No network, no optimiser: what a population member or a monitor gives the recorder."""
    saved, events = [], []
    folder = RunFolder(tmp_path / "m")
    recorder = Recorder(
        Schedule(6, frozenset({0, 2, 4, 6}), frozenset({0, 3, 6})),
        measure=lambda p: {"history": pd.DataFrame({"step": [p.step], "member": [1], "value": [p.step**2]}),
                           "extra": pd.DataFrame({"step": [p.step], "epoch": [p.epoch]})},
        save=lambda p: saved.append(p.step),
        folder=folder,
        steps_per_epoch=2,
        hooks=[lambda event, p: events.append((event, p.step))],
    )
    measured = [step for step in range(7) if recorder.record(step)]
    assert measured == [0, 2, 4, 6] and saved == [0, 3, 6]
    assert recorder.record(4) is False  # a step already recorded is not recorded again
    summary = recorder.finish({"done": True}, 6)
    assert events == [("record", 0), ("record", 2), ("record", 4), ("record", 6), ("end", 6)]
    history = folder.read_table("history")
    assert history["value"].tolist() == [0, 4, 16, 36] and set(history["member"]) == {1}
    assert folder.read_table("extra")["epoch"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert summary["checkpoints"] == [] and folder.summary["done"] is True  # saving is the caller's business

    again = Recorder(recorder.schedule, measure=recorder.measure, folder=folder)
    again.restore(3, wall_time=12.0, tables=("history", "extra"))
    assert again.table("history")["step"].tolist() == [0, 2] and again.last_measured == 2
    assert again.wall_time() >= 12.0


@pytest.mark.parametrize("stop_at", [0, 4])
def test_resume_right_after_a_checkpoint_records_no_step_twice(tiny_data, tmp_path, stop_at):
    """A run stopped right after its step-0 (or a later) checkpoint resumes to the uninterrupted history."""

    class Stop(Exception):
        pass

    cfg = TrainConfig(steps=12, batch_size=40, eval_every=2, checkpoint_every=4)
    whole = train(MLP(12, 8, 2, 3, seed=1), tiny_data, cfg, run_dir=tmp_path / "whole")

    def stop(event, state):
        if event == "eval" and state.step == stop_at:
            raise Stop

    with pytest.raises(Stop):
        train(MLP(12, 8, 2, 3, seed=1), tiny_data, cfg, run_dir=tmp_path / "cut", callbacks=[stop])
    assert load_run(tmp_path / "cut").checkpoints() == list(range(0, stop_at + 1, 4))
    resumed = train(MLP(12, 8, 2, 3, seed=1), tiny_data, cfg, run_dir=tmp_path / "cut", resume=True)
    history = load_run(tmp_path / "cut").history
    assert not history.duplicated(["step", "split", "bn_mode"]).any()
    pd.testing.assert_frame_equal(whole.history.drop(columns="wall_time"), history.drop(columns="wall_time"))
    pd.testing.assert_frame_equal(resumed.history, history)


def test_a_run_without_evaluations_is_summarised_as_finished(tiny_data, tmp_path):
    cfg = TrainConfig(steps=7, batch_size=40, eval_every="none", checkpoint_every="none")
    result = train(MLP(12, 8, 2, 3, seed=1), tiny_data, cfg, run_dir=tmp_path / "r")
    assert result.summary["steps"] == result.summary["total_steps"] == 7
    assert result.summary["epochs"] == pytest.approx(7 / 6)  # 240 samples in batches of 40
    assert len(result.history) == 0 and load_run(tmp_path / "r").checkpoints() == []  # "none": a pure-speed run
