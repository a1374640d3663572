"""Faults met when analysing a run folder: a diverged run, an unwritable or blocked folder, a corrupt history, a
disk that fills up. Each ends in one line and the right exit status, and nothing is computed that cannot be saved.
"""

import errno
import importlib
import os
import shutil
import warnings

import pytest
import torch

import netdyn
from netdyn import ConfigError, RunError, analyze_checkpoints, load_run
from netdyn.cli import main
from netdyn.errors import StorageError


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny run (blobs, depth 2, 4 classes) with checkpoints at steps 0, 2 and 4, built once."""
    folder = tmp_path_factory.mktemp("analysis-errors") / "run"
    spec = netdyn.RunSpec(
        model=netdyn.ModelSpec(width=4, depth=2, seed=0),
        data=netdyn.DataSpec("blobs", train_size=40, test_size=20),
        train=netdyn.TrainConfig(steps=4, batch_size=20, eval_every=2, checkpoint_every=2),
    )
    netdyn.run(spec, folder)
    return folder


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def _diverge(folder, finite_up_to=4, bad_steps=(6,)):
    """Make ``folder`` look like a run that diverged: checkpoints after ``finite_up_to`` hold NaN weights."""
    run = load_run(folder)
    net = run.model(finite_up_to)
    with torch.no_grad():
        next(net.parameters())[0, 0] = float("nan")
    for step in bad_steps:
        run.save_checkpoint(step, net)
    summary = {**run.summary, "diverged": True, "diverged_step": bad_steps[0], "checkpoints": run.checkpoints()}
    run.write_summary(summary)
    return run


def _trip(monkeypatch):
    """Fail the test if the analysis starts (it must be refused before)."""

    def trip(*args, **kwargs):
        raise AssertionError("the analysis was computed before the fault was found")

    # the module, not the function netdyn.analysis re-exports under the same name
    monkeypatch.setattr(importlib.import_module("netdyn.orchestration.analyses"), "analyze_checkpoints", trip)


def test_a_diverged_run_analyses_its_last_finite_checkpoint_and_says_so(run_copy, capsys):
    _diverge(run_copy)
    assert main(["analyze", str(run_copy), "--no-basins", "--quiet", "--quantities", "lmap"]) == 0
    captured = capsys.readouterr()
    note = _lines(captured.err)
    assert len(note) == 1 and "diverged at step 6" in note[0] and "checkpoint 4" in note[0]
    assert load_run(run_copy).read_table("lmap")["step"].unique().tolist() == [4]
    assert (run_copy / "report.html").is_file()


def test_all_checkpoints_of_a_diverged_run_means_the_finite_ones(run_copy, capsys):
    _diverge(run_copy)
    argv = ["analyze", str(run_copy), "--checkpoint", "all", "--no-basins", "--quiet", "--quantities", "lmap"]
    assert main(argv) == 0
    note = _lines(capsys.readouterr().err)
    assert len(note) == 1 and "[0, 2, 4]" in note[0] and "[6]" in note[0]
    assert sorted(load_run(run_copy).read_table("lmap")["step"].unique().tolist()) == [0, 2, 4]


def test_asking_for_a_non_finite_checkpoint_names_those_that_can_be_analysed(run_copy, capsys, monkeypatch):
    _diverge(run_copy)
    _trip(monkeypatch)
    assert main(["analyze", str(run_copy), "--checkpoint", "6", "--quiet"]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "[6]" in err[0] and "[0, 2, 4]" in err[0] and "diverged at step 6" in err[0]


def test_a_run_without_any_finite_checkpoint_is_one_line_exit_1(run_copy, capsys, monkeypatch):
    run = _diverge(run_copy)
    for step in (0, 2, 4):
        run.checkpoint_path(step).unlink()
    _trip(monkeypatch)
    assert main(["analyze", str(run_copy), "--quiet"]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "no checkpoint" in err[0] and "finite" in err[0]


def test_analyze_checkpoints_api_skips_or_refuses_non_finite_checkpoints(run_copy, tiny_run):
    _diverge(run_copy)
    config = netdyn.AnalysisConfig(basins=False, quantities=("lmap",))
    with pytest.warns(UserWarning, match="checkpoint 4"):
        result = analyze_checkpoints(run_copy, "last", config)
    assert result.summary["steps"] == [4]
    with pytest.raises(ConfigError, match=r"\[0, 2, 4\]"):
        analyze_checkpoints(run_copy, [6], config)
    with pytest.raises(ConfigError, match="no checkpoint at step 5"):
        analyze_checkpoints(run_copy, [5], config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a run that did not diverge warns of nothing
        assert analyze_checkpoints(tiny_run, "last", config).summary["steps"] == [4]


def test_an_unwritable_tables_folder_is_found_before_the_analysis(run_copy, capsys, monkeypatch):
    """A read-only metrics/ (not the run folder itself): refused before anything is computed. As root, chmod does
    not bind, so the folder is reported unwritable by the OS check netdyn consults (os.access)."""
    metrics = run_copy / "metrics"
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, *a, **k: False if mode & os.W_OK and str(p) == str(metrics) else real(p, mode)
        )
    else:
        metrics.chmod(0o555)
    before = sorted(p.name for p in metrics.iterdir())
    _trip(monkeypatch)
    try:
        assert main(["analyze", str(run_copy), "--quiet"]) == 1
    finally:
        metrics.chmod(0o755)
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "read-only" in err[0] and str(metrics) in err[0]
    assert sorted(p.name for p in metrics.iterdir()) == before


def test_a_file_where_the_figures_folder_belongs_is_found_before_the_analysis(run_copy, capsys, monkeypatch):
    (run_copy / "figures").write_text("not a folder")
    _trip(monkeypatch)
    assert main(["analyze", str(run_copy), "--quiet"]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "figures" in err[0] and "is a file" in err[0]


def test_a_corrupt_history_is_found_before_the_analysis(run_copy, capsys, monkeypatch):
    history = run_copy / "metrics" / "history.parquet"
    history.write_bytes(b"PAR1 this is not a parquet file")
    _trip(monkeypatch)
    assert main(["analyze", str(run_copy), "--quiet"]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "history.parquet" in err[0] and "corrupt" in err[0]
    with pytest.raises(RunError, match="history.parquet"):
        load_run(run_copy).read_table("history")


def test_a_full_disk_while_saving_the_analysis_is_one_line_and_leaves_no_partial_file(run_copy, capsys, monkeypatch):
    real_replace = os.replace

    def full(src, dst, *args, **kwargs):
        if str(dst).endswith("report.html"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    assert main(["analyze", str(run_copy), "--no-basins", "--quiet", "--quantities", "lmap"]) == 1
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "No space left on device" in err[0] and "report.html" in err[0]
    assert not list(run_copy.rglob("*.part"))
    assert not (run_copy / "report.html").exists()


def test_storage_errors_are_netdyn_errors_and_os_errors():
    assert issubclass(StorageError, netdyn.NetdynError) and issubclass(StorageError, OSError)
