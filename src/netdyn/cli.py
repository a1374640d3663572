"""The command line: a thin layer from argv to the config dataclasses and the same API a Python user calls.

Exit status: 0 success, 1 a failure (bad data, an unreadable run folder, a place that cannot be written), 2 bad
arguments (malformed or out-of-range values, also for the run at hand; a path that names nothing, or a file where a
folder belongs), 3 a diverged run. Every error is one line on stderr, never a traceback.

Each flag's argparse ``type`` says what its value is (``kind``: int, number, text, list, words, path; a folder's
``role``: read, write or run), so that values are parsed strictly here and the bad-input tests can generate a
wrong value for every option of every command, new ones included.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netdyn import _config, _io
from netdyn.errors import ConfigError, NetdynError

EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED = 1, 2, 3


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


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


def _field_type(annotation: Any) -> Any:
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
) -> argparse._ArgumentGroup:
    """One ``--flag`` per dataclass field, its help from the field's docstring, its default the field's.

    ``rename`` gives a field another flag name (``seed`` -> ``--model-seed``; the value lands under the new name
    in the namespace), ``overrides`` other defaults, ``choices`` the allowed words of a field, ``helps`` help texts.
    """
    group = parser.add_argument_group(title or cls.__name__)
    docs = _config.field_docs(cls)
    overrides, rename, choices, helps = overrides or {}, rename or {}, choices or {}, helps or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = overrides.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        dest = rename.get(f.name, f.name)
        flag = "--" + dest.replace("_", "-")
        help_text = f"{helps.get(f.name, docs.get(f.name, ''))} (default: {default})"
        if isinstance(f.default, bool):
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif f.name in choices:
            group.add_argument(flag, dest=dest, default=default, choices=list(choices[f.name]), help=help_text)
        elif "tuple" in str(f.type):
            inner = str(f.type).split("tuple", 1)[1]
            kind = "str" if "str" in inner else "float" if "float" in inner else "int"
            group.add_argument(
                flag,
                dest=dest,
                default=default,
                metavar="A,B,...",
                type=_word_list if kind == "str" else NumberList(whole=kind == "int"),
                help=help_text,
            )
        else:
            group.add_argument(
                flag, dest=dest, default=default, metavar=dest.upper(), type=_field_type(f.type), help=help_text
            )
    return group


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
            return tuple(parse(v.strip()) for v in text.split(","))
        except argparse.ArgumentTypeError:
            what = "whole numbers" if self.whole else "finite numbers"
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    def __repr__(self) -> str:
        return "list of numbers"


def _word_list(text: str) -> tuple[str, ...] | None:
    if text.lower() in ("none", "all", ""):
        return None
    return tuple(w.strip() for w in text.split(",") if w.strip())


def _width(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or comma-separated whole numbers, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


_width.kind = "int"  # type: ignore[attr-defined]


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), _option_value(value.strip())


def _option_value(text: str) -> Any:
    """A data-set option's value: None, a whole number, a finite number, or the text itself."""
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


def dataclass_from_args(cls: type, args: argparse.Namespace, rename: dict[str, str] | None = None, **extra: Any):
    """``cls`` built from the parsed flags; a value it refuses is a ConfigError naming that value's flag."""
    rename = rename or {}
    values = {
        f.name: getattr(args, rename.get(f.name, f.name))
        for f in dataclasses.fields(cls)
        if hasattr(args, rename.get(f.name, f.name))
    }
    values.update(extra)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(_blame(cls, values, str(exc), rename)) from None


def _blame(cls: type, values: dict[str, Any], message: str, rename: dict[str, str]) -> str:
    """``message`` prefixed with the flag whose value alone is refused with that message (when one is)."""
    for name, value in values.items():
        try:
            cls(**{name: value})
        except ConfigError as solo:
            if str(solo) == message:
                return f"argument --{rename.get(name, name).replace('_', '-')}: {message}"
        except Exception:  # a value that fails alone for another reason is not the one to blame
            continue
    return message


# ---------------------------------------------------------------------------------------------- parser
#: Flags of the model and data specs whose names differ from their fields (seeds follow --seed by default).
MODEL_FLAGS = {"seed": "model_seed"}
DATA_FLAGS = {"name": "dataset", "seed": "data_seed"}


def build_parser() -> argparse.ArgumentParser:
    from netdyn.analysis.config import AnalysisConfig
    from netdyn.data._dataset import NORMALIZATIONS
    from netdyn.data.spec import DataSpec
    from netdyn.models.activations import ACTIVATIONS
    from netdyn.models.spec import INITS, RESIDUALS, ModelSpec
    from netdyn.training import TrainConfig

    parser = _Parser(
        prog="netdyn",
        description="Network-dynamics analysis of deep neural networks "
        "(Lin, Zhang, Feng, Zhao, arXiv 2501.02436).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train an MLP, recording its dynamics in a run folder",
        description="Train an MLP on a dataset and record its learning dynamics in a run folder.",
    )
    data = add_dataclass_options(
        p,
        DataSpec,
        skip=("options",),
        title="data",
        rename=DATA_FLAGS,
        overrides={"seed": None},
        choices={"normalize": NORMALIZATIONS},
        helps={
            "name": "dataset name (see `netdyn datasets`)",
            "seed": "seed of subsets and generated data (default: --seed)",
        },
    )
    data.add_argument(
        "--data-option", dest="data_options", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
        help="a data-set option, e.g. n_features=8 for blobs or test=heldout for mnist5k (repeatable)",
    )
    data.add_argument(
        "--data-root", default=None, type=Folder("read"), metavar="DIR", help="folder holding the dataset's files"
    )
    data.add_argument("--download", action="store_true", help="download mnist / fashion-mnist if missing")
    add_dataclass_options(
        p,
        ModelSpec,
        skip=("in_features", "num_classes"),
        title="model",
        rename=MODEL_FLAGS,
        choices={"activation": sorted(ACTIVATIONS), "residual": RESIDUALS, "init": INITS},
        helps={"seed": "seed of the initial weights (default: --seed)"},
    )
    next(a for a in p._actions if a.dest == "width").type = _width
    add_dataclass_options(p, TrainConfig, title="training")
    run = p.add_argument_group("run")
    run.add_argument(
        "--out", default=None, type=Folder("write"), metavar="DIR",
        help="the run folder (default runs/<dataset>-<time>)",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--analyze",
        action="store_true",
        help="after training, analyse the final network and write report.html in the run folder",
    )
    run.add_argument(
        "--basins",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --analyze: compute the attraction basins (the slowest part)",
    )
    p.set_defaults(handler=cmd_train)

    a = sub.add_parser(
        "analyze",
        help="analyse a run folder: tables, figures and report.html",
        description="Run the framework's analysis (SPEC 5) on a run folder's checkpoint(s) and "
        "write the tables under metrics/, the figures under figures/ and a self-contained "
        "report.html.",
    )
    a.add_argument("run", metavar="RUN_FOLDER", type=Folder("run"), help="a run folder written by netdyn train")
    a.add_argument(
        "--checkpoint",
        default="last",
        help="which checkpoint: a step, last, or all (each quantity as a function of training step)",
    )
    a.add_argument(
        "--data-root", default=None, type=Folder("read"), metavar="DIR",
        help="folder holding the run's dataset files on this machine",
    )
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    add_dataclass_options(a, AnalysisConfig, title="analysis")
    a.set_defaults(handler=cmd_analyze)

    d = sub.add_parser(
        "datasets",
        help="list the datasets and whether each is available here; --download NAME fetches one",
        description="List every dataset, whether it loads on this machine, and how to get it; "
        "with --download NAME, fetch the MNIST-format files of NAME (MD5-checked) first.",
    )
    d.add_argument(
        "--download", metavar="NAME", default=None, choices=["mnist", "fashion-mnist"],
        help="download mnist or fashion-mnist (into --data-root, else ~/.cache/netdyn/NAME)",
    )
    d.add_argument(
        "--data-root", default=None, type=Folder("write"), metavar="DIR",
        help="with --download: the folder to download into",
    )
    d.set_defaults(handler=cmd_datasets)

    import importlib

    from netdyn.commands import COMMAND_MODULES

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _version() -> str:
    from netdyn._version import __version__

    return f"netdyn {__version__}"


# ---------------------------------------------------------------------------------------------- commands
def run_spec_from_args(args: argparse.Namespace):
    """The :class:`~netdyn.orchestration.RunSpec` that ``netdyn train``'s flags describe."""
    from netdyn.analysis.config import AnalysisConfig
    from netdyn.data.spec import DataSpec
    from netdyn.models.spec import ModelSpec
    from netdyn.orchestration import RunSpec
    from netdyn.training import TrainConfig

    config = dataclass_from_args(TrainConfig, args)
    if args.model_seed is None:
        args.model_seed = config.seed
    if args.data_seed is None:
        args.data_seed = config.seed
    model = dataclass_from_args(ModelSpec, args, rename=MODEL_FLAGS)
    data = dataclass_from_args(DataSpec, args, rename=DATA_FLAGS, options=dict(args.data_options))
    analysis = None
    if args.analyze:
        analysis = AnalysisConfig(basins=args.basins, seed=config.seed, device=config.device, dtype=config.dtype)
    return RunSpec(model=model, data=data, train=config, analysis=analysis)


def cmd_train(args: argparse.Namespace) -> int:
    from netdyn._device import resolve_device
    from netdyn.orchestration import run
    from netdyn.store import check_run_target

    if args.resume and args.out is None:
        raise UsageError("netdyn train: error: --resume needs --out (the run folder to continue)")
    spec = run_spec_from_args(args)
    resolve_device(spec.train.device)  # a device this machine lacks is refused before the data is loaded
    out = Path(args.out) if args.out else Path("runs") / f"{spec.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_run_target(out, args.resume)
    _io.check_writable_folder(out, "run folder")
    result = run(
        spec, out, resume=args.resume, progress=not args.quiet, root=args.data_root, download=args.download
    )
    s = result.train.summary
    if result.train.diverged:
        print(
            f"netdyn train: diverged: the loss became non-finite at step {s['diverged_step']}; "
            f"records up to then are in {out}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    print(
        f"train accuracy {s.get('train_accuracy', float('nan')):.4f}, "
        f"test accuracy {s.get('test_accuracy', float('nan')):.4f} after {s['steps']} steps "
        f"({s['wall_time']:.1f} s)"
    )
    if result.analysis is not None:
        _print_analysis(result.analysis.summary)
        print(f"report: {out / 'report.html'}")
    print(f"run folder: {out}")
    return 0


def _print_analysis(summary: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return "not reached" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    print(
        f"L-map pruning effective from layer {fmt(summary.get('lmap_effective_layer'))}, "
        f"LP from layer {fmt(summary.get('lp_effective_layer'))}"
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


def cmd_analyze(args: argparse.Namespace) -> int:
    from netdyn._device import resolve_device
    from netdyn.analysis._common import check_config_fits
    from netdyn.orchestration import analyze_checkpoints, check_report_target, load_run, write_run_report

    run = load_run(args.run)
    config = dataclass_from_args(AnalysisConfig, args)
    resolve_device(config.device)
    steps: Any = args.checkpoint
    if steps not in ("last", "all", "first"):
        try:
            steps = [int(v) for v in str(steps).split(",")]
        except ValueError:
            raise UsageError(
                f"netdyn analyze: error: --checkpoint takes a step, last or all, got {steps!r}"
            ) from None
    # everything that could stop the analysis is checked before it is computed
    chosen, note = run.select_checkpoints(steps)
    check_report_target(run)
    data = run.dataset(root=args.data_root)
    check_config_fits(config, run.model(chosen[-1]), int(data.num_classes))
    if note is not None:
        print(f"netdyn analyze: note: {note}", file=sys.stderr)
    analysis = analyze_checkpoints(run, chosen, config, data=data, progress=not args.quiet)
    report = write_run_report(run, analysis)
    _print_analysis(analysis.summary)
    print(f"tables: {run.metrics_dir}")
    print(f"report: {report}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from netdyn.data import list_datasets, load_dataset
    from netdyn.data._mnist import cache_folder

    if args.data_root is not None and not args.download:
        raise UsageError(
            "netdyn datasets: error: argument --data-root: it names the folder --download saves into; "
            "give --download NAME too"
        )
    if args.download:
        _io.check_writable_folder(args.data_root or cache_folder(args.download), "download folder")
        data = load_dataset(args.download, root=args.data_root, download=True)
        print(f"{args.download}: {data.n_train} training and {data.n_test} test samples are here")
    table = list_datasets()
    name_w = max(len(n) for n in table["name"])
    size_w = max(len(str(s)) for s in table["size"])
    print(f"{'name':<{name_w}}  here  {'train / test':<{size_w}}  source")
    for row in table.itertuples():
        mark = "yes " if row.available else "no  "
        line = f"{row.name:<{name_w}}  {mark}  {row.size!s:<{size_w}}  {row.source}"
        if not row.available:
            line += f"\n{'':<{name_w}}        how to get it: {row.how_to_get}"
        print(line)
    return 0


# ---------------------------------------------------------------------------------------------- entry
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in-process; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        with warnings.catch_warnings():
            warnings.showwarning = _note
            return args.handler(args)
    except UsageError as exc:
        print(_one_line(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except NetdynError as exc:
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:  # the operating system refused something netdyn does not wrap: still one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"netdyn {_command(argv)}: error: {_one_line(str(exc.strerror or exc))}{where}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("netdyn: interrupted; completed checkpoints and tables are kept", file=sys.stderr)
        return 130


def _note(message: Warning | str, category: type, filename: str, lineno: int, file: Any = None, line: Any = None):
    """A warning on the command line: one line on stderr (the sizes a basin never reached, and the like)."""
    print(f"netdyn: note: {_one_line(str(message))}", file=sys.stderr)


def _one_line(message: str) -> str:
    """An error message on one line, whatever a library wrapped into it."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _command(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
