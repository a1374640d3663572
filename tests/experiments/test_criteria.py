"""Criteria and computed verdicts (SPEC 6.1): rules on known values, per-seed evaluation with the reasons a seed
cannot be evaluated, the two-thirds rule, revised and running-only criteria; then an experiment run through the
CLI with criteria of its own: summary.json, the report, ``--table`` and the thread setting."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from netdyn.cli import main
from netdyn.errors import ConfigError
from netdyn.experiments import CannotEvaluate, Criterion, verdict_table
from netdyn.experiments.criteria import CriterionResult, SeedResult, evaluate_criteria, verdict, verdict_line


def _value(values):
    """A measure returning ``values[seed]`` (an exception instance is raised)."""

    def measure(tables, config, seed):
        value = values[seed]
        if isinstance(value, Exception):
            raise value
        return value

    return measure


def _criterion(name="c", rule=">=", threshold=0.5, values=(1.0, 1.0, 1.0), **extra):
    return Criterion(name, "Fig. 0: a claim", "a number", rule, threshold, _value(values), **extra)


@pytest.mark.parametrize(
    "rule, threshold, passing, failing",
    [
        (">=", 0.5, [0.5, 2], [0.49]),
        (">", 0.5, [0.51], [0.5]),
        ("<=", 0.0, [0, -1], [0.1]),
        ("<", 0.0, [-0.1], [0]),
        ("between", (0.1, 0.3), [0.1, 0.2, 0.3], [0.09, 0.31]),
        ("true", None, [True], [False]),
        ("false", None, [False], [True]),
    ],
)
def test_rules_on_known_values(rule, threshold, passing, failing):
    c = _criterion(rule=rule, threshold=threshold)
    assert all(c.check(v) for v in passing) and not any(c.check(v) for v in failing)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"rule": "~"}, "rule '~'"),
        ({"rule": "between", "threshold": 0.3}, "(low, high)"),
        ({"rule": "between", "threshold": (0.3, 0.1)}, "(low, high)"),
        ({"rule": "true", "threshold": 1.0}, "takes no threshold"),
        ({"rule": ">=", "threshold": None}, "needs a number"),
        ({"since": "yesterday"}, "YYYY-MM-DD"),
        ({"revises": "a"}, "needs its date"),
        ({"name": "Bad Name"}, "snake_case"),
    ],
)
def test_a_malformed_criterion_is_refused(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        _criterion(**changes)


def test_each_seed_gets_a_value_or_the_reason_it_cannot_be_evaluated():
    c = _criterion(values=[0.7, float("nan"), CannotEvaluate("the loss never rises"), None, 0.2])
    results = evaluate_criteria([c], {}, None, range(5))[0]
    assert [s.value for s in results.seeds] == [0.7, None, None, None, 0.2]
    assert [s.passes for s in results.seeds] == [True, False, False, False, False]
    assert [s.reason for s in results.seeds] == [None, "the value is NaN", "the loss never rises", "no value", None]
    assert results.seeds_passing == 1 and not results.holds
    assert results.spread() == {"median": pytest.approx(0.45), "min": 0.2, "max": 0.7}
    entry = results.to_dict()
    assert entry["values"] == [0.7, None, None, None, 0.2] and entry["seeds_passing"] == 1 and entry["n_seeds"] == 5
    assert entry["decides"] and not entry["running_only"] and entry["rule_text"] == ">= 0.5"
    json.dumps(entry)  # summary.json takes it as it is


@pytest.mark.parametrize("passes, holds", [([1, 1], True), ([1, 0], False), ([1, 1, 0], True), ([1, 0, 0], False),
                                           ([1], True), ([0], False)])  # fmt: skip
def test_a_criterion_holds_in_two_thirds_of_the_seeds(passes, holds):
    seeds = tuple(SeedResult(i, float(p), bool(p)) for i, p in enumerate(passes))
    assert CriterionResult(_criterion(), seeds).holds is holds


def test_the_verdict_follows_one_rule_and_only_first_criteria_decide():
    good, bad = _criterion("a", values=[1, 1, 0]), _criterion("b", values=[0, 0, 1])
    revised = _criterion("b_revised", values=[1, 1, 1], since="2026-11-30", revises="b")
    run = _criterion("jump", values=[1, 1, 1], running_only=True)
    assert verdict(evaluate_criteria([good, run], {}, None, range(3))) == "reproduced"
    results = evaluate_criteria([good, bad, revised], {}, None, range(3))
    assert verdict(results) == "partly"  # the revised criterion holds but does not decide
    assert verdict(evaluate_criteria([bad, revised], {}, None, range(3))) == "not reproduced"
    assert verdict([]) is None and "no criteria" in verdict_line([])
    line = verdict_line(evaluate_criteria([good, bad, run], {}, None, range(3)))
    assert line.startswith("partly: 2 of 3 criteria hold") and "running statistics only: jump" in line
    assert run.label == "jump [running BN statistics only]"
    with pytest.raises(ConfigError, match="declared twice"):
        evaluate_criteria([good, good], {}, None, range(3))
    with pytest.raises(ConfigError, match="not declared before it"):
        evaluate_criteria([revised, bad], {}, None, range(3))


# ------------------------------------------------------------------------------ through the command
def _final_test_accuracy(tables, config, seed):
    history = tables["history"]
    rows = history[(history["seed"] == seed) & (history["split"] == "test") & (history["bn_mode"] == "batch")]
    return float(rows.sort_values("step")["accuracy"].iloc[-1])


def _smoke_criteria(self, config):
    return [
        Criterion("learns", "Fig. 3(g): the nets learn", "final test accuracy (batch statistics)", ">=", 0.0,
                  _final_test_accuracy),
        Criterion("perfect", "an impossible claim", "final test accuracy (batch statistics)", ">", 1.0,
                  _final_test_accuracy),
        Criterion("never", "a measure with no value", "nothing", "true", None,
                  _value([CannotEvaluate("no such event")] * 9), running_only=True),
        Criterion("learns_revised", "changed later", "final test accuracy", ">=", 2.0, _final_test_accuracy,
                  since="2026-12-01", revises="learns"),
    ]  # fmt: skip


def test_an_experiment_with_criteria_writes_them_per_seed_and_the_table_reads_them(tmp_path, monkeypatch, capsys):
    from netdyn.experiments.structure import Structure

    monkeypatch.setattr(Structure, "criteria", _smoke_criteria)
    out = tmp_path / "all" / "structure"
    torch.set_num_threads(3)
    argv = ["reproduce", "structure", "--scale", "smoke", "--out", str(out), "--quiet", "--seeds", "2",
            "--threads", "2"]  # fmt: skip
    assert main(argv) == 0
    assert torch.get_num_threads() == 3, "the thread count of the caller is restored"
    torch.set_num_threads(1)
    assert "verdict: partly: 1 of 3 criteria hold" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["config"]["threads"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threads"] == 2 and summary["verdict"] == "partly"
    by_name = {c["name"]: c for c in summary["criteria"]}
    assert list(by_name) == ["learns", "perfect", "never", "learns_revised"]
    learns = by_name["learns"]
    assert learns["seeds"] == [0, 1] and learns["passes"] == [True, True] and learns["holds"]
    assert learns["min"] <= learns["median"] <= learns["max"] and all(0 <= v <= 1 for v in learns["values"])
    assert by_name["perfect"]["seeds_passing"] == 0 and not by_name["perfect"]["holds"]
    assert by_name["never"]["reasons"] == ["no such event"] * 2 and by_name["never"]["median"] is None
    assert by_name["never"]["label"].endswith("[running BN statistics only]")
    assert not by_name["learns_revised"]["decides"] and by_name["learns_revised"]["since"] == "2026-12-01"
    page = (out / "report.html").read_text()
    assert "Verdict" in page and "partly: 1 of 3 criteria hold" in page and "cannot be evaluated: no such event" in page
    assert "no (since 2026-12-01)" in page

    # the figures draw the median of the two seeds with the min-max band, or say they draw one seed
    tables = {path.stem: pd.read_parquet(path) for path in (out / "metrics").glob("*.parquet")}
    figs = Structure().figures(tables, Structure().config("smoke", seeds=2))
    assert "median of 2 seeds, band min to max" in figs["fig3a_pruning"].axes[0].get_title()
    assert sum("Poly" in type(c).__name__ for c in figs["fig3a_pruning"].axes[0].collections) == 2  # L-map, LP
    assert "median of 2 seeds" in figs["fig3d_rpd_gradient_residual"].axes[0].get_title()
    for one_seed in ("fig3c_rpd", "fig3c_neuron_modes", "fig3g_training", "fig3h_training_residual"):
        assert "seed 0 only of 2" in figs[one_seed].axes[0].get_title(), one_seed

    # --table: the folder itself, and a parent holding it beside an experiment without criteria
    assert main(["reproduce", "--table", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| experiment | paper | scale | verdict |") and len(lines) == 3
    assert "| `structure` | Fig. 3 | smoke | **partly** | learns (2/2) |" in lines[2]
    assert "perfect (0/2)" in lines[2] and "never [running BN statistics only] (0/2)" in lines[2]
    assert "learns_revised (0/2) [changed 2026-12-01, does not decide]" in lines[2]
    other = tmp_path / "all" / "residual"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"experiment": "residual", "figure": "Fig. 9", "scale": "smoke"}))
    table = verdict_table(tmp_path)
    assert table["experiment"].tolist() == ["structure", "residual"]  # the paper's order
    assert table["verdict"].tolist() == ["partly", "no criteria"]
    assert table["folder"].tolist() == ["all/structure", "all/residual"]
    assert main(["reproduce", "--table", str(tmp_path / "all" / "residual" / "runs-none")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["reproduce", "--table", str(empty)]) == 2
    assert "no experiment folder" in capsys.readouterr().err


def test_bad_thread_counts_are_refused(capsys):
    assert main(["reproduce", "structure", "--scale", "smoke", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_the_same_tables_whatever_the_thread_count_of_the_environment(tmp_path):
    """One experiment at smoke in two processes, under OMP_NUM_THREADS=1 and =2: identical tables, because the
    thread count is the experiment's setting (1), not the environment's."""
    folders = {}
    for threads in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        folders[threads] = tmp_path / f"omp{threads}"
        code = ("import sys; from netdyn.cli import main; "
                f"sys.exit(main(['reproduce', 'structure', '--scale', 'smoke', '--seeds', '1', '--out', "
                f"{str(folders[threads])!r}, '--quiet']))")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    for path in sorted((folders[1] / "metrics").glob("*.parquet")):
        one, two = pd.read_parquet(path), pd.read_parquet(folders[2] / "metrics" / path.name)
        timeless = [c for c in one.columns if "time" not in c]
        pd.testing.assert_frame_equal(one[timeless], two[timeless], check_exact=True, obj=path.stem)
    assert json.loads((folders[2] / "config.json").read_text())["config"]["threads"] == 1


def test_rank_correlation_is_spearmans_and_says_when_it_cannot_be_evaluated():
    from scipy.stats import spearmanr

    from netdyn.experiments.criteria import rank_correlation

    x = pd.Series([2.0, 4.0, 6.0, 8.0, 10.0], index=[5, 3, 9, 1, 0])  # the index plays no part
    y = pd.Series([0.3, 0.1, 0.4, 0.4, 0.9])
    assert rank_correlation(x, y, "depths") == pytest.approx(spearmanr(x.to_numpy(), y.to_numpy())[0])
    with pytest.raises(CannotEvaluate, match="fewer than two depths to correlate"):
        rank_correlation(x[:1], y[:1], "depths")
    with pytest.raises(CannotEvaluate, match="the value is the same at every depth: no rank correlation"):
        rank_correlation(x, pd.Series([1.0] * 5), "depths")
