"""ConvNet, ResNet and ViT as runs: trained through RunSpec and ``netdyn train --arch``, recorded with the factory that
rebuilds them, resumed exactly, analysed and pruned from the folder; populations refused; bad input in one line."""

import json
import re

import pandas as pd
import pytest
import torch

from netdyn import ConfigError, ConvNet, DataSpec, ModelSpec, RunSpec, TrainConfig, load_run, run, train
from netdyn.cli import main
from netdyn.data import load_dataset
from netdyn.orchestration import run_population
from netdyn.training import train_population
from netdyn.training.core import batch_statistics
from netdyn.training.population import population_key

DIGITS = DataSpec("digits", train_size=200, test_size=100)
STEPS = TrainConfig(steps=12, batch_size=50, eval_every=4, checkpoint_every=4, lr=0.01)


def spec(**model):
    return RunSpec(model=ModelSpec(seed=0, **model), data=DIGITS, train=STEPS)


def test_a_convnet_run_records_its_factory_both_bn_evaluations_and_rebuilds_from_the_folder(tmp_path):
    result = run(spec(arch="convnet", width=3, depth=2, batchnorm=True), tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["model"]["arch"] == "convnet" and config["model"]["input_shape"] == [1, 8, 8]
    assert config["model_factory"] == "netdyn.models.vision:build" and config["input_shape"] == [1, 8, 8]
    assert config["model_args"] == {"arch": "convnet", "input_shape": [1, 8, 8], "num_classes": 10, "seed": 0,
                                    "depth": 2, "width": 3, "batchnorm": True, "pool": "avg"}
    history = result.train.history
    assert set(history["bn_mode"]) == {"running", "batch"} and history["step"].max() == 12
    folder = load_run(tmp_path / "r")
    assert folder.checkpoints() == [0, 4, 8, 12]
    assert all(p.suffix == ".safetensors" for p in folder.checkpoint_dir.iterdir())
    model = folder.model()
    assert isinstance(model, ConvNet) and folder.spec.model.arch == "convnet"
    for key, value in result.train.net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_batch_statistics_evaluation_leaves_the_running_statistics_as_they_were():
    torch.manual_seed(0)
    model = ConvNet(depth=1, width=2, batchnorm=True, image_size=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad(), batch_statistics(model):
        model(torch.randn(10, 1, 8, 8))
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


class Interrupt(Exception):
    pass


def test_a_resnet_run_resumed_ends_with_the_weights_and_history_of_an_uninterrupted_one(tmp_path):
    resnet = spec(arch="resnet", width=2, depth=2, blocks=1)
    whole = run(resnet, tmp_path / "whole")

    def interrupt(event, state):
        if event == "eval" and state.step == 8:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(resnet, tmp_path / "cut", callbacks=[interrupt])
    assert load_run(tmp_path / "cut").checkpoints()[-1] == 8
    resumed = run(resnet, tmp_path / "cut", resume=True)
    for key, value in whole.train.net.state_dict().items():
        assert torch.equal(resumed.train.net.state_dict()[key], value), key
    drop = [c for c in whole.train.history.columns if "time" in c]
    pd.testing.assert_frame_equal(resumed.train.history.drop(columns=drop), whole.train.history.drop(columns=drop))


def test_train_takes_a_vision_model_directly(tmp_path):
    data = load_dataset("digits", train_size=100, test_size=50)
    torch.manual_seed(0)
    result = train(ConvNet(depth=1, width=2, image_size=8), data, TrainConfig(steps=3, batch_size=50),
                   run_dir=tmp_path / "r")
    assert result.summary["steps"] == 3 and set(result.history["bn_mode"]) == {"none"}
    config = load_run(tmp_path / "r").config
    assert config["model"] is None and config["model_class"].endswith("ConvNet") and config["input_shape"] == [1, 8, 8]


def test_populations_refuse_other_architectures_in_one_line():
    data = load_dataset("digits", train_size=100, test_size=50)
    with pytest.raises(ConfigError, match="trains netdyn MLPs .*not a ConvNet") as info:
        train_population([ConvNet(depth=1, width=2, image_size=8)] * 2, data, STEPS)
    assert "\n" not in str(info.value)
    vit = spec(arch="vit", width=4, depth=1, patch=4, heads=2, mlp_dim=4)
    with pytest.raises(ConfigError, match="arch vit trains one run per spec"):
        run_population([vit, vit.replace(model={"seed": 1})])
    # so experiments and sweeps group each such member alone (one run per member)
    assert population_key(vit) != population_key(vit.replace(model={"seed": 1}))
    mlp = spec(width=4, depth=1)
    assert population_key(mlp) == population_key(mlp.replace(model={"seed": 1}))


def test_netdyn_train_arch_vit_then_analyze_and_convnet_prune(tmp_path, capsys):
    base = ["--dataset", "digits", "--train-size", "200", "--test-size", "100", "--steps", "8", "--batch-size", "50",
            "-q"]
    assert main(["train", "--arch", "vit", "--width", "8", "--depth", "1", "--patch", "4", "--heads", "2",
                 "--mlp-dim", "8", "--out", str(tmp_path / "vit"), *base]) == 0
    assert main(["analyze", str(tmp_path / "vit"), "--no-basins", "-q"]) == 0
    lmap = load_run(tmp_path / "vit").tables["lmap"]
    assert list(lmap["cut"].unique()) == ["x", "embed.add", "blocks.0"]
    assert main(["train", "--arch", "convnet", "--width", "3", "--depth", "2", "--out", str(tmp_path / "conv"),
                 *base]) == 0
    assert main(["prune", str(tmp_path / "conv"), "--out", str(tmp_path / "pruned"), "-q"]) == 0
    pruned = load_run(tmp_path / "pruned")
    assert pruned.config["model_factory"] == "netdyn.models.vision:build" and pruned.model()(
        torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--arch", "convnet", "--dataset", "mnist1d"], "take square images.*samples of shape \\(40,\\)"),
        (["--arch", "convnet", "--width", "0"], "width must be a whole number >= 1 for arch convnet, got 0"),
        (["--arch", "vit", "--patch", "3"], "the patch size 3 does not divide the 8-pixel image"),
        (["--arch", "vit", "--heads", "3"], "3 heads do not divide the width 64"),
        (["--arch", "resnet", "--residual", "pre"], "residual applies to arch mlp, not resnet"),
        (["--arch", "resnet", "--blocks", "1,2"], "blocks has 2 entries but the ResNet has 3 stages"),
        (["--arch", "resnet", "--blocks", "0"], "blocks must be a whole number >= 1, got 0"),
    ],
)
def test_netdyn_train_refuses_an_arch_it_cannot_build_in_one_line_writing_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--steps", "1", "--out", str(out), *flags]
    if "--dataset" in flags:
        args = ["train", "--steps", "1", "--out", str(out), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()
