"""Settings -> RunSpec without argv: keys are RunSpec fields (flag names as aliases), values read by the fields'
annotations and checked by the dataclasses, and `netdyn train` builds its spec from the same mapping."""

import subprocess
import sys

import pytest

import netdyn
from netdyn.cli import build_parser
from netdyn.commands.train import run_spec_from_args
from netdyn.errors import ConfigError
from netdyn.orchestration.settings import canonical_key, keys, parse_settings
from netdyn.sweeps import plan_points, spec_from_settings


def test_every_field_of_every_part_is_a_key_under_its_flag_name():
    by_field = {(k.part, k.field): name for name, k in keys().items()}
    assert by_field[("data", "name")] == "dataset" and by_field[("data", "options")] == "data_option"
    assert by_field[("model", "seed")] == "model_seed" and by_field[("data", "seed")] == "data_seed"
    assert by_field[("train", "seed")] == "seed" and by_field[("analysis", "repeats")] == "repeats"
    assert keys()["analyze"].field is None
    for alias, key in [("data.name", "dataset"), ("model.seed", "model_seed"), ("train.batch_size", "batch_size"),
                       ("--batch-size", "batch_size"), ("analysis.eps", "eps"), ("data_options", "data_option")]:
        assert canonical_key(alias) == key
    for wrong, words in [("analysis.seed", "follows the training's seed"), ("in_features", "unknown sweep key"),
                         ("model.in_features", "the data decides it"), ("out", "not a point setting")]:
        with pytest.raises(ConfigError, match=words):
            canonical_key(wrong)


def test_train_flags_are_the_settings_keys():
    """Every flag `netdyn train` builds its spec from is a key, and the train command's spec is spec_from_settings's."""
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and "train" in a.choices)
    train = sub.choices["train"]
    args = train.parse_args(["--dataset", "blobs", "--width", "8,4", "--depth", "2", "--seed", "3", "--analyze",
                             "--no-basins", "--data-option", "n_features=6", "--eval-every", "100"])
    for dest in args.spec_flags:
        canonical_key(dest)
    spec = run_spec_from_args(args)
    assert spec == spec_from_settings({"dataset": "blobs", "width": "8,4", "depth": 2, "seed": 3, "analyze": True,
                                       "basins": False, "data_option": "n_features=6", "eval_every": "100"})
    assert spec.model.seed == spec.data.seed == spec.train.seed == 3 and spec.train.eval_every == 100
    assert spec.analysis == netdyn.AnalysisConfig(basins=False, seed=3)


def test_text_reads_as_the_fields_type_and_typed_values_pass():
    parsed = parse_settings({"depth": "2", "width": "16,8", "lr": "1e-2", "epochs": "none", "steps": "5",
                             "batchnorm": "yes", "activation": "relu,tanh", "eval_every": "log:5", "layers": "1",
                             "eps": "0,0.5", "quantities": "lmap", "analyze": "on", "data_option": ["noise=0.5"]})
    assert parsed == {"depth": 2, "width": (16, 8), "lr": 0.01, "epochs": None, "steps": 5, "batchnorm": True,
                      "activation": ("relu", "tanh"), "eval_every": "log:5", "layers": (1,), "eps": (0, 0.5),
                      "quantities": ("lmap",), "analyze": True, "data_option": {"noise": 0.5}}
    # what a TOML file or Python gives is handed to the dataclasses as it is (lists as tuples)
    typed = parse_settings({"width": [16, 8], "classes": 2, "bias": 0, "data_option": {"n_features": 4}})
    assert typed == {"width": (16, 8), "classes": (2,), "bias": False, "data_option": {"n_features": 4}}


def test_analysis_fields_apply_when_analysed_with_the_trainings_seed_device_dtype():
    spec = spec_from_settings({"analyze": True, "repeats": 2, "eps": [0, 1], "seed": 4, "dtype": "float64"})
    assert spec.analysis == netdyn.AnalysisConfig(repeats=2, eps=(0, 1), seed=4, dtype="float64")
    assert spec_from_settings({"repeats": 2}).analysis is None
    spec = spec_from_settings({"model.seed": 1, "data.name": "blobs", "train.seed": 2})
    assert (spec.model.seed, spec.data.seed, spec.train.seed, spec.data.name) == (1, 2, 2, "blobs")


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"depth": "x"}, "depth: takes a whole number, got 'x'"),
        ({"lr": "nan"}, "lr: takes a finite number"),
        ({"batchnorm": "maybe"}, "batchnorm: takes true or false"),
        ({"width": "8,x"}, "width: takes comma-separated values"),
        ({"data_option": "noise"}, "data_option: takes KEY=VALUE"),
        ({"model_seed": -1}, "model_seed: seed must be"),  # the dataclass's message, named by the key
        ({"lr": -1}, "^lr must be a finite number > 0"),  # a message that names its key keeps its words
        ({"batch-size": 2, "batch_size": 3}, "given twice"),
        ({"analyze": True, "classes": "1"}, "classes needs at least two"),
    ],
)
def test_bad_settings_are_one_config_error_naming_the_key(settings, words):
    with pytest.raises(ConfigError, match=words) as info:
        spec_from_settings(settings)
    assert len(str(info.value).splitlines()) == 1


def test_blame_names_the_key_as_the_caller_says():
    with pytest.raises(ConfigError, match=r"^argument --model-seed: seed must be"):
        spec_from_settings({"model_seed": -1}, blame=lambda key: f"argument --{key.replace('_', '-')}")


def test_the_sweep_library_reaches_no_command_line():
    code = ("import sys; from netdyn.sweeps import plan_points; plan_points(grid={'depth': [1, 2]}); "
            "print(sorted(m for m in sys.modules if m.startswith(('netdyn.cli', 'netdyn.commands'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert plan_points(grid={"depth": [1]})[0].params == {"depth": 1}
