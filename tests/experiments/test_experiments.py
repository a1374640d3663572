"""Every registered experiment at ``smoke`` through the CLI in-process: the experiment folder of SPEC section 6,
documented columns, no NaN where the definition allows none, non-empty figures, resume without retraining, and
the same tables on a repeat. Plus the registry, ``--list`` and bad names."""

import html
import json

import numpy as np
import pandas as pd
import pytest

from netdyn.cli import main
from netdyn.experiments import EXPERIMENTS, SCALES

PNG = b"\x89PNG\r\n\x1a\n"


def _run(name, out, *extra):
    return main(["reproduce", name, "--scale", "smoke", "--out", str(out), "--quiet", *extra])


def _tables(folder):
    return {p.stem: pd.read_parquet(p) for p in sorted((folder / "metrics").glob("*.parquet"))}


def _without_time(table):
    return table.drop(columns=[c for c in table.columns if "time" in c])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment_at_smoke(name, tmp_path, capsys):
    cls = EXPERIMENTS[name]
    out = tmp_path / "first"
    assert _run(name, out) == 0
    assert "report:" in capsys.readouterr().out
    for item in ("config.json", "report.html", "summary.json"):
        assert (out / item).is_file(), item
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == name and config["scale"] == "smoke"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] == len(list((out / "runs").iterdir())) > 0
    tables = _tables(out)
    assert set(tables) == set(cls.columns), "the tables written are the documented ones"
    for table_name, columns in cls.columns.items():
        table = tables[table_name]
        assert len(table) > 0, table_name
        assert set(columns) <= set(table.columns), (table_name, set(columns) - set(table.columns))
        allowed = set(cls.nullable.get(table_name, ()))
        numeric = table.select_dtypes("number")
        bad = [c for c in numeric.columns if c not in allowed and numeric[c].isna().any()]
        assert not bad, (table_name, bad)
    figures = sorted((out / "figures").glob("*.png"))
    assert figures, "no figure"
    for png in figures:
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, png.name
        assert png.with_suffix(".svg").is_file(), png.name
    page = (out / "report.html").read_text()
    assert html.escape(cls.claim[:40]) in page and "data:image/png;base64" in page
    if summary["members"] >= 2:  # the members side by side, linked from the report
        assert 'href="compare/report.html"' in page and (out / "compare" / "report.html").is_file()

    # --resume: nothing trained again, the same tables
    assert _run(name, out, "--resume") == 0
    assert json.loads((out / "summary.json").read_text())["members_trained_now"] == 0
    # a second run in a new folder gives the same tables (wall times aside)
    assert _run(name, tmp_path / "second") == 0
    again = _tables(tmp_path / "second")
    for table_name, table in tables.items():
        pd.testing.assert_frame_equal(_without_time(table), _without_time(again[table_name]), obj=table_name)
    # an existing experiment folder is not overwritten without --resume
    assert _run(name, out) == 1
    assert "already holds an experiment" in capsys.readouterr().err


def test_registry_and_list(capsys):
    assert list(EXPERIMENTS)
    for name, cls in EXPERIMENTS.items():
        assert cls.name == name and cls.figure and cls.shows and cls.claim and cls.columns
        assert set(cls.scales) == set(SCALES)
        seeds = {scale: config.seeds for scale, config in cls.scales.items()}
        assert seeds == {"smoke": 2, "small": 3, "paper": 3}, (name, seeds)  # SPEC 6.1
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name, cls in EXPERIMENTS.items():
        assert name in out and cls.figure in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["reproduce", "nope", "--scale", "smoke"], "unknown experiment 'nope'"),
        (["reproduce", "structure", "--scale", "huge"], "invalid choice: 'huge'"),
        (["reproduce", "structure", "--seeds", "0"], "--seeds must be >= 1"),
        (["reproduce"], "give an experiment NAME"),
        (["reproduce", "all", "--jobs", "0"], "--jobs must be >= 1"),
        (["reproduce", "structure", "--jobs", "2"], "it needs NAME all"),
    ],
)
def test_bad_names_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err
    if "nope" in argv:
        assert all(name in err for name in EXPERIMENTS)


def test_resume_refuses_another_configuration(tmp_path, capsys):
    assert _run("structure", tmp_path / "x") == 0
    assert main(["reproduce", "structure", "--scale", "smoke", "--out", str(tmp_path / "x"), "--seeds", "3",
                 "--resume", "--quiet"]) == 1
    assert "differs" in capsys.readouterr().err
    np.testing.assert_equal(len(list((tmp_path / "x" / "runs").iterdir())), 6)  # 3 networks x the smoke's 2 seeds


def test_a_members_train_config_takes_the_fields_the_experiment_config_shares_with_train_config():
    from netdyn.experiments.grokking import GrokkingConfig
    from netdyn.experiments.structure import StructureConfig

    grokking = GrokkingConfig()
    train = grokking.train_config(3)
    assert (train.seed, train.optimizer, train.lr, train.weight_decay, train.steps, train.loss, train.dtype) == (
        3, "adamw", 1e-3, 0.01, 100_000, "mse", "float64")
    assert (train.eval_every, train.checkpoint_every) == ("log:81", "log:41")
    structure = StructureConfig()
    changed = structure.train_config(1, checkpoint_every="log:1", lr=0.5)
    assert (changed.checkpoint_every, changed.lr, changed.bn_eval) == ("log:1", 0.5, structure.bn_eval)
    assert changed.weight_decay == 0.0  # a field the config lacks keeps TrainConfig's default
