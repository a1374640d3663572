"""recommend: each criterion on a hand-made evidence grid with known answers, the rules' edge cases, and a real tiny
grid of blobs (linearly separable: every configuration is perfect and the L-map is effective from the input, so
the critical depth is the grid's smallest and the best configuration the smallest one)."""

import json
import math

import pandas as pd
import pytest

import netdyn
from netdyn.cli import main
from netdyn.errors import ConfigError, RunError
from netdyn.recommendation import (
    convergence_width,
    design_table,
    evidence_table,
    recommend,
    recommend_from_table,
    recommend_points,
    saturation_depth,
)
from netdyn.sweeps import SweepFolder, plan_points
from netdyn.sweeps.worker import PointTask, run_point

DEPTHS, WIDTHS = [1, 2, 4, 8], [16, 64, 256]


def _grid_rows() -> pd.DataFrame:
    """Two seeds per (depth, width). By construction:
    - accuracy peaks at depth 4 and grows with width: best = (4, 256), and (4, 64) within one seed std of it;
    - the L-map is effective before the output (l* = 3 < depth) from depth 4 on;
    - the sample basin grows with depth up to 4 and then by 3% (saturation at 4);
    - both basins change by more than 10% from width 16 to 64 and by at most 5% after (convergence at 64);
    - one extra point failed: counted, never averaged."""
    rows = []
    for depth in DEPTHS:
        for width in WIDTHS:
            for seed, noise in ((0, -0.002), (1, 0.002)):
                acc = 0.9 + 0.01 * min(depth, 4) - 0.005 * (depth > 4) + {16: 0.0, 64: 0.02, 256: 0.021}[width]
                sample = {1: 1.0, 2: 2.0, 4: 3.0, 8: 3.09}[depth] * {16: 0.7, 64: 1.0, 256: 1.04}[width]
                weight = {1: 2.0, 2: 1.5, 4: 1.2, 8: 1.19}[depth] * {16: 1.5, 64: 1.0, 256: 0.97}[width]
                rows.append({
                    "depth": depth, "width": width, "seed": seed, "status": "ok", "test_accuracy": acc + noise,
                    "analysis_lmap_effective_earliest": depth if depth < 4 else 3, "analysis_lp_effective_earliest": 1,
                    "analysis_sample_basin_size_half": sample, "analysis_weight_basin_size_half": weight,
                })
    rows.append({"depth": 4, "width": 256, "seed": 2, "status": "failed", "test_accuracy": math.nan})
    return pd.DataFrame(rows)


def test_criteria_on_a_grid_with_known_answers():
    rec = recommend_from_table(_grid_rows())
    s = rec.summary
    assert s["width_basins"] == 64 and s["width_basins_by_depth"] == {1: 64, 2: 64, 4: 64, 8: 64}
    assert s["reference_width"] == 64
    assert (s["depth_lmap"], s["depth_basin"], s["depth_accuracy"]) == (4, 4, 4)
    assert (s["best_depth"], s["best_width"]) == (4, 256)
    assert s["best_test_accuracy"] == pytest.approx(0.961) and s["best_seeds"] == 2
    assert s["best_test_accuracy_std"] == pytest.approx(0.004 / math.sqrt(2))
    assert s["indistinguishable_from_best"] == ["depth 4, width 64", "depth 4, width 256"]
    assert all(s["agreement"].values())
    evidence = rec.evidence.set_index(["depth", "width"])
    assert len(evidence) == 12 and evidence.loc[(4, 256), "n_points"] == 3 and evidence.loc[(4, 256), "n_ok"] == 2
    assert list(evidence.xs(64, level="width")["lmap_prunable"]) == [0.0, 0.0, 1.0, 1.0]
    assert evidence.loc[(2, 64), "test_accuracy_mean"] == pytest.approx(0.94)
    assert set(rec.criteria["criterion"]) == {"width_basins", "reference_width", "depth_lmap", "depth_basin",
                                              "depth_accuracy", "best"}
    assert len(rec.notes) == 4 and all(" agree " in n for n in rec.notes)


def test_sweeps_of_older_netdyn_hold_the_earliest_rule_under_the_old_name():
    new = recommend_from_table(_grid_rows())
    old_rows = _grid_rows().rename(columns={"analysis_lmap_effective_earliest": "analysis_lmap_effective_layer",
                                            "analysis_lp_effective_earliest": "analysis_lp_effective_layer"})
    old = recommend_from_table(old_rows)
    pd.testing.assert_frame_equal(old.evidence, new.evidence)
    assert old.summary == new.summary
    assert "analysis_lmap_effective_earliest" in old.points and "analysis_lmap_effective_layer" not in old.points
    assert evidence_table(old_rows)["lp_effective_earliest_median"].eq(1.0).all()
    # a table holding both names keeps today's column and leaves the old one alone
    both = _grid_rows().assign(analysis_lmap_effective_layer=0)
    pd.testing.assert_frame_equal(recommend_from_table(both).evidence, new.evidence)


def test_criteria_that_disagree_or_cannot_be_established():
    rows = _grid_rows()
    wide = rows["width"] == 256
    rows.loc[wide, "analysis_sample_basin_size_half"] *= 1.5  # basins never settle with width
    rows.loc[rows["depth"] == 8, "analysis_sample_basin_size_half"] *= 2  # nor with depth
    rows.loc[(rows["depth"] == 1) & wide, "test_accuracy"] = 0.99  # the best is the shallowest, widest net
    s = recommend_from_table(rows).summary
    assert s["width_basins"] is None and s["reference_width"] == 256
    assert s["depth_basin"] is None and s["depth_lmap"] == 4 and s["depth_accuracy"] == 1
    assert s["agreement"] == {"depth_lmap ~ depth_basin": None, "depth_lmap ~ depth_accuracy": False,
                              "depth_basin ~ depth_accuracy": None, "width_basins ~ best_width": None}


def test_rules_edge_cases():
    assert saturation_depth([1, 2, 4], [1.0, 2.0, 2.1]) == 2
    assert saturation_depth([1, 2, 4], [1.0, 2.0, 3.0]) is None  # still growing at the grid's edge
    assert saturation_depth([4], [3.0]) is None  # one depth confirms nothing
    assert saturation_depth([1, 2, 4], [math.nan, 2.0, 1.0]) == 2  # a basin that falls later is saturated
    assert convergence_width([16, 64, 256], [[1.0, 2.0, 2.05], [3.0, 1.0, 1.02]]) == 64
    assert convergence_width([16, 64, 256], [[1.0, 2.0, 2.05], [3.0, 1.0, 1.5]]) is None
    assert convergence_width([16, 64, 256], [[1.0, 2.0, 2.05], [math.nan] * 3]) == 64  # weight basins missing
    with pytest.raises(RunError, match="no point of the sweep finished ok"):
        recommend_from_table(pd.DataFrame([{"depth": 1, "width": 8, "status": "failed"}]))
    with pytest.raises(ConfigError, match="basin_rtol"):
        recommend_from_table(_grid_rows(), basin_rtol=1.5)


def test_design_table_refuses_sweeps_that_vary_more_than_depth_width_seed():
    same = plan_points(grid={"depth": [1, 2], "width": [4], "seed": [0, 1]}, fixed={"dataset": "blobs"})
    table = design_table(same)
    assert list(table.columns) == ["name", "depth", "width", "seed"] and len(table) == 4
    mixed = plan_points(grid={"depth": [1, 2], "lr": [0.1, 0.01]}, fixed={"dataset": "blobs"})
    with pytest.raises(ConfigError, match="differ only in depth, width and seed"):
        design_table(mixed)
    with pytest.raises(ConfigError, match="recommend sets depth"):
        recommend_points("blobs", [1], [4], 1, fixed={"depth": 2})


CHEAP = netdyn.AnalysisConfig(quantities=("lmap", "lp", "sample_basin", "weight_basin"), basin_samples=100,
                              repeats=2, eps=tuple(0.5 * i for i in range(13)), device="cpu")


@pytest.fixture(scope="module")
def blobs_sweep(tmp_path_factory):
    """A real 2 x 2 grid of blobs (one seed), each point run and analysed in this process by the sweep's own
    worker function, into a sweep folder."""
    points = recommend_points("blobs", [1, 2], [8, 32], 1,
                              {"steps": 60, "train-size": 200, "test-size": 100, "lr": 0.01}, analysis=CHEAP)
    folder = SweepFolder(tmp_path_factory.mktemp("recommend") / "sweep")
    record = folder.merged_definition(points)
    folder.write_definition(record)
    rows = []
    for point in points:
        outcome = run_point(PointTask(point.name, point.spec, str(folder.path.resolve()), record["id"]))
        folder.record_outcome(outcome)
        rows.append(folder.row(point, outcome.status, outcome.error))
    folder.write_table(rows, ["depth", "width", "seed"])
    return folder.path


def test_recommend_on_a_real_blobs_grid(blobs_sweep):
    rec = recommend(blobs_sweep)
    assert len(rec.evidence) == 4 and (rec.evidence["n_ok"] == 1).all()
    assert (rec.evidence["test_accuracy_mean"] >= 0.98).all()  # linearly separable
    assert (rec.evidence["lmap_effective_earliest_median"] < rec.evidence["depth"]).all()
    rules = {f"analysis_{t}_effective_{r}" for t in ("lmap", "lp") for r in ("earliest", "from")}
    assert rules <= set(rec.points.columns)  # the analysis summary holds both rules
    s = rec.summary
    assert s["depth_lmap"] == 1  # effective before the output already at the smallest depth
    assert s["best_depth"] == 1 and s["best_test_accuracy"] >= 0.98
    assert s["points"] == s["points_ok"] == 4
    assert rec.evidence["sample_basin_mean"].notna().all() and rec.evidence["weight_basin_mean"].notna().all()


def test_recommend_from_a_sweep_folder_writes_its_report(blobs_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["recommend", "--from", str(blobs_sweep), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 points ok" in printed and "depth_lmap       1 at width" in printed and "report:" in printed
    for name in ("report.html", "summary.json", "metrics/evidence.parquet", "metrics/criteria.parquet",
                 "metrics/points.parquet", "figures/recommend.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["depth_lmap"] == 1 and summary["depths"] == [1, 2] and summary["widths"] == [8, 32]
    html = (out / "report.html").read_text()
    assert "critical depth" in html.lower() and "data:image/png;base64" in html


def test_recommend_bad_input_is_one_line(tmp_path, capsys):
    cases = [
        (["--dataset", "blobs", "--from", str(tmp_path)], 2, "give one of them"),
        ([], 2, "give --dataset"),
        (["--from", str(tmp_path)], 1, "not a netdyn sweep folder"),
        (["--dataset", "nope"], 2, "nope"),
        (["--dataset", "blobs", "--depths", "0,2"], 2, "--depths"),
        (["--dataset", "blobs", "--set", "depth=3"], 2, "recommend sets depth"),
    ]
    for argv, status, words in cases:
        out = tmp_path / "never"
        assert main(["recommend", *argv, "--out", str(out), "--quiet"]) == status, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
        assert not out.exists()


@pytest.mark.slow
def test_recommend_runs_its_sweep_on_mnist5k(tmp_path, capsys):
    """End to end through the command line and the local process pool, on a 1,000-digit subset of mnist5k."""
    out = tmp_path / "rec"
    argv = ["recommend", "--dataset", "mnist5k", "--depths", "1,2", "--widths", "16,64", "--seeds", "2",
            "--set", "train-size=1000", "--set", "epochs=10", "--basin-samples", "200", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points_ok"] == 8 and summary["best_test_accuracy"] > 0.8
    evidence = pd.read_parquet(out / "metrics" / "evidence.parquet").set_index(["depth", "width"])
    assert len(evidence) == 4 and (evidence["n_ok"] == 2).all()
    assert (out / "sweep" / "sweep.parquet").is_file() and (out / "figures" / "recommend.png").is_file()
