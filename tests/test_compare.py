"""netdyn.compare and `netdyn compare`: one report overlaying runs, with a legend of what differs."""

import re

import pytest

import netdyn
from netdyn.cli import main
from netdyn.comparison import differing_settings


def _train(path, width):
    spec = netdyn.RunSpec(
        model=netdyn.ModelSpec(width=width, depth=2, seed=0),
        data=netdyn.DataSpec("blobs"),
        train=netdyn.TrainConfig(steps=30, batch_size=50),
        analysis=netdyn.AnalysisConfig(quantities=("lmap", "lp", "rpd", "weight_basin"), repeats=2,
                                       basin_samples=100),
    )
    netdyn.run(spec, path)
    return netdyn.load_run(path)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    return _train(root / "narrow", 8), _train(root / "wide", 32)


def _table(page, caption):
    """The body rows of the table with this caption, as lists of cell texts."""
    match = re.search(rf"<caption>{re.escape(caption)}</caption>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert match, f"no table {caption!r}"
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", match.group(1))]


def _cell(value):
    return f"{value:.4f}"


@pytest.mark.filterwarnings("ignore:weight basin")
def test_compare_overlays_both_runs_and_names_the_width(two_runs, tmp_path):
    narrow, wide = two_runs
    report = netdyn.compare([narrow.path, wide], tmp_path / "cmp")
    assert report == tmp_path / "cmp" / "report.html"
    page = report.read_text()
    # the legend: the one differing setting, named in the table and in every run's label
    assert _table(page, "settings that differ") == [
        ["narrow (width=8)", str(narrow.path), "8"], ["wide (width=32)", str(wide.path), "32"]
    ]
    head = re.search(r"<caption>L-map test accuracy by layer</caption>\s*<thead>(.*?)</thead>", page, re.S)
    assert "narrow (width=8)" in head.group(1) and "wide (width=32)" in head.group(1)
    # each run's own numbers, side by side, layer by layer
    for caption, name in (("L-map test accuracy by layer", "lmap"), ("LP test accuracy by layer", "lp")):
        rows = _table(page, caption)
        for run, column in ((narrow, 1), (wide, 2)):
            table = run.read_table(name)
            expected = table[table["split"] == "test"].sort_values("layer")["accuracy"].tolist()
            assert [row[column] for row in rows] == [_cell(v) for v in expected]
    gradients = _table(page, "RPD gradient by layer")
    assert len(gradients) == len(narrow.read_table("rpd_summary"))
    headline = {row[0]: row[1:] for row in _table(page, "summary numbers by run")}
    assert headline["steps"] == ["30", "30"]
    assert "Weight-space basins" in page and "Sample-space basins" not in page  # only what was measured
    assert page.count("<img") == 4  # training curves, pruning, RPD, weight basins


def test_compare_command_writes_the_report(two_runs, tmp_path, capsys):
    narrow, wide = two_runs
    assert main(["compare", str(narrow.path), str(wide.path), "--out", str(tmp_path / "c")]) == 0
    assert f"report: {tmp_path / 'c' / 'report.html'}" in capsys.readouterr().out


def test_compare_refuses_a_folder_that_is_not_a_run_and_a_single_run(two_runs, tmp_path, capsys):
    narrow, _ = two_runs
    (tmp_path / "plain").mkdir()
    assert main(["compare", str(narrow.path), str(tmp_path / "plain"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a netdyn run folder" in err
    assert main(["compare", str(narrow.path), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least two run folders, got 1" in err
    assert not (tmp_path / "c").exists()


def test_differing_settings_counts_a_missing_key_as_a_difference():
    records = [{"model.width": 8, "train.lr": 0.1}, {"model.width": 8, "train.lr": 0.2, "model.cuts": "[]"}]
    assert differing_settings(records) == ["train.lr", "model.cuts"]
    assert differing_settings([{"a": [1, 2]}, {"a": [1, 2]}]) == []
