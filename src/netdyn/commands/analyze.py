"""``netdyn analyze RUN``: the analysis of a run folder's checkpoints, its tables, figures and report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netdyn.commands._options import Folder, UsageError, add_dataclass_options, dataclass_from_args, print_analysis


def add_parser(sub: argparse._SubParsersAction) -> None:
    from netdyn.analysis import AnalysisConfig
    from netdyn.analysis.config import BN_MODES
    from netdyn.models.adapter import LMAP_VARIANTS

    a = sub.add_parser(
        "analyze",
        help="analyse a run folder: tables, figures and report.html",
        description="Run the framework's analysis on a run folder's checkpoint(s) and "
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
    add_dataclass_options(
        a, AnalysisConfig, title="analysis",
        choices={"bn_mode": BN_MODES, "dtype": ("float32", "float64"), "lmap_variant": LMAP_VARIANTS},
    )
    a.set_defaults(handler=cmd_analyze)


def checkpoint_steps(text: str) -> Any:
    """``--checkpoint``: last, all, first, or comma-separated steps."""
    if text in ("last", "all", "first"):
        return text
    try:
        return [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"netdyn analyze: error: --checkpoint takes a step, last or all, got {text!r}") from None


def cmd_analyze(args: argparse.Namespace) -> int:
    from netdyn._device import resolve_device
    from netdyn.analysis import AnalysisConfig
    from netdyn.analysis._common import check_config_fits
    from netdyn.analysis.compute import Layers, read_model
    from netdyn.orchestration import analyze_checkpoints, check_report_target, load_run, write_run_report

    run = load_run(args.run)
    config = dataclass_from_args(AnalysisConfig, args)
    resolve_device(config.device)
    steps = checkpoint_steps(args.checkpoint)
    # everything that could stop the analysis is checked before it is computed
    chosen, note = run.select_checkpoints(steps)
    check_report_target(run)
    data = run.dataset(root=args.data_root)
    samples, n_layers, _ = read_model(run.model(chosen[-1]), data, **run.reading)
    check_config_fits(config, Layers(n_layers), int(samples.num_classes))
    if note is not None:  # which checkpoint was analysed (a diverged run's last finite one): part of the result
        print(f"netdyn analyze: note: {note}", file=sys.stderr)
    if run.summary.get("warning"):  # e.g. a monitor that saw no training step: its checkpoint is the untrained net
        print(f"netdyn analyze: warning: {run.summary['warning']}", file=sys.stderr)
    analysis = analyze_checkpoints(run, chosen, config, data=data, progress=not args.quiet)
    report = write_run_report(run, analysis)
    print_analysis(analysis.summary)
    print(f"tables: {run.metrics_dir}")
    print(f"report: {report}")
    return 0
