"""Saved analyses read back: load_analysis and Run.analysis() give what Analysis.save wrote."""

import json

import pandas as pd
import pytest

import netdyn
from netdyn import AnalysisConfig, RunError


def _blobs():
    return netdyn.load_dataset("blobs", train_size=120, test_size=60)


def test_load_analysis_returns_what_save_wrote(tmp_path):
    data = _blobs()
    net = netdyn.MLP(data.x_train.shape[1], 8, 2, data.num_classes, seed=0)
    config = AnalysisConfig(basins=False, max_samples=60, device="cpu")
    saved = netdyn.analyze(net, data, config)
    saved.save(tmp_path / "a")
    loaded = netdyn.load_analysis(tmp_path / "a")
    assert loaded.config == config and loaded.summary == saved.summary
    assert sorted(loaded.tables) == sorted(saved.tables)
    for name, table in saved.tables.items():
        pd.testing.assert_frame_equal(loaded.tables[name], table, check_dtype=False)
    # a record written before analysis.json listed its tables: the registry's tables that are there
    record = json.loads((tmp_path / "a" / "analysis.json").read_text())
    del record["tables"]
    (tmp_path / "a" / "analysis.json").write_text(json.dumps(record))
    assert sorted(netdyn.load_analysis(tmp_path / "a").tables) == sorted(saved.tables)
    with pytest.raises(RunError, match="holds no saved analysis"):
        netdyn.load_analysis(tmp_path / "nothing")
    (tmp_path / "a" / "analysis.json").write_text('{"config": {"bins": "many"}}')
    with pytest.raises(RunError, match="corrupt"):
        netdyn.load_analysis(tmp_path / "a")


def test_a_run_reads_its_own_analysis_back_without_its_history(tmp_path):
    spec = netdyn.RunSpec(
        model=netdyn.ModelSpec(width=8, depth=2, seed=0),
        data=netdyn.DataSpec("blobs", train_size=120, test_size=60),
        train=netdyn.TrainConfig(steps=20),
        analysis=AnalysisConfig(basins=False, max_samples=60),
    )
    result = netdyn.run(spec, tmp_path / "run")
    run = netdyn.load_run(tmp_path / "run")
    analysis = run.analysis()
    assert "history" in run.table_names() and "history" not in analysis.tables
    assert sorted(analysis.tables) == sorted(result.analysis.tables)
    assert run.spec.train == spec.train
