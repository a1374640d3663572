"""train_population: each member equals its own train run (weights and history), a diverging member is flagged
alone, a resumed population equals an uninterrupted one; and a train run killed at random moments resumes to
the uninterrupted weights and history."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from netdyn import MLP, TrainConfig, load_run, train, train_population
from netdyn.errors import ConfigError


def _configs(optimizer, **common):
    base = dict(optimizer=optimizer, steps=36, batch_size=50, dtype="float64", eval_every=6, checkpoint_every=12,
                **common)
    return [
        TrainConfig(seed=0, lr=0.01, weight_decay=0.0, momentum=0.9, **base),
        TrainConfig(seed=1, lr=0.003, weight_decay=0.01, momentum=0.5, **base),
        TrainConfig(seed=2, lr=0.02, weight_decay=0.001, momentum=0.0, **base),
    ]


def _nets(**arch):
    return [MLP(12, 16, 3, 3, seed=s, init_scale=scale, **arch) for s, scale in ((0, 1.0), (1, 0.8), (2, 1.2))]


def _same_history(a, b):
    pd.testing.assert_frame_equal(a.drop(columns="wall_time"), b.drop(columns="wall_time"), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "optimizer, arch",
    [("sgd", {}), ("adam", {"batchnorm": True}), ("adamw", {"batchnorm": True, "residual": "pre"})],
)
def test_each_member_is_its_own_train_run(tiny_data, tmp_path, optimizer, arch):
    configs = _configs(optimizer, bn_eval="both" if arch.get("batchnorm") else "running")
    results = train_population(_nets(**arch), tiny_data, configs, run_dirs=[tmp_path / f"m{i}" for i in range(3)])
    for i, (net, config, result) in enumerate(zip(_nets(**arch), configs, results, strict=True)):
        alone = train(net, tiny_data, config, run_dir=tmp_path / f"alone{i}")
        for key, value in alone.net.state_dict().items():
            torch.testing.assert_close(result.net.state_dict()[key], value, rtol=1e-5, atol=1e-8, msg=key)
        _same_history(result.history, alone.history)
        folder, reference = load_run(tmp_path / f"m{i}"), load_run(tmp_path / f"alone{i}")
        assert folder.checkpoints() == reference.checkpoints()
        _same_history(folder.history, reference.history)
        assert result.summary["population_size"] == 3 and result.summary["steps"] == 36
        # a member's checkpoint is a train checkpoint: the folder's model is the member's net
        member = {k: v.cpu() for k, v in result.net.state_dict().items()}
        torch.testing.assert_close(folder.model().state_dict(), member)


def test_a_diverging_member_is_flagged_while_the_others_finish(tiny_data, tmp_path):
    base = dict(optimizer="sgd", momentum=0.0, loss="mse", steps=40, batch_size=40, dtype="float64", eval_every=5)
    configs = [TrainConfig(lr=0.05, seed=0, **base), TrainConfig(lr=1e7, seed=1, **base),
               TrainConfig(lr=0.02, seed=2, **base)]
    nets = [MLP(12, 16, 2, 3, seed=s) for s in range(3)]
    results = train_population(nets, tiny_data, configs, run_dirs=[tmp_path / f"m{i}" for i in range(3)])
    bad = results[1]
    assert bad.diverged and bad.summary["diverged_step"] is not None
    assert bad.history["step"].max() < 40 and load_run(tmp_path / "m1").summary["diverged"] is True
    alone = train(MLP(12, 16, 2, 3, seed=1), tiny_data, configs[1])
    assert alone.summary["diverged_step"] == bad.summary["diverged_step"]
    for i in (0, 2):
        assert not results[i].diverged and results[i].summary["steps"] == 40
        reference = train(MLP(12, 16, 2, 3, seed=i), tiny_data, configs[i])
        _same_history(results[i].history, reference.history)
        for key, value in reference.net.state_dict().items():
            torch.testing.assert_close(results[i].net.state_dict()[key], value, rtol=1e-5, atol=1e-8)


def _cut(folder, step):
    """A folder as a kill right after its checkpoint at ``step`` leaves it."""
    for path in (folder / "checkpoints").iterdir():
        if int(path.stem.split("_")[1]) > step:
            path.unlink()
    (folder / "summary.json").unlink()
    history = pd.read_parquet(folder / "metrics" / "history.parquet")
    history[history["step"] <= step + 3].to_parquet(folder / "metrics" / "history.parquet")  # rows past it too


def test_a_resumed_population_equals_an_uninterrupted_one(tiny_data, tmp_path):
    configs = _configs("adam", bn_eval="both")
    whole = train_population(_nets(batchnorm=True), tiny_data, configs, run_dirs=[tmp_path / f"w{i}" for i in range(3)])
    for i in range(3):
        shutil.copytree(tmp_path / f"w{i}", tmp_path / f"c{i}")
        _cut(tmp_path / f"c{i}", 24)
    with pytest.raises(Exception, match="already holds a run"):
        train_population(_nets(batchnorm=True), tiny_data, configs, run_dirs=[tmp_path / f"c{i}" for i in range(3)])
    resumed = train_population(
        _nets(batchnorm=True), tiny_data, configs, run_dirs=[tmp_path / f"c{i}" for i in range(3)], resume=True
    )
    for a, b, i in zip(whole, resumed, range(3), strict=True):
        for key, value in a.net.state_dict().items():
            assert torch.equal(b.net.state_dict()[key], value), key
        _same_history(load_run(tmp_path / f"c{i}").history, a.history)


def test_members_must_share_what_a_population_shares(tiny_data):
    with pytest.raises(ConfigError, match="batch_size"):
        train_population(_nets(), tiny_data, [TrainConfig(steps=5, batch_size=b) for b in (40, 40, 50)])
    with pytest.raises(ConfigError, match="width"):
        train_population([MLP(12, 16, 2, 3), MLP(12, 8, 2, 3)], tiny_data, TrainConfig(steps=5))


def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_run(tmp_path):
    """SIGKILL a `netdyn train` subprocess several times at random moments, resume it each time: the weights and
    the history table (wall times aside) end as those of an uninterrupted run."""
    argv = [sys.executable, "-m", "netdyn", "train", "--dataset", "blobs", "--train-size", "400", "--test-size",
            "100", "--width", "32", "--depth", "3", "--batchnorm", "--steps", "1500", "--batch-size", "20",
            "--eval-every", "log:40", "--checkpoint-every", "50", "--dtype", "float64", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "whole"
    started = time.perf_counter()
    subprocess.run([*argv, "--out", str(reference)], check=True, env=env, capture_output=True)
    duration = time.perf_counter() - started  # imports (about a third) and training
    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for attempt in range(8):
        command = [*argv, "--out", str(out)] + (["--resume"] if attempt else [])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.2, 0.45) * duration)  # each attempt dies with at most ~15 % of the training done
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 2, "the run finished before it could be killed twice: make it longer"
    subprocess.run([*argv, "--out", str(out), "--resume"], check=True, env=env, capture_output=True)
    whole, killed = load_run(reference), load_run(out)
    assert killed.summary["steps"] == 1500 and killed.checkpoints() == whole.checkpoints()
    for key, value in whole.model().state_dict().items():
        assert torch.equal(killed.model().state_dict()[key], value), key
    _same_history(killed.history, whole.history)
