"""Sweep planning, in-process: keys are RunSpec fields named as `netdyn train`'s flags, grids and
lists expand to the right RunSpecs, bad input is one ConfigError before anything runs, and the sweep folder's
bookkeeping (definition merge, a worker that cannot see the folder) keeps its promises."""

import json
import re
from pathlib import Path

import pytest

from netdyn.cli import main
from netdyn.errors import ConfigError, RunError
from netdyn.sweeps import (
    SweepDefinition,
    SweepFolder,
    load_sweep,
    load_sweep_file,
    parse_assignments,
    plan_points,
    sweep_keys,
)
from netdyn.sweeps.plan import MAX_NAME, point_name
from netdyn.sweeps.worker import DIVERGED, FAILED, OK, PointTask, run_point


def test_grid_maps_train_flags_to_run_spec_fields():
    points = plan_points(
        grid={"depth": [1, 3], "batch-size": ["32", "64"], "lr": [0.01]},
        fixed={"dataset": "blobs", "train_size": 200, "seed": 7, "model-seed": 3, "width": 8},
    )
    assert [p.name for p in points] == [
        "depth=1_batch_size=32_lr=0.01", "depth=1_batch_size=64_lr=0.01",
        "depth=3_batch_size=32_lr=0.01", "depth=3_batch_size=64_lr=0.01",
    ]
    by_name = {p.name: p for p in points}
    p = by_name["depth=3_batch_size=64_lr=0.01"]
    assert p.params == {"depth": 3, "batch_size": 64, "lr": 0.01}
    spec = p.spec
    assert (spec.model.depth, spec.model.width) == (3, 8)
    assert (spec.train.batch_size, spec.train.lr, spec.train.seed) == (64, 0.01, 7)
    assert (spec.data.name, spec.data.train_size, spec.data.seed) == ("blobs", 200, 7)  # data seed follows --seed
    assert spec.model.seed == 3  # --model-seed given: it wins over --seed
    assert spec.analysis is None
    # a width per layer (a list) fits depth 3 and not depth 1: that point is refused, with its name
    assert plan_points(grid={"depth": [3]}, fixed={"width": [8, 4, 2]})[0].spec.model.width == (8, 4, 2)
    with pytest.raises(ConfigError, match="depth=1.*width has 3 entries"):
        plan_points(grid={"depth": [3, 1]}, fixed={"width": [8, 4, 2]})


def test_grid_order_is_the_product_in_key_order():
    points = plan_points(grid={"depth": ["1", "2"], "seed": ["0", "1"]}, fixed={"dataset": "blobs"})
    assert [p.name for p in points] == ["depth=1_seed=0", "depth=1_seed=1", "depth=2_seed=0", "depth=2_seed=1"]
    assert [(p.spec.model.seed, p.spec.train.seed, p.spec.data.seed) for p in points][:2] == [(0, 0, 0), (1, 1, 1)]


def test_booleans_and_analyze():
    points = plan_points(grid={"batchnorm": ["true", "false"]}, fixed={"analyze": True, "basins": "no"})
    assert [p.spec.model.batchnorm for p in points] == [True, False]
    assert all(p.spec.analysis is not None and p.spec.analysis.basins is False for p in points)
    assert plan_points(grid={"analyze": [False]})[0].spec.analysis is None


def test_sweep_file_fixed_grid_and_points(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[fixed]\ndataset = "blobs"\nepochs = 2\n\n[grid]\nseed = [0, 1]\n\n'
        "[[points]]\ndepth = 1\nwidth = 16\n\n[[points]]\ndepth = 2\nwidth = [16, 8]\n"
    )
    definition = load_sweep_file(path)
    assert definition.fixed == {"dataset": "blobs", "epochs": 2}
    points = plan_points(definition)
    assert [p.name for p in points] == [
        "depth=1_width=16_seed=0", "depth=1_width=16_seed=1", "depth=2_width=16+8_seed=0", "depth=2_width=16+8_seed=1",
    ]
    assert points[2].spec.model.width == (16, 8) and points[2].params["width"] == "16,8"
    # flags override the file key by key
    flags = SweepDefinition(fixed=parse_assignments(["epochs=3"], False), grid=parse_assignments(["seed=5"], True))
    merged = plan_points(definition.merge(flags))
    assert {p.spec.train.seed for p in merged} == {5} and {p.spec.train.epochs for p in merged} == {3}


@pytest.mark.parametrize(
    "parts, words",
    [
        ({"grid": {"bogus": [1]}}, "unknown sweep key 'bogus'"),
        ({"grid": {}}, "the sweep is empty"),
        ({"grid": {"depth": []}}, "grid key depth has no values"),
        ({"grid": {"lr": ["abc"]}}, "lr"),
        ({"grid": {"depth": ["x"]}}, "depth.*'x'"),
        ({"grid": {"depth": ["0"]}}, "depth"),
        ({"grid": {"batchnorm": ["maybe"]}}, "takes true or false"),
        ({"grid": {"out": ["x"]}}, "not a point setting"),
        ({"grid": {"data-root": ["x"]}}, "netdyn sweep's own --data-root"),
        ({"grid": {"dataset": ["nope"]}}, "nope"),
        ({"points": [{"depth": 1}, {"depth": 1}]}, "appears twice"),
    ],
)
def test_bad_sweeps_are_one_config_error(parts, words):
    with pytest.raises(ConfigError, match=words) as info:
        plan_points(**parts)
    assert len(str(info.value).splitlines()) == 1


def test_bad_assignments_and_files(tmp_path):
    with pytest.raises(ConfigError, match="empty value"):
        parse_assignments(["depth=2,,4"], True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["depth"], True)
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\ndepth = 3\n")
    with pytest.raises(ConfigError, match="non-empty list"):
        load_sweep_file(bad)
    bad.write_text("[sweep]\ndepth = [3]\n")
    with pytest.raises(ConfigError, match="unknown table"):
        load_sweep_file(bad)
    bad.write_text("[grid\n")
    with pytest.raises(ConfigError, match="not a readable TOML"):
        load_sweep_file(bad)


def test_keys_are_train_flags():
    keys = sweep_keys()
    for key in ("depth", "width", "lr", "batch-size", "seed", "dataset", "train-size", "model-seed", "analyze"):
        assert key in keys
    for key in ("out", "resume", "quiet", "data-root", "download"):
        assert key not in keys


def test_point_names_are_safe_and_bounded():
    assert point_name({"eval_every": "log:5", "width": (8, 4)}) == "eval_every=log_5_width=8+4"
    assert point_name({"dataset": "a/b c"}) == "dataset=a_b_c"
    long = point_name({f"k{i}": "x" * 20 for i in range(10)})
    assert len(long) <= MAX_NAME and long != point_name({f"k{i}": "y" * 20 for i in range(10)})


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "s"
    for argv in (["--grid", "bogus=1"], ["--grid", "depth="], [], ["--grid", "depth=1", "--address", "h:1"],
                 ["--grid", "depth=1", "--workers", "0"]):
        assert main(["sweep", *argv, "--out", str(out), "--quiet"]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_folder_that_is_not_a_sweep(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a netdyn sweep folder"):
        SweepFolder(other).merged_definition(plan_points(grid={"depth": [1]}))
    with pytest.raises(RunError, match="not a netdyn sweep folder"):
        load_sweep(other)
    assert main(["sweep", "--grid", "depth=1", "--out", str(other), "--quiet"]) == 1
    assert "not a netdyn sweep folder" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_changed_point_is_refused_before_anything_is_written(tmp_path):
    folder = SweepFolder(tmp_path / "s")
    folder.write_definition(folder.merged_definition(plan_points(grid={"depth": [1, 2]}, fixed={"steps": 5})))
    before = folder.definition_path.read_text()
    with pytest.raises(ConfigError, match=r"depth=1 is already in .* \(train.steps: 5 there, 6 now\)"):
        folder.merged_definition(plan_points(grid={"depth": [1]}, fixed={"steps": 6}))
    # a grown grid keeps the old points and adds the new ones
    grown = folder.merged_definition(plan_points(grid={"depth": [1, 2, 3]}, fixed={"steps": 5}))
    assert [p["name"] for p in grown["points"]] == ["depth=1", "depth=2", "depth=3"]
    assert folder.definition_path.read_text() == before


def _task(folder, point, sweep_id, **kw):
    return PointTask(point.name, point.spec, str(folder.path.resolve()), sweep_id, **kw)


def test_worker_outcomes_in_process(tmp_path):
    """run_point itself: ok, a raised error, a divergence; and a worker that does not see the sweep folder ships the
    run folder back, which the driver writes (what a Ray worker on another machine does)."""
    tiny = {"dataset": "blobs", "train-size": 100, "test-size": 50, "width": 8, "depth": 1, "steps": 10,
            "eval-every": 5, "checkpoint-every": 5}
    points = plan_points(points=[
        {"lr": 0.01, "data-option": "n_features=16"},
        {"dataset": "mnist"},
        {"lr": 1e7, "optimizer": "sgd", "loss": "mse", "momentum": 0},
    ], fixed=tiny)
    folder = SweepFolder(tmp_path / "s")
    record = folder.merged_definition(points)
    folder.write_definition(record)
    ok, raised, diverged = (run_point(_task(folder, p, record["id"], root=str(tmp_path / "no-data"))) for p in points)
    assert (ok.status, ok.error, ok.files) == (OK, None, None)
    assert folder.complete(points[0])
    # the run folder records the data set's options with their defaults filled in: still this point's run
    assert set(json.loads((folder.run_dir(points[0].name) / "config.json").read_text())["data"]["options"]) > {
        "n_features"}
    assert [p["name"] for p in folder.merged_definition(points)["points"]] == [p.name for p in points]
    assert raised.status == FAILED and raised.error.startswith("DatasetError: mnist: the training files are missing")
    assert "Traceback" in raised.traceback and not folder.complete(points[1])
    assert diverged.status == DIVERGED and "non-finite at step" in diverged.error and folder.complete(points[2])
    for outcome in (raised, diverged):
        folder.record_outcome(outcome)
    assert folder.failure(points[1].name).startswith("DatasetError")
    assert folder.failure(points[2].name) is None
    assert not (folder.path / ".running").exists() or not list((folder.path / ".running").iterdir())

    elsewhere = SweepFolder(tmp_path / "driver")
    record = elsewhere.merged_definition(points[:1])
    elsewhere.write_definition(record)
    shipped = run_point(_task(elsewhere, points[0], "another-sweep-id"))
    assert shipped.status == OK and "config.json" in shipped.files and "summary.json" in shipped.files
    assert not elsewhere.run_dir(points[0].name).exists()
    elsewhere.record_outcome(shipped)
    assert elsewhere.complete(points[0])
    row = elsewhere.row(points[0])
    assert row["status"] == OK and row["run_dir"] == f"runs/{points[0].name}" and row["steps"] == 10
    assert json.loads((elsewhere.run_dir(points[0].name) / "config.json").read_text())["data"]["name"] == "blobs"


def test_the_readme_sweep_file_plans(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    path = tmp_path / "sweep.toml"
    path.write_text(re.search(r"```toml\n(.*?)\n```", readme, re.S).group(1))
    points = plan_points(load_sweep_file(path))
    assert [p.name for p in points] == ["depth=2_width=256_seed=0", "depth=2_width=256_seed=1",
                                        "depth=3_width=512+256+128_seed=0", "depth=3_width=512+256+128_seed=1"]
    assert all(p.spec.analysis is not None and p.spec.data.name == "mnist5k" for p in points)
    assert points[3].spec.model.widths == (512, 256, 128) and points[3].spec.train.seed == 1
