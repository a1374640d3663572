"""analyze() and `netdyn analyze`: every table, consistent with the single functions; files on disk; errors."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

import netdyn
from netdyn import MLP, AnalysisConfig, ConfigError, ModelError, RunError, TrainConfig, analyze, load_run, train
from netdyn.cli import main

SMALL = AnalysisConfig(basin_samples=80, repeats=2, eps=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0), max_samples=200, device="cpu")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "blobs"
    argv = ["train", "--dataset", "blobs", "--train-size", "300", "--test-size", "120", "--width", "24", "--depth",
            "4", "--batchnorm", "--epochs", "4", "--batch-size", "50", "--lr", "0.01", "--checkpoint-every", "log:3",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def test_analyze_tables_agree_with_the_functions(run_folder):
    run = load_run(run_folder)
    net, data = run.model(), run.dataset()
    result = analyze(net, data, SMALL)
    expected = {"network", "lmap", "lp", "rpd", "rpd_summary", "neuron_modes", "neuron_mode_census",
                "class_geometry", "class_geometry_samples", "local_fields", "local_fields_summary",
                "sample_basin", "weight_basin"}
    assert set(result.tables) == expected
    pd.testing.assert_frame_equal(result["lmap"], netdyn.lmap_accuracy(net, data))
    pd.testing.assert_frame_equal(result["rpd_summary"], netdyn.rpd_summary(net, data, max_samples=200))
    curve = netdyn.sample_basin(net, data, eps=list(SMALL.eps), repeats=2, n_samples=80).curve
    pd.testing.assert_frame_equal(result["sample_basin"], curve)
    acc = result["network"].set_index("split")["accuracy"]
    lmap_last = result["lmap"].query("layer == 4").set_index("split")["accuracy"]
    assert lmap_last["test"] == pytest.approx(acc["test"])  # the L-map at L-1 is the network
    assert result.summary["test_accuracy"] == pytest.approx(acc["test"])
    effective = result.summary["lmap_effective_earliest"]
    test = result["lmap"].query("split == 'test'").set_index("layer")["accuracy"]
    assert effective is not None and test[effective] >= acc["test"] - 0.005
    assert all(test[l] < acc["test"] - 0.005 for l in test.index if l < effective)
    # the per-sample geometry follows the paper's digit 5 only when there are more than 5 classes
    assert set(result["class_geometry_samples"]["label"]) == {0}
    no_basins = analyze(net, data, AnalysisConfig(basins=False, max_samples=200, device="cpu"))
    assert "sample_basin" not in no_basins.tables


def test_save_plot_and_html(run_folder, tmp_path):
    run = load_run(run_folder)
    result = analyze(run.model(), run.dataset(), SMALL)
    written = result.save(tmp_path)
    for name, table in result.tables.items():
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "metrics" / f"{name}.parquet"), table)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["summary"]["test_accuracy"] == pytest.approx(result.summary["test_accuracy"])
    assert len(written) == len(result.tables) + 1
    figures = result.plot(tmp_path)
    names = {p.stem for p in figures}
    assert {"layer_accuracy", "rpd", "neuron_modes", "class_geometry", "sample_basin", "weight_basin"} <= names
    assert all(p.stat().st_size > 1000 for p in figures)
    page = result.to_html(tmp_path / "report.html", history=run.history).read_text()
    assert page.count("data:image/png;base64,") >= 8
    assert not re.search(r"""(src|href)=["']https?://""", page)


def test_cli_analyze_all_checkpoints(run_folder, capsys):
    steps = load_run(run_folder).checkpoints()
    first = ["analyze", str(run_folder), "--eps", "0,1,4", "--basin-samples", "50", "--repeats", "1", "--quiet"]
    assert main(first) == 0
    assert (run_folder / "metrics" / "sample_basin.parquet").exists()
    assert (run_folder / "figures" / "weight_basin.png").exists()
    argv = ["analyze", str(run_folder), "--checkpoint", "all", "--no-basins", "--max-samples", "150", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "report.html" in out
    run = load_run(run_folder)
    lmap = run.read_table("lmap")
    assert sorted(set(lmap["step"])) == steps
    assert (run.path / "report.html").stat().st_size > 10_000
    assert (run.path / "figures" / "lmap_evolution.png").exists()
    # the new analysis replaced the old one whole: no basin table or figure from the first is left
    assert not (run.path / "metrics" / "sample_basin.parquet").exists()
    assert not (run.path / "figures" / "weight_basin.png").exists()
    assert "history" in run.table_names()
    # accuracy at step 0 (random init) is below the trained network's, read from the same table
    net_acc = run.read_table("network").query("split == 'train'").set_index("step")["accuracy"]
    assert net_acc[steps[-1]] > net_acc[steps[0]]


def test_train_analyze_writes_report(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--dataset", "xor", "--train-size", "200", "--test-size", "100", "--width", "16", "--depth", "2",
            "--epochs", "2", "--out", str(out), "--quiet", "--analyze", "--no-basins"]
    assert main(argv) == 0
    assert "report:" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "Training" in page and "LP and L-map" in page
    assert (out / "metrics" / "history.parquet").exists() and (out / "metrics" / "lp.parquet").exists()


def test_analyze_errors_are_clear(tmp_path, capsys, run_folder):
    # a folder that is no run
    assert main(["analyze", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "config.json" in err
    # a run folder without checkpoints
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps(load_run(run_folder).config))
    assert main(["analyze", str(empty), "--quiet"]) == 1
    assert "no checkpoints" in capsys.readouterr().err
    # a checkpoint whose shapes do not match its config
    bad = tmp_path / "bad"
    config = load_run(run_folder).config
    config["model"]["width"] = 25
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "checkpoints").mkdir()
    src = load_run(run_folder)
    (bad / "checkpoints" / "step_0.safetensors").write_bytes(src.checkpoint_path(0).read_bytes())
    with pytest.raises(ModelError, match="shape"):
        load_run(bad).model()
    assert main(["analyze", str(bad), "--quiet"]) == 1
    # a dataset whose input size does not match the model
    with pytest.raises(ConfigError, match="input features"):
        analyze(MLP(5, 4, 1, 4), src.dataset(), SMALL)
    with pytest.raises(RunError, match="no checkpoint at step"):
        src.model(12345)
    assert main(["analyze", str(run_folder), "--checkpoint", "soon", "--quiet"]) == 2


def test_from_sequential_network_is_analysable(make_blobs, fit_net):
    data = make_blobs(n_train=120, n_test=60, n_features=6, num_classes=3)
    seq = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3))
    net = fit_net(MLP.from_sequential(seq), data, steps=60)
    result = analyze(net, data, AnalysisConfig(basins=False, max_samples=100, classes=(0, 1, 2), device="cpu"))
    assert list(result["lmap"].query("split == 'train'")["layer"]) == [0, 1, 2]
    assert np.isfinite(result["rpd_summary"]["gradient"]).all()


def test_train_result_is_reproducible_through_analysis(tiny_data):
    cfg = TrainConfig(steps=20, batch_size=40, eval_every=10)
    a = train(MLP(12, 10, 2, 3, seed=0), tiny_data, cfg).net
    b = train(MLP(12, 10, 2, 3, seed=0), tiny_data, cfg).net
    config = AnalysisConfig(basin_samples=50, repeats=2, eps=(0.0, 1.0, 3.0), max_samples=100, device="cpu")
    ra, rb = analyze(a, tiny_data, config), analyze(b, tiny_data, config)
    for name in ra.tables:
        pd.testing.assert_frame_equal(ra[name], rb[name], obj=name)
