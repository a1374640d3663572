"""``run_all``: every experiment in one call, several at a time in their own processes, with the same tables."""

import json

import pandas as pd
import pytest

from netdyn.errors import ConfigError
from netdyn.experiments import run_all
from netdyn.experiments.runner import expected_seconds
from netdyn.experiments.verdicts import verdict_table

NAMES = ["depth-100", "lmap-training"]


def _metrics(folder):
    return {p.stem: pd.read_parquet(p) for p in sorted((folder / "metrics").glob("*.parquet"))}


def _without_time(table):
    return table.drop(columns=[c for c in table.columns if "time" in c])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_two_processes_give_the_tables_of_one(tmp_path):
    parallel = run_all("smoke", tmp_path / "two", names=NAMES, jobs=2)
    serial = run_all("smoke", tmp_path / "one", names=NAMES, jobs=1)
    assert [r.name for r in parallel] == NAMES  # the order asked for, whichever ended first
    for a, b in zip(parallel, serial, strict=True):
        assert a.folder == tmp_path / "two" / a.name
        one, two = _metrics(b.folder), _metrics(a.folder)
        assert one.keys() == two.keys() and one
        for name in one:
            pd.testing.assert_frame_equal(_without_time(two[name]), _without_time(one[name]))
        assert a.summary["criteria"] == b.summary["criteria"] and a.summary["threads"] == 1
    index = json.loads((tmp_path / "two" / "all.json").read_text())
    assert index["jobs"] == 2 and index["wall_time"] > 0
    assert [row["experiment"] for row in index["experiments"]] == NAMES
    assert list(verdict_table(tmp_path / "two")["experiment"]) == ["lmap-training", "depth-100"]  # paper order
    assert (tmp_path / "two" / "report.html").is_file()


def test_unknown_name_and_bad_jobs_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="unknown experiment 'nope'"):
        run_all("smoke", tmp_path / "a", names=["depth-100", "nope"], jobs=2)
    with pytest.raises(ConfigError, match="jobs must be >= 1"):
        run_all("smoke", tmp_path / "b", names=NAMES, jobs=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_expected_seconds_reads_the_measured_entry():
    assert expected_seconds("grokking", "small") > expected_seconds("depth-100", "small") > 0
    assert expected_seconds("grokking", "paper") >= 0


class _Runs:
    def __init__(self, times):
        self.times = times

    def run(self, member):
        return type("R", (), {"summary": {"wall_time": self.times[member.name]}})()


def test_training_time_counts_a_population_once():
    from netdyn.experiments import EXPERIMENTS
    from netdyn.experiments.runner import training_time

    experiment = EXPERIMENTS["basins-hparams"]()
    members = experiment.members(experiment.config("smoke"))
    from netdyn.training.population import population_key

    keys = [population_key(m.spec) for m in members]
    assert len(set(keys)) < len(keys)  # some members share a population
    times = {m.name: float(i + 1) for i, m in enumerate(members)}
    expected = sum(max(times[m.name] for m, k in zip(members, keys, strict=True) if k == key) for key in set(keys))
    assert training_time(_Runs(times), members) == pytest.approx(expected)
    assert training_time(_Runs(times), members, population=False) == pytest.approx(sum(times.values()))
