"""Run specs: portable (no machine path), picklable, JSON round trips; ``netdyn.run`` equals ``netdyn train``;
run folders written before specs existed still load."""

import json
import pickle
from dataclasses import replace

import pandas as pd
import pytest
import torch

import netdyn
from netdyn import MLP, AnalysisConfig, ConfigError, DataSpec, ModelSpec, RunSpec, TrainConfig, load_run
from netdyn.cli import main


def _spec(**train):
    return RunSpec(
        model=ModelSpec(width=16, depth=3, batchnorm=True, residual="pre", seed=4),
        data=DataSpec("blobs", train_size=120, test_size=60, seed=1, options={"n_features": 6}),
        train=TrainConfig(**{"steps": 30, "batch_size": 40, "lr": 0.01, "eval_every": "log:6", **train}),
        analysis=AnalysisConfig(basins=False, max_samples=100, layers=(0, 1, 2), eps=(0.0, 1.0)),
    )


def test_run_spec_survives_pickle_and_json():
    spec = _spec()
    assert pickle.loads(pickle.dumps(spec)) == spec
    text = json.dumps(spec.to_dict())
    assert RunSpec.from_dict(json.loads(text)) == spec
    assert RunSpec.from_dict(json.loads(text)).analysis.layers == (0, 1, 2)  # tuples come back as tuples
    assert "/" not in text  # no path of this machine


def test_spec_from_data_loaded_from_a_folder_holds_no_path(tmp_path):
    from netdyn.data import write_idx

    root = tmp_path / "files"
    root.mkdir()
    gen = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 4, 4), generator=gen).byte().numpy())
        write_idx(root / f"{prefix}-labels-idx1-ubyte", (torch.arange(n) % 10).byte().numpy())
    data = netdyn.load_dataset("mnist", root=root)
    spec = DataSpec.of(data)
    assert str(tmp_path) not in json.dumps(spec.to_dict())
    out = tmp_path / "run"
    netdyn.train(MLP(16, 8, 1, 10, seed=0), data, TrainConfig(steps=3), run_dir=out)
    assert str(tmp_path) not in (out / "config.json").read_text()
    assert torch.equal(load_run(out).dataset(root=root).x_train, data.x_train)


def test_run_equals_netdyn_train(tmp_path, capsys):
    spec = _spec()
    result = netdyn.run(spec, tmp_path / "api")
    argv = ["train", "--dataset", "blobs", "--train-size", "120", "--test-size", "60", "--data-seed", "1",
            "--data-option", "n_features=6", "--width", "16", "--depth", "3", "--batchnorm", "--residual", "pre",
            "--model-seed", "4", "--steps", "30", "--batch-size", "40", "--lr", "0.01", "--eval-every", "log:6",
            "--out", str(tmp_path / "cli"), "--quiet"]
    assert main(argv) == 0
    api, cli = load_run(tmp_path / "api"), load_run(tmp_path / "cli")
    pd.testing.assert_frame_equal(api.history.drop(columns="wall_time"), cli.history.drop(columns="wall_time"))
    assert len(api.history) > 0
    pd.testing.assert_frame_equal(
        result.train.history.drop(columns="wall_time"), api.history.drop(columns="wall_time")
    )
    # the folder holds the spec, with the model's sizes taken from the data
    assert api.spec.model == ModelSpec(width=16, depth=3, batchnorm=True, residual="pre", seed=4, in_features=6,
                                       num_classes=4)
    # the data as loaded: the spec's options with the data set's defaults filled in
    assert api.spec.data == DataSpec("blobs", train_size=120, test_size=60, seed=1,
                                     options={"n_features": 6, "n_classes": 4, "noise": 1.0})
    assert api.spec.train == spec.train
    # so the same data loaded again is recognised on resume, through the API as through netdyn.run
    netdyn.train(api.model(), api.dataset(), spec.train, run_dir=tmp_path / "api", resume=True)
    # the analysis the spec asked for is in the folder
    assert result.analysis is not None and (tmp_path / "api" / "report.html").is_file()
    assert set(result.analysis.tables["lmap"]["layer"]) == {0, 1, 2}
    assert result.summary["analysis_test_accuracy"] == pytest.approx(result.train.summary["test_accuracy"])


def test_run_spec_rejects_what_it_cannot_be():
    with pytest.raises(ConfigError):
        RunSpec(model={"width": 3})
    with pytest.raises(ConfigError, match="unknown model field"):
        RunSpec.from_dict({"model": {"widht": 3}, "data": {}, "train": {}})
    with pytest.raises(ConfigError, match="lacks"):
        RunSpec.from_dict({"model": {}})
    with pytest.raises(ConfigError, match="unknown data set"):
        DataSpec("cifar")
    spec = _spec().replace(train={"lr": 0.1}, analysis=None)
    assert spec.train.lr == 0.1 and spec.analysis is None and spec.model == _spec().model
    with pytest.raises(ConfigError, match="no part"):
        _spec().replace(optimizer="sgd")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 2.5},
        {"depth": True},
        {"bn_eps": -1e-5},
        {"num_classes": 1},
        {"width": (8, 8)},
        {"init_scale": float("nan")},
    ],
)
def test_model_spec_refuses_what_the_cli_would(kwargs):
    with pytest.raises(ConfigError):
        ModelSpec(**{"depth": 3, **kwargs})


def test_a_folder_written_before_specs_still_loads(tmp_path):
    """config.json of the first release: the model as MLP's keyword arguments (residual False, no seed) and the
    data with an absolute root."""
    data = netdyn.load_dataset("blobs", n_features=12, n_classes=3)
    net = MLP(12, 8, 2, 3, seed=0)
    out = tmp_path / "old"
    netdyn.train(net, data, TrainConfig(steps=4), run_dir=out)
    config = json.loads((out / "config.json").read_text())
    config["model"] = {"in_features": 12, "width": 8, "depth": 2, "num_classes": 3, "activation": "relu",
                       "residual": False, "batchnorm": False, "bias": True, "init": "default", "init_scale": 1.0,
                       "bn_eps": 1e-05, "bn_momentum": 0.1}
    config["data"] = {"name": "blobs", "train_size": None, "test_size": None, "normalize": "unit", "seed": 0,
                      "root": "/nowhere/on/this/machine", "n_features": 12, "n_classes": 3, "noise": 1.0}
    (out / "config.json").write_text(json.dumps(config))
    run = load_run(out)
    rebuilt = run.model()
    assert rebuilt.spec == replace(net.spec, seed=None)
    for key, value in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    assert run.spec.model.residual == "none" and run.spec.data.options["n_features"] == 12
    assert run.dataset().n_features == 12  # the recorded root is gone: the data are rebuilt anyway
    resumed = netdyn.train(MLP(12, 8, 2, 3, seed=0), data, TrainConfig(steps=4), run_dir=out, resume=True)
    assert resumed.summary["steps"] == 4


def test_resume_accepts_the_data_spec_as_given_or_as_loaded():
    from netdyn.training.loop import same_record

    given = DataSpec("blobs", options={"n_features": 6}).to_dict()
    loaded = DataSpec("blobs", options={"n_features": 6, "n_classes": 4, "noise": 1.0}).to_dict()
    assert same_record("data", given, loaded) and same_record("data", loaded, given)
    assert not same_record("data", given, DataSpec("blobs", options={"n_features": 8}).to_dict())
    assert not same_record("data", given, DataSpec("blobs", seed=1, options={"n_features": 6}).to_dict())


def test_run_population_gives_what_run_gives(tmp_path):
    from netdyn import run_population

    base = _spec(dtype="float64")
    specs = [base.replace(model={"seed": s}, train={"seed": s, "lr": lr}) for s, lr in ((0, 0.01), (1, 0.003))]
    together = run_population(specs, [tmp_path / "p0", tmp_path / "p1"])
    for i, spec in enumerate(specs):
        alone = netdyn.run(spec, tmp_path / f"a{i}")
        pd.testing.assert_frame_equal(
            together[i].train.history.drop(columns="wall_time"), alone.train.history.drop(columns="wall_time"),
            rtol=1e-9, atol=1e-12,
        )
        assert load_run(tmp_path / f"p{i}").spec == load_run(tmp_path / f"a{i}").spec
        assert (tmp_path / f"p{i}" / "report.html").is_file()  # the spec's analysis ran for each member
    with pytest.raises(ConfigError, match="differ in more"):
        run_population([base, base.replace(model={"width": 8})], [tmp_path / "x0", tmp_path / "x1"])
