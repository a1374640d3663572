"""Training: schedules, reproducibility, resume after interruption, divergence, BN evaluation modes."""

import math

import pandas as pd
import pytest
import torch

from netdyn import MLP, ConfigError, RunError, TrainConfig, load_run, train
from netdyn.training import parse_schedule, steps_per_epoch
from netdyn.training.loop import HISTORY_COLUMNS, compute_loss


def test_log_schedule_is_log_spaced_with_ends():
    steps = parse_schedule("log:10", 1000)
    assert steps[0] == 0 and steps[-1] == 1000
    assert steps[1:] == [1, 2, 5, 10, 22, 46, 100, 215, 464, 1000]
    assert parse_schedule(250, 1000) == [0, 250, 500, 750, 1000]
    assert parse_schedule(300, 1000) == [0, 300, 600, 900, 1000]
    for bad in ("log:x", "log:0", 0, "weekly"):
        with pytest.raises(ConfigError):
            parse_schedule(bad, 10)


def test_steps_per_epoch_drops_a_single_leftover():
    assert steps_per_epoch(1000, 100) == 10
    assert steps_per_epoch(1001, 100) == 10  # one sample left: batch norm cannot normalise it
    assert steps_per_epoch(1050, 100) == 11


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "rmsprop"},
        {"lr": -1},
        {"batch_size": 0},
        {"loss": "hinge"},
        {"steps": 0},
        {"bn_eval": "sometimes"},
    ],
)
def test_config_rejects_impossible_values(kwargs):
    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)


def test_mse_loss_is_sum_over_classes_mean_over_samples():
    logits = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    labels = torch.tensor([0, 1])
    assert compute_loss(logits, labels, "mse").item() == pytest.approx((0 + 0.5) / 2)


def test_training_learns_and_records(tiny_data, tmp_path):
    net = MLP(12, 32, 2, 3, seed=0)
    result = train(
        net, tiny_data, TrainConfig(epochs=20, batch_size=40, eval_every="log:8"), run_dir=tmp_path / "r"
    )
    h = result.history
    assert list(h.columns) == HISTORY_COLUMNS
    assert set(h["split"]) == {"train", "test"} and set(h["bn_mode"]) == {"none"}
    assert h["step"].min() == 0 and h["step"].max() == 20 * 6
    final = h[h["step"] == h["step"].max()].set_index("split")["accuracy"]
    first = h[h["step"] == 0].set_index("split")["accuracy"]
    assert final["train"] > 0.9 and final["train"] > first["train"]
    assert result.summary["train_accuracy"] == pytest.approx(final["train"])
    run = load_run(tmp_path / "r")
    assert run.config["train"]["epochs"] == 20 and run.config["model"]["width"] == 32
    assert run.checkpoints()[0] == 0 and run.checkpoints()[-1] == 120
    pd.testing.assert_frame_equal(run.history, h)
    x = tiny_data.x_test
    assert torch.allclose(run.model()(x), net.eval()(x))
    assert run.summary["steps"] == 120


def test_same_seed_same_tables_and_weights(tiny_data):
    cfg = TrainConfig(steps=30, batch_size=32, eval_every=10, seed=3)
    a = train(MLP(12, 16, 2, 3, batchnorm=True, seed=1), tiny_data, cfg)
    b = train(MLP(12, 16, 2, 3, batchnorm=True, seed=1), tiny_data, cfg)
    c = train(
        MLP(12, 16, 2, 3, batchnorm=True, seed=1), tiny_data, TrainConfig(steps=30, batch_size=32, seed=4)
    )
    pd.testing.assert_frame_equal(a.history.drop(columns="wall_time"), b.history.drop(columns="wall_time"))
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.net.parameters(), c.net.parameters(), strict=True))


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("optimizer, stop_at", [("adam", 12), ("adam", 9), ("sgd", 12), ("adamw", 9)])
def test_resume_after_interruption_matches_uninterrupted(tiny_data, tmp_path, optimizer, stop_at):
    cfg = TrainConfig(
        optimizer=optimizer,
        lr=0.01,
        epochs=6,
        batch_size=50,
        eval_every=3,
        checkpoint_every=6,
        bn_eval="both",
    )

    def make():
        return MLP(12, 16, 3, 3, batchnorm=True, residual=True, seed=2)

    whole = train(make(), tiny_data, cfg, run_dir=tmp_path / "whole")

    def interrupt(event, state):
        if event == "eval" and state.step == stop_at:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make(), tiny_data, cfg, run_dir=tmp_path / "cut", callbacks=[interrupt])
    cut = load_run(tmp_path / "cut")
    assert cut.checkpoints()[-1] == 6 * (stop_at // 6)  # the last completed checkpoint is readable
    assert cut.history["step"].max() == stop_at
    with pytest.raises(RunError, match="already holds a run"):
        train(make(), tiny_data, cfg, run_dir=tmp_path / "cut")
    resumed = train(
        MLP(12, 16, 3, 3, batchnorm=True, residual=True, seed=99),
        tiny_data,
        cfg,
        run_dir=tmp_path / "cut",
        resume=True,
    )
    for key, value in whole.net.state_dict().items():
        assert torch.equal(value, resumed.net.state_dict()[key]), key
    pd.testing.assert_frame_equal(
        whole.history.drop(columns="wall_time"), resumed.history.drop(columns="wall_time")
    )


def test_resume_refuses_a_different_config(tiny_data, tmp_path):
    train(MLP(12, 8, 1, 3, seed=0), tiny_data, TrainConfig(steps=5), run_dir=tmp_path / "r")
    with pytest.raises(RunError, match="differs"):
        train(
            MLP(12, 8, 1, 3, seed=0),
            tiny_data,
            TrainConfig(steps=5, lr=0.1),
            run_dir=tmp_path / "r",
            resume=True,
        )


def test_divergence_stops_and_keeps_records(tiny_data, tmp_path):
    net = MLP(12, 16, 2, 3, seed=0)
    cfg = TrainConfig(
        optimizer="sgd", lr=1e6, momentum=0.0, loss="mse", steps=200, batch_size=40, eval_every=1
    )
    result = train(net, tiny_data, cfg, run_dir=tmp_path / "d")
    s = result.summary
    assert s["diverged"] is True and 1 <= s["diverged_step"] < 200
    h = result.history
    assert h["step"].max() == s["diverged_step"] - 1  # every record before the bad step, none after
    assert h["loss"].notna().all()
    run = load_run(tmp_path / "d")
    assert run.summary["diverged"] is True
    last = run.model()  # the last checkpoint holds finite weights
    assert all(torch.isfinite(p).all() for p in last.parameters())


def test_bn_eval_both_records_both_modes(tiny_data):
    net = MLP(12, 16, 2, 3, batchnorm=True, seed=0)
    result = train(net, tiny_data, TrainConfig(steps=12, batch_size=40, bn_eval="both", eval_every=6))
    h = result.history
    assert set(h["bn_mode"]) == {"running", "batch"}
    assert len(h) == 3 * 2 * 2  # steps 0, 6, 12 x train/test x two modes
    assert "test_accuracy_batch" in result.summary


def test_bn_eval_auto_is_the_default_and_records_both_modes_for_batch_norm_only(tiny_data):
    """SPEC 4: bn_eval="auto" = both for a BN net (the running statistics' lag shows beside the batch-statistics
    curve), running otherwise (a net without batch norm has one mode, "none")."""
    assert TrainConfig().bn_eval == "auto"
    bn = train(MLP(12, 16, 2, 3, batchnorm=True, seed=0), tiny_data, TrainConfig(steps=6, batch_size=40, eval_every=6))
    assert set(bn.history["bn_mode"]) == {"running", "batch"} and bn.summary["bn_modes"] == ["running", "batch"]
    assert "test_accuracy_batch" in bn.summary
    plain = train(MLP(12, 16, 2, 3, seed=0), tiny_data, TrainConfig(steps=6, batch_size=40, eval_every=6))
    assert set(plain.history["bn_mode"]) == {"none"} and "test_accuracy_batch" not in plain.summary
    running = train(MLP(12, 16, 2, 3, batchnorm=True, seed=0), tiny_data,
                    TrainConfig(steps=6, batch_size=40, eval_every=6, bn_eval="running"))
    assert set(running.history["bn_mode"]) == {"running"}


def test_float64_and_input_size_errors(tiny_data):
    net = MLP(12, 8, 1, 3, seed=0)
    r = train(net, tiny_data, TrainConfig(steps=3, dtype="float64"))
    assert next(r.net.parameters()).dtype == torch.float64
    with pytest.raises(ConfigError, match="input features"):
        train(MLP(5, 8, 1, 3), tiny_data, TrainConfig(steps=1))
    with pytest.raises(ConfigError, match="labels"):
        train(MLP(12, 8, 1, 2), tiny_data, TrainConfig(steps=1))


def test_epochs_count_steps(tiny_data):
    r = train(MLP(12, 8, 1, 3, seed=0), tiny_data, TrainConfig(epochs=2.5, batch_size=100, eval_every=1))
    assert r.summary["steps"] == math.ceil(2.5 * 3)
