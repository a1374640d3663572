"""Faults met when training into a run folder: --resume at a folder that is not a run, a corrupt history on
resume, a disk that fills up mid-run. Each ends in one line and exit status 1, and leaves the folder as it was
(or, for the full disk, with every completed file readable and no partial one)."""

import errno
import os

import pytest
import torch

import netdyn
from netdyn import MLP, RunError, TrainConfig, load_run, train
from netdyn.cli import main
from netdyn.errors import ModelError, StorageError


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _listing(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _argv(out, *extra):
    return [
        "train", "--dataset", "blobs", "--train-size", "40", "--test-size", "20", "--width", "4", "--depth", "2",
        "--steps", "6", "--batch-size", "20", "--eval-every", "2", "--checkpoint-every", "2", "--quiet",
        "--out", str(out), *extra,
    ]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: these faults must be found before."""

    def trip(*args, **kwargs):
        raise AssertionError("training started before the fault was found")

    monkeypatch.setattr("netdyn.training.loop.train", trip)


def test_resume_into_a_folder_that_is_not_a_run_writes_nothing(tmp_path, capsys, no_training):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    before = _listing(folder)
    assert main(_argv(folder, "--resume")) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "not a netdyn run folder" in err[0] and "nothing was written" in err[0]
    assert _listing(folder) == before


def test_a_new_run_into_a_folder_of_other_files_writes_nothing(tmp_path, capsys, no_training):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "report.html").write_text("<p>my own report</p>")
    before = _listing(folder)
    assert main(_argv(folder)) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "holds other files and no run" in err[0]
    assert _listing(folder) == before


def test_api_resume_into_a_folder_that_is_not_a_run_writes_nothing(tmp_path, tiny_data):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("buy milk")
    net = MLP(12, 4, 1, 3, seed=0)
    with pytest.raises(RunError, match="not a netdyn run folder"):
        train(net, tiny_data, TrainConfig(steps=2), run_dir=folder, resume=True)
    assert sorted(p.name for p in folder.iterdir()) == ["todo.txt"]


def test_a_new_run_into_a_finished_run_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_argv(out)) == 0
    capsys.readouterr()
    before = _listing(out)
    assert main(_argv(out)) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "already holds a run" in err[0]
    assert _listing(out) == before


def test_a_corrupt_history_on_resume_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"

    def stop(event, state):
        if event == "eval" and state.step == 2:
            raise KeyboardInterrupt

    spec = netdyn.RunSpec(
        model=netdyn.ModelSpec(width=4, depth=2, seed=0),
        data=netdyn.DataSpec("blobs", train_size=40, test_size=20),
        train=TrainConfig(steps=6, batch_size=20, eval_every=2, checkpoint_every=2),
    )
    with pytest.raises(KeyboardInterrupt):
        netdyn.run(spec, out, callbacks=(stop,))
    assert load_run(out).checkpoints() == [0, 2]
    (out / "metrics" / "history.parquet").write_bytes(b"garbage, not parquet")
    before = _listing(out)
    assert main(_argv(out, "--resume")) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "history.parquet" in err[0] and "corrupt" in err[0]
    assert _listing(out) == before
    with pytest.raises(RunError, match="history.parquet"):
        netdyn.run(spec, out, resume=True)


def test_a_full_disk_mid_run_is_one_line_and_keeps_what_was_complete(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_replace = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith("step_4.safetensors"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    assert main(_argv(out)) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "No space left on device" in err[0] and "step_4.safetensors" in err[0]
    run = load_run(out)
    assert run.checkpoints() == [0, 2] and not list(out.rglob("*.part"))
    assert run.history["step"].max() == 4  # the table written before the failed checkpoint is whole
    monkeypatch.setattr(os, "replace", real_replace)
    assert main(_argv(out, "--resume")) == 0  # and the run continues once there is room
    assert load_run(out).checkpoints() == [0, 2, 4, 6]


def test_a_full_disk_in_the_api_is_a_storage_error(tmp_path, tiny_data, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageError, match="config.json: No space left on device"):
        train(MLP(12, 4, 1, 3, seed=0), tiny_data, TrainConfig(steps=2), run_dir=tmp_path / "run")


def test_train_refuses_what_is_not_an_mlp_or_a_config(tiny_data):
    seq = torch.nn.Sequential(torch.nn.Linear(12, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with pytest.raises(ModelError, match="from_sequential"):
        train(seq, tiny_data, TrainConfig(steps=2))
    with pytest.raises(netdyn.ConfigError, match="TrainConfig"):
        train(MLP(12, 4, 1, 3, seed=0), tiny_data, {"steps": 2})


def test_a_failed_start_leaves_nothing_that_blocks_the_next_run(tiny_data, tmp_path):
    """A run that fails before its first record (here its first forward pass) removes the config.json it wrote,
    so the same call runs in the same folder afterwards; one that failed after recording keeps its folder."""
    net = MLP(12, 8, 2, 3, seed=0)

    def fail(module, args):
        raise RuntimeError("the device gave up")

    handle = net.register_forward_pre_hook(fail)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="gave up"):
        train(net, tiny_data, TrainConfig(steps=4), run_dir=out)
    assert not out.exists() or not any(out.iterdir())
    handle.remove()
    assert train(net, tiny_data, TrainConfig(steps=4), run_dir=out).summary["steps"] == 4

    def stop(event, state):
        raise KeyboardInterrupt

    later = tmp_path / "later"
    with pytest.raises(KeyboardInterrupt):
        train(MLP(12, 8, 2, 3, seed=0), tiny_data, TrainConfig(steps=4), run_dir=later, callbacks=[stop])
    assert load_run(later).checkpoints() == [0]  # recorded step 0: kept, and --resume goes on from it
