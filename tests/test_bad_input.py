"""Every bad input gets one clear line (SPEC section 9): a matrix generated from the command line's parser and from
the public API, so that a new command, option, config field or analysis function is covered without edits here.

Command line: every sub-command of ``build_parser()`` and every option or positional that takes a value gets a value
of the wrong type and out-of-range values (NaN and infinity too, for numbers); every path option (by its declared
role, else by the words of its name and metavar: out, root, dir, folder, run, file, ...) gets a missing path, a file,
a path under a file and a read-only place, each where it is an error for that role. Each case runs ``main(argv)``
in-process on an otherwise valid command line and asserts the exit status, exactly one line on stderr and nothing on
stdout, no traceback, a line that names the option (or the value or path), that no training, analysis or download
started (those functions are replaced by a tripwire: training commands must refuse during argument checking) and
that nothing was written.

API: every field of the config dataclasses (``RunSpec`` and its parts) and every argument ``MLP`` shares with them
gets wrong-type, NaN, infinite and out-of-range values; every public function of ``netdyn.analysis`` that takes
``(net, data)`` (or ``data``, or ``run`` and ``data``) and every record of ``QUANTITIES`` gets a data set of the
wrong width, one with a label the network cannot output (as a Dataset and as four tensors) and a network that is
not a netdyn MLP. Each must raise a ``NetdynError`` subclass whose message is one line.

Read-only places: root writes into a chmod-ed folder, so the read-only cases use a real ``chmod a-w`` folder when
not running as root, and as root report that folder as unwritable through ``os.access`` (what netdyn consults,
and what a read-only mount reports even to root). A file in place of a folder and a path under a file need no
privileges and run everywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import multiprocessing.process
import os
import re
import shutil
import signal
import stat
import threading
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import netdyn
from netdyn.cli import build_parser, main
from netdyn.errors import ConfigError, ModelError, NetdynError

# ------------------------------------------------------------------------------------------------ the parser
#: Tokens of an option's dest or metavar that mark it as a path (when its type does not declare a role).
PATH_WORDS = {"out", "output", "root", "dir", "directory", "folder", "path", "run", "file"}

#: Options whose values are free-form, with the bad values to try instead of the generic ones, and why.
FREE_FORM = {
    # KEY=VALUE pairs handed to the data set's loader: the generic words are malformed pairs; these are well-formed
    # pairs that the loader must refuse (a wrong type, an out-of-range value, an unknown key).
    "data_options": ["n_features=abc", "n_features=-1", "no_such_option=1", "1.5"],
}

#: Values out of range for the run at hand (the test run: depth 2, 4 classes, checkpoints 0, 2, 4), by dest.
RUN_AT_HAND = {
    "checkpoint": ["99999", "-1"],
    "layers": ["99", "0,3"],  # layers are 0..L-1 = 0..2
    "classes": ["0,99", "-1,0"],
}

#: Devices that this machine cannot compute on, by dest: a type that holds no data (meta), and devices it lacks
#: (MPS where there is none, a CUDA index past its last GPU). Each is refused with one line before any work.
UNAVAILABLE = {
    "device": [
        "meta",
        *(["mps"] if not torch.backends.mps.is_available() else []),
        *(["cuda:99"] if torch.cuda.device_count() < 100 else []),
    ],
}

#: Otherwise-valid command lines the generator cannot guess. A new command needs a line here only when it takes a
#: positional that is neither a path nor a choice, or needs an option to do anything (sweep's grid); the rest are
#: found: positional paths get the test run, choices their first value, --quiet and a fresh --out where they exist.
BASES = {
    "train": lambda ctx: [
        "--dataset", "blobs", "--train-size", "40", "--test-size", "20", "--width", "4", "--depth", "2",
        "--steps", "2", "--quiet", "--out", str(ctx.fresh),
    ],
    "analyze": lambda ctx: [str(ctx.run), "--no-basins", "--quiet"],
    "compare": lambda ctx: [str(ctx.run), str(ctx.run), "--out", str(ctx.fresh)],  # two runs at least
    "datasets": lambda ctx: ["--download", "mnist", "--data-root", str(ctx.fresh)],
    "reproduce": lambda ctx: ["structure", "--scale", "smoke", "--quiet", "--out", str(ctx.fresh)],
    "sweep": lambda ctx: [
        "--grid", "depth=1,2", "--dataset", "blobs", "--train-size", "40", "--test-size", "20", "--width", "4",
        "--steps", "2", "--quiet", "--out", str(ctx.fresh),
    ],
}

WRONG_WORD, WRONG_NUMBER = "abc", "1.5"
NUMBER_BAD = ["-1", "nan", "inf"]
LIST_BAD = ["-1,0", "nan,0", "inf,0"]


@functools.cache
def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub not in found.values():
                    found[name] = sub
    return found


def value_actions(sub: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and positionals that take a value (flags, --help and --version do not)."""
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [a for a in sub._actions if not isinstance(a, skip) and a.nargs != 0]


def _tokens(action: argparse.Action) -> set[str]:
    words = f"{action.dest} {action.metavar or ''}".lower()
    return set(re.split(r"[^a-z0-9]+", words)) - {""}


def path_role(action: argparse.Action) -> str | None:
    """How a path option is used: "read" (must exist), "write" (created if missing), "run" (a run folder that is
    read and written), "file" (a file that must exist); None for an option that is not a path."""
    declared = getattr(action.type, "role", None)
    if declared is not None or getattr(action.type, "kind", None) not in (None, "path"):
        return declared
    if action.choices is not None:
        return None
    tokens = _tokens(action)
    if not tokens & PATH_WORDS:
        return None
    if tokens & {"out", "output"}:
        return "write"
    if "file" in tokens:
        return "file"
    return "run" if "run" in tokens else "read"


def value_kind(action: argparse.Action) -> str:
    """What an option's value is: int, number, list (of numbers), words, text or choice."""
    declared = getattr(action.type, "kind", None)
    if declared is not None:
        return declared
    if action.choices is not None:
        return "choice"
    if action.type is int:
        return "int"
    if action.type is float:
        return "number"
    default = action.default
    if isinstance(default, str) or action.type is None:
        return "text"
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return "number"
    try:
        probe = action.type("2")
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return "text"
    if isinstance(probe, tuple):
        try:
            action.type(WRONG_WORD)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            return "list"
        return "words"
    return "number" if isinstance(probe, (int, float)) and not isinstance(probe, bool) else "text"


def bad_values(action: argparse.Action) -> list[str]:
    if action.dest in FREE_FORM:
        return FREE_FORM[action.dest]
    kind = value_kind(action)
    values = {
        "int": [WRONG_WORD, "2.5", *NUMBER_BAD],
        "number": [WRONG_WORD, *NUMBER_BAD],
        "list": [WRONG_WORD, *LIST_BAD],
    }.get(kind, [WRONG_NUMBER, "no-such-value"])
    at_hand = RUN_AT_HAND.get(action.dest, []) + UNAVAILABLE.get(action.dest, [])
    return values + [v for v in at_hand if v not in values]


PATH_CASES = {
    # role -> the path shapes that are errors for it, with the exit status each gets
    "read": {"missing": 2, "file": 2, "under_file": 2},
    "file": {"missing": 2, "folder": 2, "under_file": 2},
    "write": {"file": 2, "under_file": 2, "read_only": 1},
    "run": {"missing": 2, "file": 2, "under_file": 2, "read_only": 1},
}


@dataclass(frozen=True)
class CliCase:
    command: str
    action_dest: str
    flag: str | None  # None for a positional
    value: str  # the bad value, or the path shape
    status: int
    path_shape: bool = False

    @property
    def id(self) -> str:
        name = self.flag or self.action_dest.upper()
        return f"{self.command} {name}={'<' + self.value + '>' if self.path_shape else self.value}"


def cli_cases() -> list[CliCase]:
    cases = []
    for command, sub in subcommands().items():
        for action in value_actions(sub):
            flag = max(action.option_strings, key=len) if action.option_strings else None
            role = path_role(action)
            if role is not None:
                for shape, status in PATH_CASES[role].items():
                    cases.append(CliCase(command, action.dest, flag, shape, status, path_shape=True))
                continue
            for value in bad_values(action):
                cases.append(CliCase(command, action.dest, flag, value, 2))
    return cases


CLI_CASES = cli_cases()


# ------------------------------------------------------------------------------------------------ fixtures
def _tiny_spec():
    return netdyn.RunSpec(
        model=netdyn.ModelSpec(width=4, depth=2, seed=0),
        data=netdyn.DataSpec("blobs", train_size=40, test_size=20),
        train=netdyn.TrainConfig(steps=4, batch_size=20, eval_every=2, checkpoint_every=2),
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished tiny run (blobs, depth 2, 4 classes, checkpoints at steps 0, 2 and 4), built once."""
    folder = tmp_path_factory.mktemp("tiny") / "run"
    netdyn.run(_tiny_spec(), folder)
    assert netdyn.load_run(folder).checkpoints() == [0, 2, 4]
    return folder


class WorkStarted(BaseException):
    """Raised by the tripwire: the command began training, analysing or downloading."""


#: (module, function) that do a command's work; a refused command line must never reach them.
WORK = [
    ("netdyn.training.loop", "train"),
    ("netdyn.orchestration.analyses", "analyze"),
    ("netdyn.orchestration.analyses", "analyze_checkpoints"),
    ("netdyn.data._mnist", "download"),
]


#: Seconds a refused command line may take; past it the case fails (a backstop should a tripwire be missed).
CASE_SECONDS = 60


@pytest.fixture
def tripwire(monkeypatch):
    """Replace the functions that do a command's work by a tripwire, forbid worker processes (a sweep's pool),
    and stop a case that runs longer than CASE_SECONDS."""
    for module_name, function in WORK:
        module = importlib.import_module(module_name)

        def trip(*args, _what=f"{module_name}.{function}", **kwargs):
            raise WorkStarted(_what)

        monkeypatch.setattr(module, function, trip)

    def no_process(*args, **kwargs):
        raise WorkStarted("a worker process")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_process)

    def too_long(signum, frame):
        raise WorkStarted(f"{CASE_SECONDS} s of work")

    timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if timed:
        previous = signal.signal(signal.SIGALRM, too_long)
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    yield
    if timed:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make_read_only(folder: Path, monkeypatch, request) -> None:
    """Make ``folder`` (and what it holds) read-only; as root, make the OS say so (see the module docstring)."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        for path in paths:
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

        def restore():
            for path in paths:
                path.chmod(path.stat().st_mode | stat.S_IWUSR)

        request.addfinalizer(restore)
        return
    real_access = os.access
    inside = str(folder.resolve())

    def access(path, mode, *args, **kwargs):
        resolved = os.path.realpath(os.fspath(path))
        if mode & os.W_OK and (resolved == inside or resolved.startswith(inside + os.sep)):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@dataclass
class Context:
    run: Path
    fresh: Path


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))} if folder.exists() else {}


def one_line(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def names_it(line: str, case: CliCase, shown: str) -> bool:
    words = {case.action_dest, case.action_dest.replace("_", "-"), shown}
    if case.action_dest in FREE_FORM:  # a KEY=VALUE pair: the line may name the key instead
        words.add(shown.partition("=")[0])
    if case.flag:
        words |= {case.flag, case.flag.lstrip("-"), case.flag.lstrip("-").replace("-", "_")}
    line = line.lower()
    return any(w and w.lower() in line for w in words)


def path_for(shape: str, case: CliCase, ctx: Context, tmp: Path, monkeypatch, request) -> Path:
    a_file = tmp / "a_file"
    a_file.write_text("not a folder\n")
    if shape == "missing":
        return tmp / "missing"
    if shape == "file":
        return a_file
    if shape == "folder":
        return ctx.run
    if shape == "under_file":
        return a_file / "inside"
    assert shape == "read_only"
    if path_role_of(case) == "run":
        copy = tmp / "read_only_run"
        shutil.copytree(ctx.run, copy)
        make_read_only(copy, monkeypatch, request)
        return copy
    place = tmp / "read_only"
    place.mkdir()
    make_read_only(place, monkeypatch, request)
    return place / "new"


def path_role_of(case: CliCase) -> str | None:
    sub = subcommands()[case.command]
    action = next(a for a in value_actions(sub) if a.dest == case.action_dest)
    return path_role(action)


def base_argv(command: str, sub: argparse.ArgumentParser, ctx: Context) -> list[str]:
    if command in BASES:
        return BASES[command](ctx)
    # a command this file does not know: its positionals from their role or choices, --quiet and a fresh --out
    argv: list[str] = []
    for action in value_actions(sub):
        if action.option_strings or action.nargs in ("?", "*"):
            continue
        if path_role(action) is not None:
            argv.append(str(ctx.run))
        elif action.choices:
            argv.append(str(next(iter(action.choices))))
        else:
            argv.append("x")
    flags = {s for a in sub._actions for s in a.option_strings}
    argv += ["--quiet"] if "--quiet" in flags else []
    argv += ["--out", str(ctx.fresh)] if "--out" in flags else []
    return argv


def argv_for(case: CliCase, value: str, ctx: Context) -> list[str]:
    sub = subcommands()[case.command]
    argv = base_argv(case.command, sub, ctx)
    if case.flag is not None:
        return [case.command, *argv, case.flag, value]
    # a positional: replace the one the base gives it, in order
    positionals = [a for a in value_actions(sub) if not a.option_strings]
    index = [a.dest for a in positionals].index(case.action_dest)
    argv = list(argv)
    if index < len(argv) and not argv[index].startswith("-"):
        argv[index] = value
    else:
        argv.insert(index, value)
    return [case.command, *argv]


# ------------------------------------------------------------------------------------------------ CLI matrix
@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_bad_command_line(case, tiny_run, tmp_path, monkeypatch, capsys, request):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ctx = Context(run=tiny_run, fresh=tmp_path / "fresh")
    value = case.value
    if case.path_shape:
        value = str(path_for(case.value, case, ctx, tmp_path, monkeypatch, request))
    argv = argv_for(case, value, ctx)
    before = (listing(tmp_path), listing(tiny_run))
    request.getfixturevalue("tripwire")
    try:
        status = main(argv)
    except WorkStarted as started:
        pytest.fail(f"{' '.join(argv)}: {started} ran before the bad value was refused")
    out, err = capsys.readouterr()
    lines = one_line(err)
    shown = " ".join(argv)
    assert "Traceback" not in out + err, f"{shown}: traceback\n{err}"
    assert status == case.status, f"{shown}: exit status {status}, expected {case.status}; stderr: {err!r}"
    assert len(lines) == 1, f"{shown}: stderr should hold one line, got {err!r}"
    assert out == "", f"{shown}: nothing should go to stdout, got {out!r}"
    assert lines[0].startswith("netdyn"), f"{shown}: {lines[0]!r}"
    assert names_it(lines[0], case, value), f"{shown}: the line does not name the option or value: {lines[0]!r}"
    assert (listing(tmp_path), listing(tiny_run)) == before, f"{shown}: a refused command wrote files"


def test_the_matrix_covers_every_command_and_value_option():
    """The generator finds every sub-command, and each value-taking option yields at least two cases."""
    commands = subcommands()
    assert {"train", "analyze", "datasets", "reproduce"} <= set(commands)
    for command, sub in commands.items():
        for action in value_actions(sub):
            n = sum(1 for c in CLI_CASES if c.command == command and c.action_dest == action.dest)
            assert n >= 2, f"{command} {action.dest}: {n} cases"
    # the path options are recognised as paths (by their declared role or their name)
    roles = {(c.command, c.action_dest) for c in CLI_CASES if c.path_shape}
    assert {("train", "out"), ("train", "data_root"), ("analyze", "run"), ("reproduce", "out")} <= roles


# ------------------------------------------------------------------------------------------------ API: configs
def _leaf_text(hint: Any) -> str:
    return str(hint).replace("typing.", "")


def config_classes() -> list[type]:
    """RunSpec and every config dataclass it is made of."""
    classes, queue = [], [netdyn.RunSpec]
    while queue:
        cls = queue.pop()
        if cls in classes:
            continue
        classes.append(cls)
        for hint in typing.get_type_hints(cls).values():
            for arg in typing.get_args(hint) or (hint,):
                if dataclasses.is_dataclass(arg):
                    queue.append(arg)
    return classes


#: Config fields whose values are free-form, and why.
FREE_FORM_FIELDS = {
    ("DataSpec", "options"): "per-data-set options, checked by the data set's loader (see FREE_FORM above)",
}

NAN, INF = float("nan"), float("inf")


def field_bad_values(hint: Any) -> list[Any]:
    """Values of the wrong type and out of range for a field annotated ``hint``."""
    text = _leaf_text(hint)
    if dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(a) for a in typing.get_args(hint)):
        return [1.5, "no-such-value"]
    scalar, _, inner = text.partition("tuple[")
    values: list[Any] = []
    if inner:
        if "float" in inner:
            values += [(NAN,), (INF,), (-1.0,), ("a",)]
        elif "int" in inner:
            values += [(2.5, 1), (True, 1), ("a", "b")]
        elif "bool" in inner:
            values += [("yes",)]
        elif "str" in inner:
            values += [(1.5,), ("no-such-value",)]
    if "float" in scalar:
        values += [NAN, INF, -1.0, "abc", True]
    elif "int" in scalar and "str" not in scalar:
        values += [2.5, True, "3", -1, NAN]
    elif "str" in scalar:
        values += [1.5, "no-such-value"] + ([-1, True] if "int" in scalar else [])
    elif "bool" in scalar:
        values += ["yes", 1]
    return values


def config_cases() -> list[tuple[type, str, Any]]:
    cases = []
    for cls in config_classes():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if (cls.__name__, field.name) in FREE_FORM_FIELDS:
                continue
            for value in field_bad_values(hints[field.name]):
                cases.append((cls, field.name, value))
    return cases


CONFIG_CASES = config_cases()


@pytest.mark.parametrize(
    "cls, name, value", CONFIG_CASES, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v in CONFIG_CASES]
)
def test_config_refuses_bad_values(cls, name, value):
    with pytest.raises(NetdynError) as info:
        cls(**{name: value})
    assert isinstance(info.value, ConfigError)
    assert len(str(info.value).splitlines()) == 1 and str(info.value).strip()


MLP_BASE = {"in_features": 6, "width": 5, "depth": 2, "num_classes": 3}


def mlp_cases() -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(netdyn.ModelSpec)
    params = inspect.signature(netdyn.MLP).parameters
    cases = [(name, value) for name in params if name in hints for value in field_bad_values(hints[name])]
    # the examples of the issue: a fractional width, a boolean depth, a negative batch-norm epsilon, one class
    return cases + [("width", 4.5), ("depth", True), ("bn_eps", -1e-5), ("num_classes", 1), ("num_classes", 0)]


MLP_CASES = mlp_cases()


@pytest.mark.parametrize("name, value", MLP_CASES, ids=[f"MLP {n}={v!r}" for n, v in MLP_CASES])
def test_mlp_refuses_what_the_cli_refuses(name, value):
    with pytest.raises(ConfigError) as info:
        netdyn.MLP(**{**MLP_BASE, name: value})
    assert len(str(info.value).splitlines()) == 1


# ------------------------------------------------------------------------------------------------ API: analysis
DATA_FAULTS = ["wrong_width", "wrong_width_tensors", "bad_label", "bad_label_tensors"]


def fault_data(fault: str, n_features: int, num_classes: int, with_net: bool = True):
    """A data set that does not fit a network of ``n_features`` inputs and ``num_classes`` outputs.

    wrong_width: one feature too many (without a network: a test split wider than the training split);
    bad_label: a label the network cannot output (its class count; without a network: a negative label).
    As a Dataset, or as the four tensors with ``_tensors``.
    """
    gen = torch.Generator().manual_seed(0)
    n = 24
    y = torch.arange(n) % num_classes
    x = torch.randn(n, n_features, generator=gen)
    x_test, y_test = x.clone(), y.clone()
    classes = num_classes
    if fault.startswith("wrong_width"):
        if with_net:
            x = x_test = torch.randn(n, n_features + 1, generator=gen)
        else:
            x_test = torch.randn(n, n_features + 1, generator=gen)
    else:
        y = y.clone()
        y[3] = num_classes if with_net else -1
        classes = num_classes + 1 if with_net else num_classes
    if fault.endswith("tensors"):
        return (x, y, x_test, y_test)
    return netdyn.Dataset(x, y, x_test, y_test, classes, "bad", (x.shape[1],), {})


def _cheap_config():
    return netdyn.AnalysisConfig(basins=False, max_samples=16)


#: Required arguments beyond (net, data) of public analysis functions, by name (cheap values).
EXTRA_ARGS = {"batch_size": 4, "l": 1}
#: Options that keep a function cheap should its check be missing and it run to the end.
CHEAP = {"eps": [0.0, 1.0], "repeats": 1, "n_samples": 8, "max_samples": 16, "config": None, "steps": "last"}


def analysis_functions() -> dict[str, Any]:
    """Public functions of netdyn.analysis, and the orchestration's analyze and analyze_checkpoints, that take a
    data set: (net, data, ...), (run, ..., data) or (data)."""
    import netdyn.analysis as analysis
    import netdyn.orchestration as orchestration

    found = {}
    candidates = {name: getattr(analysis, name) for name in analysis.__all__}
    candidates.update(analyze=orchestration.analyze, analyze_checkpoints=orchestration.analyze_checkpoints)
    for name, fn in candidates.items():
        if inspect.isfunction(fn):
            params = list(inspect.signature(fn).parameters)
            if "data" in params and params[0] in ("net", "run", "data"):
                found[name] = fn
    return found


ANALYSIS_FUNCTIONS = analysis_functions()


def first_param(name: str) -> str:
    return list(inspect.signature(ANALYSIS_FUNCTIONS[name]).parameters)[0]


def small_net():
    return netdyn.MLP(6, 5, 2, 3, seed=0, batchnorm=True).eval()


def call(name: str, net, data, run_folder: Path):
    fn = ANALYSIS_FUNCTIONS[name]
    kwargs: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("net", "run", "data") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is inspect.Parameter.empty:
            kwargs[p.name] = EXTRA_ARGS[p.name]
        elif p.name in CHEAP:
            kwargs[p.name] = _cheap_config() if p.name == "config" else CHEAP[p.name]
    if first_param(name) == "data":
        return fn(data, **kwargs)
    if first_param(name) == "run":
        return fn(run_folder, data=data, **kwargs)
    if inspect.signature(fn).parameters["data"].kind is inspect.Parameter.KEYWORD_ONLY:
        return fn(net, data=data, **kwargs)
    return fn(net, data, **kwargs)


API_CASES = [(name, fault) for name in ANALYSIS_FUNCTIONS for fault in DATA_FAULTS]


@pytest.mark.parametrize("name, fault", API_CASES, ids=[f"{n}-{f}" for n, f in API_CASES])
def test_analysis_function_refuses_data_that_does_not_fit(name, fault, tiny_run):
    kind = first_param(name)
    if kind == "run":  # the tiny run's network: 16 inputs, 4 classes
        data = fault_data(fault, 16, 4)
    else:
        data = fault_data(fault, 6, 3, with_net=kind == "net")
    with pytest.raises(NetdynError) as info:
        call(name, small_net(), data, tiny_run)
    assert isinstance(info.value, ConfigError), f"{type(info.value).__name__}: {info.value}"
    assert len(str(info.value).splitlines()) == 1


QUANTITY_CASES = [(name, fault) for name in netdyn.QUANTITIES for fault in DATA_FAULTS]


@pytest.mark.parametrize("name, fault", QUANTITY_CASES, ids=[f"{n}-{f}" for n, f in QUANTITY_CASES])
def test_quantity_refuses_data_that_does_not_fit(name, fault):
    config = netdyn.AnalysisConfig(quantities=(name,), eps=(0.0, 1.0), repeats=1, basin_samples=8, max_samples=16)
    with pytest.raises(NetdynError) as info:
        netdyn.analyze(small_net(), fault_data(fault, 6, 3), config)
    assert isinstance(info.value, ConfigError), f"{type(info.value).__name__}: {info.value}"
    assert len(str(info.value).splitlines()) == 1


NET_FUNCTIONS = [name for name in ANALYSIS_FUNCTIONS if first_param(name) == "net"]


#: The functions that read any traceable nn.Module (SPEC 10) so far; the others take a netdyn MLP.
ANY_NETWORK = {"network_accuracy", "lmap_accuracy", "lp_accuracy", "class_geometry", "lmap_matrix", "sample_basin",
               "weight_basin", "rpd", "rpd_summary", "neuron_modes", "local_fields", "bn_perturbation", "analyze",
               "compute_quantities"}


@pytest.mark.parametrize("name", [n for n in NET_FUNCTIONS if n not in ANY_NETWORK])
def test_analysis_function_refuses_a_network_that_is_not_an_mlp(name, tiny_run):
    seq = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    data = fault_data("bad_label", 6, 3)  # any data: the network is refused first
    with pytest.raises(ModelError) as info:
        call(name, seq, data, tiny_run)
    assert "from_sequential" in str(info.value) and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("name", sorted(ANY_NETWORK & set(NET_FUNCTIONS)))
def test_any_network_function_reads_a_plain_module_and_refuses_its_bad_data(name, tiny_run):
    seq = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    with pytest.raises(NetdynError) as info:
        call(name, seq, fault_data("bad_label", 6, 3), tiny_run)
    assert "label" in str(info.value) and len(str(info.value).splitlines()) == 1
    bad = fault_data("bad_label", 6, 3)
    clean = netdyn.Dataset(bad.x_train, bad.y_train.clamp(0, 2), bad.x_test, bad.y_test, 3, "clean", (6,), {})
    if name == "local_fields":  # its default classes (1, 2, 3) are more than these data hold
        result = ANALYSIS_FUNCTIONS[name](seq, clean, classes=(1, 2))
    else:
        result = call(name, seq, clean, tiny_run)
    if name in ("analyze", "compute_quantities"):  # an Analysis, or (tables, summary): the L-map of every layer
        tables = result.tables if hasattr(result, "tables") else result[0]
        assert len(tables["lmap"]) > 0 and "cut" in tables["lmap"].columns
        return
    table = result.points if hasattr(result, "points") else getattr(result, "curve", result)  # LocalFields, BasinCurve
    assert len(table) > 0 or name == "bn_perturbation"  # a model without batch norm has no rows


class _Untraceable(torch.nn.Module):
    """Data-dependent control flow (torch.fx fails) and no transfer-function module (the hook path finds no cut)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class _FusedAttention(torch.nn.Module):
    """Three tokens of two features through nn.MultiheadAttention: attention as one fused op."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.act = torch.nn.Linear(2, 4), torch.nn.ReLU()
        self.attn, self.head = torch.nn.MultiheadAttention(4, 2, batch_first=True), torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.embed(x.reshape(x.shape[0], 3, 2)))
        return self.head(self.attn(h, h, h, need_weights=False)[0].mean(1))


#: (case, model, keyword arguments, error class, what the one line says) for the functions that read any model
ANY_MODEL_FAULTS = [
    ("both_paths_fail", _Untraceable, {}, ModelError, "torch.fx failed to trace.*forward hooks failed too"),
    ("constant_through_fused_attention", _FusedAttention, {"lmap_variant": "constant"}, ModelError,
     "MultiheadAttention 'attn'"),
    ("unknown_lmap_variant", _FusedAttention, {"lmap_variant": "frozen"}, ConfigError, "lmap_variant must be"),
]
ANY_MODEL_CASES = [(name, *fault) for name in ("lmap_accuracy", "lmap_matrix", "lp_accuracy", "class_geometry")
                   for fault in ANY_MODEL_FAULTS if name.startswith("lmap") or fault[0] == "both_paths_fail"]


@pytest.mark.parametrize("name, case, model, kwargs, error, message", ANY_MODEL_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in ANY_MODEL_CASES])
def test_a_model_the_adapter_cannot_read_or_an_impossible_lmap_variant_is_one_line(name, case, model, kwargs, error,
                                                                                   message):
    bad = fault_data("bad_label", 6, 3)
    data = netdyn.Dataset(bad.x_train, bad.y_train % 3, bad.x_test, bad.y_test % 3, 3, "clean", (6,), {})
    args = (1,) if name == "lmap_matrix" else ()
    with pytest.raises(error, match=message) as info:
        getattr(netdyn, name)(model().eval(), *args, data=data, **kwargs)
    assert len(str(info.value).splitlines()) == 1


def test_the_api_matrix_covers_the_spec_functions():
    spec_59 = {
        "lmap_accuracy", "lp_accuracy", "rpd", "rpd_summary", "neuron_modes", "class_geometry", "sample_basin",
        "weight_basin", "local_fields", "nearest_train_distance", "bn_perturbation", "analyze",
    }
    assert spec_59 <= set(ANALYSIS_FUNCTIONS)
    assert {c.__name__ for c in config_classes()} == {
        "RunSpec", "ModelSpec", "DataSpec", "TrainConfig", "AnalysisConfig"
    }
    assert len(CONFIG_CASES) > 100 and len(MLP_CASES) > 40


# ----------------------------------------------------------------------------------------- API: numerical failures
def extreme_net(scale: float):
    """A network with finite weights so large that its activations overflow float32 (its linear algebra fails)."""
    net = netdyn.MLP(6, 5, 2, 3, seed=0).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net


NUMERICAL_CASES = [(name, scale) for name in netdyn.QUANTITIES for scale in (1e15, 1e38)]


@pytest.mark.parametrize("name, scale", NUMERICAL_CASES, ids=[f"{n}-{s:g}" for n, s in NUMERICAL_CASES])
def test_a_numerical_failure_inside_a_quantity_is_one_line(name, scale):
    """Extreme but finite weights: each quantity gives its tables (NaN where it cannot measure) or one line."""
    config = netdyn.AnalysisConfig(quantities=(name,), eps=(0.0, 1.0), repeats=1, basin_samples=8, max_samples=16)
    data = fault_data("bad_label", 6, 3)
    data = netdyn.Dataset(data.x_train, data.y_train % 3, data.x_test, data.y_test % 3, 3, "fine", (6,), {})
    try:
        netdyn.analyze(extreme_net(scale), data, config)
    except NetdynError as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).strip()


def test_a_numerical_failure_through_the_command_line_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    netdyn.run(_tiny_spec(), out)
    run = netdyn.load_run(out)
    net = netdyn.MLP(16, 4, 2, 4, seed=0).eval()  # the tiny run's architecture, its weights made extreme
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e30)
    run.save_checkpoint(6, net, None, {"wall_time": 0.0})
    assert main(["analyze", str(out), "--quantities", "lp", "--quiet"]) == 1
    captured = capsys.readouterr()
    lines = one_line(captured.err)
    assert len(lines) == 1 and "Traceback" not in captured.err and "lp: its linear algebra failed" in lines[0]


@pytest.mark.parametrize("name", ["lp_accuracy", "fit_probe", "class_geometry"])
@pytest.mark.parametrize("scale", [1e15, 1e38])
def test_a_numerical_failure_in_a_direct_call_is_one_line(name, scale):
    """The functions with solvers inside (eigh, Cholesky, SVD) give their table or one line when called directly."""
    data = fault_data("bad_label", 6, 3)
    data = netdyn.Dataset(data.x_train, data.y_train % 3, data.x_test, data.y_test % 3, 3, "fine", (6,), {})
    args = (1,) if name == "fit_probe" else ()
    try:
        getattr(netdyn, name)(extreme_net(scale), data, *args)
    except NetdynError as exc:
        assert len(str(exc).splitlines()) == 1 and str(exc).strip()
