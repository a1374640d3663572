"""What the commands share: exit statuses, the one-line usage error, the argparse types that say what each value
is, and the options built from the config dataclasses.

Each flag's argparse ``type`` says what its value is (``kind``: int, number, text, list, words, path; a folder's
``role``: read, write or run), so that values are parsed strictly here and the bad-input tests can generate a
wrong value for every option of every command, new ones included.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netdyn import _config, _io
from netdyn.errors import ConfigError

EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED = 1, 2, 3


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2, without the usage block, and writes its
    help as plain text (:class:`PlainHelp`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", PlainHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


class PlainHelp(argparse.HelpFormatter):
    """Help text without the reST markup of the docstrings it is drawn from (the one place that strips it)."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))


#: reST roles (``:class:`~netdyn.X```), literals (````x````), emphasis (``**x**``, ``*x*``) and single backticks.
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_MARKUP = re.compile(r"``([^`]+)``|\*\*([^*]+)\*\*|`([^`]+)`")


def plain_text(text: str) -> str:
    """``text`` without reST markup: a role keeps its target (``:class:`~netdyn.data.Dataset``` -> ``Dataset``, the
    last part where the target has a ``~``), literals and emphasis keep their words."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1), text)
    return _MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), text)


# ---------------------------------------------------------------------------------------------- value types
class Whole:
    """argparse type: a whole number (``optional``: or "none")."""

    kind = "int"

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional

    def __call__(self, text: str) -> int | None:
        if self.optional and text.strip().lower() == "none":
            return None
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None

    def __repr__(self) -> str:
        return "whole number"


class Number:
    """argparse type: a finite number, kept an int when written as one (``optional``: or "none")."""

    kind = "number"

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional

    def __call__(self, text: str) -> float | int | None:
        if self.optional and text.strip().lower() == "none":
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        return value

    def __repr__(self) -> str:
        return "number"


class Text:
    """argparse type: a word, kept as written; with ``ints`` a whole number becomes an int ("log:20" or 100)."""

    kind = "text"

    def __init__(self, ints: bool = False) -> None:
        self.ints = ints

    def __call__(self, text: str) -> str | int:
        if self.ints and re.fullmatch(r"[+-]?\d+", text.strip()):
            return int(text)
        return text

    def __repr__(self) -> str:
        return "text"


class Folder:
    """argparse type of a folder option. ``role`` says how the command uses it: "read" (must exist), "write"
    (created when missing) or "run" (a run folder, read and written). A path that names nothing (where it must
    exist), a file, or a path under a file is a bad argument; whether a folder can be written is asked by the
    command before it starts its work (:func:`netdyn._io.check_writable_folder`)."""

    kind = "path"

    def __init__(self, role: str) -> None:
        if role not in ("read", "write", "run"):
            raise ValueError(f"unknown folder role {role!r}")
        self.role = role

    def __call__(self, text: str) -> str:
        path = Path(text).expanduser()
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
        blocker = _io.file_in_the_way(path.parent)
        if blocker is not None:
            raise argparse.ArgumentTypeError(f"{path} lies under {blocker}, which is a file")
        if self.role != "write" and not path.is_dir():
            raise argparse.ArgumentTypeError(f"no such folder: {path}")
        return str(path)

    def __repr__(self) -> str:
        return f"{self.role} folder"


class NumberList:
    """argparse type: comma-separated finite numbers (``whole``: whole numbers); "none", "all" or "" for None."""

    kind = "list"

    def __init__(self, whole: bool = False) -> None:
        self.whole = whole

    def __call__(self, text: str) -> tuple[float | int, ...] | None:
        if text.strip().lower() in ("none", "all", ""):
            return None
        parse = Whole() if self.whole else Number()
        try:
            values = tuple(parse(v.strip()) for v in text.split(","))
        except argparse.ArgumentTypeError:
            what = "whole numbers" if self.whole else "finite numbers"
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        return tuple(v for v in values if v is not None)  # neither type gives None unless ``optional``

    def __repr__(self) -> str:
        return "list of numbers"


class Count(Whole):
    """argparse type: a whole number >= ``low``."""

    def __init__(self, low: int = 1) -> None:
        super().__init__()
        self.low = low

    def __call__(self, text: str) -> int:
        value = super().__call__(text)
        if value is None or value < self.low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {self.low}, got {text!r}")
        return value


class Amount(Number):
    """argparse type: a finite number >= ``low`` (``> low`` when ``strict``) and below ``high`` when given."""

    def __init__(self, low: float = 0.0, high: float | None = None, strict: bool = False) -> None:
        super().__init__()
        self.low, self.high, self.strict = low, high, strict

    def __call__(self, text: str) -> float:
        value = super().__call__(text)
        if value is None or not self._inside(value):
            bound = f"{'>' if self.strict else '>='} {self.low:g}" + (f" and < {self.high:g}" if self.high else "")
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    def _inside(self, value: float) -> bool:
        above = value > self.low or (value == self.low and not self.strict)
        return above and (self.high is None or value < self.high)


class Counts(NumberList):
    """argparse type: comma-separated whole numbers >= 1 (depths, widths)."""

    def __init__(self) -> None:
        super().__init__(whole=True)

    def __call__(self, text: str) -> list[int]:  # type: ignore[override]
        values = super().__call__(text)
        if not values or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got {text!r}")
        return [int(v) for v in values]


def word_list(text: str) -> tuple[str, ...] | None:
    """argparse type: comma-separated words; "none", "all" or "" for None."""
    if text.lower() in ("none", "all", ""):
        return None
    return tuple(w.strip() for w in text.split(",") if w.strip())


def width(text: str) -> int | tuple[int, ...]:
    """argparse type of ``--width`` and ``--blocks``: one whole number, or one per hidden layer (stage)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or comma-separated whole numbers, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


width.kind = "int"  # type: ignore[attr-defined]


def key_value(text: str) -> tuple[str, Any]:
    """argparse type of ``--data-option``: KEY=VALUE, the value None, a number or the text."""
    from netdyn.orchestration.settings import option_value

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), option_value(value.strip())


# ---------------------------------------------------------------------------------------------- dataclass options
def field_type(annotation: Any) -> Any:
    """The argparse type of a dataclass field from its annotation (a string under ``from __future__ import
    annotations``): whole numbers, finite numbers, or text; "none" where the field may be None."""
    words = set(re.findall(r"[A-Za-z_]+", str(annotation)))
    optional = "None" in words
    if "str" in words:
        return Text(ints="int" in words)
    if "float" in words:
        return Number(optional)
    if "int" in words:
        return Whole(optional)
    return Text()


def add_dataclass_options(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: Sequence[str] = (),
    title: str | None = None,
    overrides: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None,
    choices: dict[str, Sequence[str]] | None = None,
    helps: dict[str, str] | None = None,
    defaults: bool = True,
) -> argparse._ArgumentGroup:
    """One ``--flag`` per dataclass field, its help from the field's docstring, its default the field's.

    ``rename`` gives a field another flag name (``seed`` -> ``--model-seed``; the value lands under the new name
    in the namespace), ``overrides`` other defaults, ``choices`` the allowed words of a field, ``helps`` help texts.
    Without ``defaults`` a flag not given leaves no value in the namespace (its help still says the default).
    """
    group = parser.add_argument_group(title or cls.__name__)
    docs = _config.field_docs(cls)
    overrides, rename, choices, helps = overrides or {}, rename or {}, choices or {}, helps or {}
    flags = {f.name: "--" + rename.get(f.name, f.name).replace("_", "-") for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = overrides.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        dest = rename.get(f.name, f.name)
        text = helps[f.name] if f.name in helps else _flag_words(docs.get(f.name, ""), flags)
        options: dict[str, Any] = dict(
            dest=dest,
            default=default if defaults else argparse.SUPPRESS,
            help=text + _default_note(text, default, flags[f.name]),
        )
        if isinstance(f.default, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif f.name in choices:
            options["choices"] = list(choices[f.name])
        else:
            options.update(_value_type(f.type, dest))
        group.add_argument("--" + dest.replace("_", "-"), **options)
    return group


def _flag_words(doc: str, flags: dict[str, str]) -> str:
    """A field's docstring in the command line's words: a field's name is its flag (````steps```` -> ``--steps``;
    a name with an underscore also unquoted: ``eval_every`` -> ``--eval-every``) and "None: ..." is "none: ...",
    as the flags take it."""
    doc = re.sub(r"``(\w+)``", lambda m: flags.get(m.group(1), m.group(0)), doc)
    doc = re.sub(r"(?<![\w.-])([a-z]+_[a-z_]+)\b", lambda m: flags.get(m.group(1), m.group(0)), doc)
    return re.sub(r"\bNone(?=:)", "none", doc)


def _default_note(text: str, default: Any, flag: str) -> str:
    """`` (default: X)`` after a help text, in the flag's spelling; nothing where the text states its default, or
    where there is none to state."""
    if default is None or re.search(r"\(default\b|\bdefault:|\bnone:", text, re.IGNORECASE):
        return ""
    if isinstance(default, bool):
        return f" (default: {flag if default else '--no-' + flag[2:]})"
    return f" (default: {_config.flag_text(default)})"


def _value_type(annotation: Any, dest: str) -> dict[str, Any]:
    """``type`` and ``metavar`` of a field's flag: a comma-separated list for a tuple, else by ``field_type``."""
    if "tuple" not in str(annotation):
        return {"type": field_type(annotation), "metavar": dest.upper()}
    inner = str(annotation).split("tuple", 1)[1]
    kind = "str" if "str" in inner else "float" if "float" in inner else "int"
    return {"type": word_list if kind == "str" else NumberList(whole=kind == "int"), "metavar": "A,B,..."}


def dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    """``cls`` built from the parsed flags named as its fields; a value it refuses is a ConfigError naming that
    value's flag."""
    from netdyn.orchestration.settings import refused_field

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    try:
        return cls(**values)
    except ConfigError as exc:
        name = refused_field(cls, values, str(exc))
        if name is None:
            raise
        raise ConfigError(f"{flag_of(name)}: {exc}") from None


def flag_of(key: str) -> str:
    """How an error names the flag of a field or setting: ``argument --batch-size``."""
    return f"argument --{key.replace('_', '-')}"


# ---------------------------------------------------------------------------------------------- the run's flags
def add_run_spec_options(parser: argparse.ArgumentParser, defaults: bool = True, files: bool = True) -> list[str]:
    """``netdyn train``'s flags of the data, the model and the training (one per field of DataSpec, ModelSpec and
    TrainConfig, named as the sweep keys are; ``--data-root`` and ``--download`` too with ``files``); returns the
    destinations of the spec's flags. Without ``defaults`` only the flags given land in the namespace."""
    from netdyn.data._dataset import NORMALIZATIONS
    from netdyn.data.spec import DataSpec
    from netdyn.models.activations import ACTIVATIONS
    from netdyn.models.spec import ARCHS, INITS, POOLS, RESIDUALS, ModelSpec
    from netdyn.orchestration.settings import FLAG_NAMES
    from netdyn.training import TrainConfig
    from netdyn.training.config import BN_EVALS, DTYPES, LOSSES, OPTIMIZERS

    first = len(parser._actions)
    model_flags = {field: name for (part, field), name in FLAG_NAMES.items() if part == "model"}
    data_flags = {field: name for (part, field), name in FLAG_NAMES.items() if part == "data"}
    data = add_dataclass_options(
        parser, DataSpec, skip=("options",), title="data", rename=data_flags, overrides={"seed": None},
        choices={"normalize": NORMALIZATIONS}, defaults=defaults,
        helps={
            "name": "a dataset of netdyn datasets (an installed package's too), or a file.npz holding x_train, "
            "y_train, x_test, y_test (default: mnist5k)",
            "seed": "seed of subsets and generated data (default: --seed)",
        },
    )
    data.add_argument(
        "--data-option", dest="data_options", action="append", default=[] if defaults else argparse.SUPPRESS,
        type=key_value, metavar="KEY=VALUE",
        help="a data-set option, e.g. n_features=8 for blobs or test=heldout for mnist5k (repeatable)",
    )
    if files:
        data.add_argument(
            "--data-root", default=None, type=Folder("read"), metavar="DIR", help="folder holding the dataset's files"
        )
        data.add_argument("--download", action="store_true", help="download mnist / fashion-mnist if missing")
    add_dataclass_options(
        parser, ModelSpec, skip=("in_features", "num_classes", "input_shape"), title="model", rename=model_flags,
        defaults=defaults, helps={"seed": "seed of the initial weights (default: --seed)"},
        choices={"activation": sorted(ACTIVATIONS), "residual": RESIDUALS, "init": INITS, "arch": ARCHS, "pool": POOLS},
    )
    for action in parser._actions:
        if action.dest in ("width", "blocks"):
            action.type = width
    add_dataclass_options(
        parser, TrainConfig, title="training", defaults=defaults,
        choices={"optimizer": OPTIMIZERS, "loss": LOSSES, "dtype": DTYPES, "bn_eval": BN_EVALS},
    )
    return [a.dest for a in parser._actions[first:] if a.dest not in ("data_root", "download")]


def add_analyze_options(group: argparse._ArgumentGroup, defaults: bool = True) -> list[str]:
    """``--analyze`` and ``--basins``: whether a run is analysed, and with the basins; returns their destinations."""
    group.add_argument(
        "--analyze",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="after training, analyse the final network and write report.html in the run folder",
    )
    group.add_argument(
        "--basins",
        action=argparse.BooleanOptionalAction,
        default=True if defaults else argparse.SUPPRESS,
        help="with --analyze: compute the attraction basins (the slowest part)",
    )
    return ["analyze", "basins"]


def settings_from_args(args: argparse.Namespace, dests: Sequence[str]) -> dict[str, Any]:
    """The run's settings among the parsed flags, by destination (a sweep key): the flags given, or every flag
    where the parser has defaults."""
    return {dest: getattr(args, dest) for dest in dests if hasattr(args, dest)}


# ---------------------------------------------------------------------------------------------- sweeps
def add_backend_options(p: argparse.ArgumentParser) -> None:
    """Where points run: the flags ``sweep`` and ``recommend`` share."""
    g = p.add_argument_group("backend")
    g.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: worker processes of this machine (default); ray: Ray tasks")
    g.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="with --backend ray: the cluster head's address (default: start a local Ray instance)")
    g.add_argument("--connect-timeout", type=Amount(strict=True), default=30.0, metavar="S",
                   help="with --address: give up after this many seconds (default: 30)")
    g.add_argument("--workers", type=Count(1), default=None, metavar="N",
                   help="local backend: worker processes (default: CPUs // --cpus-per-point)")
    g.add_argument("--cpus-per-point", type=Count(1), default=1, metavar="N", help="CPUs (torch threads) per point")
    g.add_argument("--gpus-per-point", type=Amount(), default=0, metavar="N",
                   help="GPUs per point (ray: fractions share a GPU; local: whole GPUs, one set per worker)")
    g.add_argument("--retry-failed", action="store_true", help="run the points that failed before again")
    g.add_argument("--data-root", default=None, type=Folder("read"), metavar="DIR",
                   help="folder holding the data set's files on the workers")
    g.add_argument("--download", action="store_true", help="download mnist / fashion-mnist if missing")


def backend_from_args(args: argparse.Namespace) -> Any:
    """The sweep backend the flags of :func:`add_backend_options` describe."""
    from netdyn.sweeps import LocalBackend, RayBackend

    if args.backend == "local":
        if args.address is not None:
            raise ConfigError(f"argument --address: {args.address!r} needs --backend ray")
        if args.gpus_per_point != int(args.gpus_per_point):
            raise ConfigError("argument --gpus-per-point: the local backend gives whole GPUs")
        return LocalBackend(workers=args.workers, cpus_per_point=args.cpus_per_point,
                            gpus_per_point=int(args.gpus_per_point))
    if args.workers is not None:
        raise ConfigError(
            "argument --workers: for the local backend; Ray places points by --cpus-per-point / --gpus-per-point"
        )
    return RayBackend(address=args.address, cpus_per_point=args.cpus_per_point, gpus_per_point=args.gpus_per_point,
                      connect_timeout=args.connect_timeout)


# ---------------------------------------------------------------------------------------------- output
def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose``, which every command takes (``netdyn.cli`` adds them)."""
    g = parser.add_argument_group("output").add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or settings lines: only results, notes on what was analysed, and errors")
    g.add_argument("-v", "--verbose", action="store_true", help="also log what is loaded and computed, on stderr")


def print_analysis(summary: dict[str, Any]) -> None:
    """The analysis summary's headline numbers, as ``netdyn train --analyze`` and ``netdyn analyze`` print them."""

    def fmt(v: Any) -> str:
        return "not reached" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    for name, label in (("lmap", "L-map"), ("lp", "LP")):
        print(
            f"{label} pruning effective first at layer {fmt(summary.get(f'{name}_effective_earliest'))}, "
            f"at every layer from {fmt(summary.get(f'{name}_effective_from'))}"
        )
    if "rpd_gradient_first" in summary:
        print(
            f"RPD gradient {fmt(summary['rpd_gradient_first'])} (first hidden layer) -> "
            f"{fmt(summary['rpd_gradient_last'])} (last)"
        )
    if "sample_basin_size_half" in summary:
        print(
            f"basin size (accuracy halves at eps): sample space {fmt(summary['sample_basin_size_half'])}, "
            f"weight space {fmt(summary['weight_basin_size_half'])}"
        )
