"""`netdyn sweep` takes every `netdyn train` flag (but --out and --resume) as a setting of every point, in-process."""

import pytest

from netdyn import load_run
from netdyn.cli import build_parser, main
from netdyn.commands.sweep import definition_from_args
from netdyn.sweeps import load_sweep, plan_points


def _args(argv):
    return build_parser().parse_args(["sweep", *argv])


def test_train_flags_are_fixed_settings_of_a_real_sweep(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", "--grid", "depth=1,2", "--dataset", "blobs", "--epochs", "2", "--out", str(out), "--quiet",
            "--workers", "1", "--train-size", "200", "--test-size", "100", "--width", "8", "--no-bias",
            "--data-option", "n_features=6", "--lr", "0.01"]
    assert main(argv) == 0
    assert "2 points: 2 ok, 0 failed, 0 diverged (2 run now" in capsys.readouterr().out
    result = load_sweep(out)
    assert [p.name for p in result.points] == ["depth=1", "depth=2"]
    assert list(result.table.columns[:3]) == ["name", "depth", "status"]  # fixed settings are no parameters
    for point, depth in zip(result.points, (1, 2), strict=True):
        spec = point.spec
        assert (spec.model.depth, spec.model.width, spec.model.bias) == (depth, 8, False)
        assert (spec.data.name, spec.data.train_size, spec.data.options) == ("blobs", 200, {"n_features": 6})
        assert (spec.train.epochs, spec.train.lr) == (2, 0.01)
        assert load_run(out / "runs" / point.name).config["train"]["epochs"] == 2
    # the same command again resumes; a changed flag is a changed point, refused before anything runs
    assert main(argv) == 0
    assert "(0 run now, 2 complete or failed before" in capsys.readouterr().out
    assert main([*argv, "--epochs", "3"]) == 2
    assert "depth=1 is already in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--grid", "depth=1,2", "--depth", "3"], "--depth: depth is given as --grid depth=... and as --depth;"),
        (["--grid", "depth=1", "--set", "epochs=2", "--epochs", "3"], "epochs is given as --set epochs=... and as"),
        (["--grid", "lr=0.1,0.2", "--set", "lr=0.3"], "lr is given as --grid lr=... and as --set lr=..."),
        (["--grid", "depth=1", "--data-option", "n_features=6", "--set", "data-option=noise=1"], "data_option"),
        (["--grid", "depth=1", "--resume"], "unrecognized arguments: --resume"),
        (["--grid", "depth=1", "--dataset", "blobs", "--data-option", "n_features=x"], "n_features must be"),
    ],
)
def test_flags_given_twice_or_refused_exit_2_and_write_nothing(argv, words, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_flags_replace_the_files_settings_and_only_given_flags_count(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[fixed]\ndataset = "blobs"\nepochs = 5\nwidth = 16\n\n[grid]\nseed = [0, 1]\n')
    definition = definition_from_args(_args([str(path), "--epochs", "2", "--batchnorm", "--out", str(tmp_path)]))
    # train flags left out keep the file's values (their defaults never override it)
    assert definition.fixed == {"dataset": "blobs", "epochs": 2, "width": 16, "batchnorm": True}
    points = plan_points(definition)
    assert [p.name for p in points] == ["seed=0", "seed=1"]
    assert {(p.spec.train.epochs, p.spec.model.width, p.spec.model.batchnorm) for p in points} == {(2, 16, True)}
    plain = definition_from_args(_args(["--grid", "depth=1", "--out", str(tmp_path)]))
    assert plain.fixed == {} and plain.grid == {"depth": ["1"]}
