"""The command line: a thin layer from argv to the config dataclasses and the same API a Python user calls.

Exit status: 0 success, 1 a failure (bad data, unreadable run folder), 2 bad arguments, 3 a diverged run.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from netdyn.errors import ConfigError, NetdynError

EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED = 1, 2, 3


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings written under a dataclass's fields (read from its source)."""
    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return docs
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value.strip()
    return docs


def _parse_value(text: str, default: Any) -> Any:
    """A flag's text as the type of the field's default (ints stay ints; 'log:N' stays a string)."""
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int) and not isinstance(default, bool):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                continue
        return text  # e.g. eval_every given as "log:20"
    if isinstance(default, float):
        return float(text)
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


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
    docs = field_docs(cls)
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
            words = "str" in str(f.type).split("tuple", 1)[1] and "int" not in str(f.type).split("tuple", 1)[1]
            group.add_argument(
                flag,
                dest=dest,
                default=default,
                metavar="A,B,...",
                type=_word_list if words else _comma_list,
                help=help_text,
            )
        else:
            group.add_argument(
                flag,
                dest=dest,
                default=default,
                metavar=dest.upper(),
                type=lambda s, d=f.default: _parse_value(s, d),
                help=help_text,
            )
    return group


def _comma_list(text: str) -> tuple[float | int, ...] | None:
    if text.lower() in ("none", "all", ""):
        return None
    try:
        return tuple(int(v) if v.strip().lstrip("-").isdigit() else float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


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


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), _parse_value(value.strip(), None)


def dataclass_from_args(cls: type, args: argparse.Namespace, rename: dict[str, str] | None = None, **extra: Any):
    rename = rename or {}
    values = {
        f.name: getattr(args, rename.get(f.name, f.name))
        for f in dataclasses.fields(cls)
        if hasattr(args, rename.get(f.name, f.name))
    }
    values.update(extra)
    return cls(**values)


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
    data.add_argument("--data-root", default=None, help="folder holding the dataset's files")
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
    run.add_argument("--out", default=None, help="the run folder (default runs/<dataset>-<time>)")
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
    a.add_argument("run", metavar="RUN_FOLDER", help="a run folder written by netdyn train")
    a.add_argument(
        "--checkpoint",
        default="last",
        help="which checkpoint: a step, last, or all (each quantity as a function of training step)",
    )
    a.add_argument("--data-root", default=None, help="folder holding the run's dataset files on this machine")
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
    d.add_argument("--data-root", default=None, help="with --download: the folder to download into")
    d.set_defaults(handler=cmd_datasets)

    import importlib

    from netdyn.commands import COMMAND_MODULES

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def _version() -> str:
    from netdyn import __version__

    return f"netdyn {__version__}"


# ---------------------------------------------------------------------------------------------- commands
def run_spec_from_args(args: argparse.Namespace):
    """The :class:`~netdyn.spec.RunSpec` that ``netdyn train``'s flags describe."""
    from netdyn.analysis.config import AnalysisConfig
    from netdyn.data.spec import DataSpec
    from netdyn.models.spec import ModelSpec
    from netdyn.spec import RunSpec
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
    from netdyn.spec import run

    if args.resume and args.out is None:
        raise UsageError("netdyn train: error: --resume needs --out (the run folder to continue)")
    spec = run_spec_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / f"{spec.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
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
    from netdyn.analysis.analyze import AnalysisConfig, analyze_checkpoints
    from netdyn.report.run import write_run_report
    from netdyn.store import load_run

    run = load_run(args.run)
    config = dataclass_from_args(AnalysisConfig, args)
    steps: Any = args.checkpoint
    if steps not in ("last", "all", "first"):
        try:
            steps = [int(v) for v in str(steps).split(",")]
        except ValueError:
            raise UsageError(
                f"netdyn analyze: error: --checkpoint takes a step, last or all, got {steps!r}"
            ) from None
    data = run.dataset(root=args.data_root)
    analysis = analyze_checkpoints(run, steps, config, data=data, progress=not args.quiet)
    report = write_run_report(run, analysis)
    _print_analysis(analysis.summary)
    print(f"tables: {run.metrics_dir}")
    print(f"report: {report}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from netdyn.data import list_datasets, load_dataset

    if args.download:
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
        return args.handler(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"netdyn {_command(argv)}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NetdynError as exc:
        print(f"netdyn {_command(argv)}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("netdyn: interrupted; completed checkpoints and tables are kept", file=sys.stderr)
        return 130


def _command(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), "")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
