"""The command line, run in-process through main(argv): exit statuses, one-line errors, run folders."""

import pytest

from netdyn import load_run
from netdyn.cli import main


def _one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


def test_unknown_flag_exits_2_with_one_line(capsys):
    assert main(["train", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--bogus" in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--depth", "0"], "depth"),
        (["train", "--optimizer", "rmsprop"], "optimizer"),
        (["train", "--dataset", "nope"], "nope"),
        (["train", "--activation", "swish"], "swish"),
        (["train", "--resume"], "--out"),
    ],
)
def test_bad_arguments_exit_2(argv, words, capsys, tmp_path):
    assert main([*argv, "--quiet"] if "--resume" not in argv else argv) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and words in err


def test_train_writes_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        "blobs",
        "--width",
        "16",
        "--depth",
        "2",
        "--epochs",
        "5",
        "--batch-size",
        "50",
        "--lr",
        "0.01",
        "--eval-every",
        "log:5",
        "--out",
        str(out),
        "--quiet",
        "--seed",
        "1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    run = load_run(out)
    assert run.config["data"]["name"] == "blobs"
    assert run.config["train"]["eval_every"] == "log:5" and run.config["train"]["seed"] == 1
    assert run.summary["train_accuracy"] > 0.9  # blobs are linearly separable
    # a finished folder is not overwritten; --resume on it changes nothing
    assert main(argv) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert load_run(out).checkpoints() == run.checkpoints()


def test_diverged_run_exits_3(tmp_path, capsys):
    argv = [
        "train",
        "--dataset",
        "blobs",
        "--width",
        "16",
        "--depth",
        "2",
        "--steps",
        "60",
        "--optimizer",
        "sgd",
        "--lr",
        "1e7",
        "--momentum",
        "0",
        "--loss",
        "mse",
        "--eval-every",
        "1",
        "--out",
        str(tmp_path / "d"),
        "--quiet",
    ]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert _one_line(err) and "diverged" in err
    assert load_run(tmp_path / "d").summary["diverged"] is True


def test_datasets_lists_every_name(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ["mnist", "fashion-mnist", "mnist5k", "digits", "mnist1d", "blobs", "xor", "rings"]:
        assert name in out


def test_help_lists_trainconfig_fields(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in [
        "--optimizer",
        "--lr",
        "--momentum",
        "--weight-decay",
        "--batch-size",
        "--epochs",
        "--steps",
        "--loss",
        "--seed",
        "--device",
        "--dtype",
        "--eval-every",
        "--checkpoint-every",
        "--bn-eval",
        "--width",
        "--depth",
        "--residual",
        "--batchnorm",
        "--init-scale",
        "--out",
        "--resume",
    ]:
        assert flag in out
