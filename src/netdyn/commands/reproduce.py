"""``netdyn reproduce``: the paper's experiments (see docs/verdicts.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from netdyn.commands._options import Folder, UsageError
from netdyn.experiments.base import SCALES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce an experiment of the paper (figures, report, verdict numbers)",
        description="Run one of the paper's experiments (or all of them) at a scale and write its experiment "
        "folder: member runs, tidy tables, one figure per paper panel, report.html and summary.json.",
    )
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="the experiment (see --list), or all")
    p.add_argument("--list", action="store_true", help="list the experiments with their measured wall times")
    p.add_argument("--scale", default="small", choices=SCALES, help="smoke, small (default) or paper")
    p.add_argument("--dataset", default=None, help="train on this data set instead of the scale's")
    p.add_argument("--device", default=None, help="device of training and analysis (default: the scale's, auto)")
    p.add_argument("--seeds", default=None, type=int, help="seeds per configuration (default: the scale's)")
    p.add_argument(
        "--threads", default=None, type=int, metavar="N",
        help="torch and BLAS threads of training and analysis, recorded in config.json (default 1: float32 "
        "results depend on the thread count, so the same command gives the same tables on any machine)",
    )
    p.add_argument(
        "--jobs", default=1, type=int, metavar="N",
        help="with all: run N experiments at once, each in its own process (default 1; with --threads 1 on a "
        "2-core machine, 2 uses both cores)",
    )
    p.add_argument(
        "--table", default=None, type=Folder("read"), metavar="DIR",
        help="print the verdict table (markdown) of every experiment folder under DIR and exit",
    )
    p.add_argument(
        "--out", default=None, type=Folder("write"), metavar="DIR",
        help="the experiment folder (default reproductions/NAME-SCALE)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment in --out")
    p.add_argument(
        "--data-root", default=None, type=Folder("read"), metavar="DIR", help="folder holding the data set's files"
    )
    p.add_argument("--download", action="store_true", help="download mnist / fashion-mnist if missing")
    p.set_defaults(handler=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from netdyn.experiments import list_experiments, run_all, run_experiment

    if args.list:
        table = list_experiments()
        for row in table.itertuples():
            times = ", ".join(f"{scale} {getattr(row, scale)}" for scale in SCALES)
            print(f"{row.name:<20} {row.figure:<8} {row.shows}\n{'':<29} measured: {times}")
        return 0
    if args.table is not None:
        from netdyn.experiments.verdicts import verdict_markdown, verdict_table

        table = verdict_table(args.table)
        if table.empty:
            raise UsageError(f"netdyn reproduce: error: no experiment folder (summary.json) under {args.table}")
        print(verdict_markdown(table))
        return 0
    if args.name is None:
        raise UsageError("netdyn reproduce: error: give an experiment NAME, all, --list or --table DIR")
    _check_run_arguments(args)
    options = dict(dataset=args.dataset, device=args.device, seeds=args.seeds, threads=args.threads,
                   resume=args.resume,
                   progress=not args.quiet, root=args.data_root, download=args.download)
    if args.name == "all":
        results = run_all(args.scale, args.out, jobs=args.jobs, **options)
        for result in results:
            print(f"{result.name}: {result.folder / 'report.html'} ({result.summary['wall_time']:.0f} s; "
                  f"{result.summary['verdict'] or 'no criteria'})")
        index = Path(results[0].folder).parent
        wall = json.loads((index / "all.json").read_text())["wall_time"]
        print(f"all {len(results)} experiments: {wall / 60:.1f} min, {args.jobs} at a time")
        print(f"index: {index / 'report.html'}")
        return 0
    result = run_experiment(args.name, args.scale, args.out, **options)
    print(f"{result.name} ({result.summary['figure']}, scale {result.scale}): {result.summary['wall_time']:.1f} s")
    print(f"verdict: {result.summary['verdict_line']}")
    print(f"report: {result.folder / 'report.html'}")
    print(f"experiment folder: {result.folder}")
    return 0


def _check_run_arguments(args: argparse.Namespace) -> None:
    """One UsageError line for an unknown experiment or an impossible seed, thread or job count."""
    from netdyn.experiments import EXPERIMENTS

    if args.name != "all" and args.name not in EXPERIMENTS:
        raise UsageError(
            f"netdyn reproduce: error: unknown experiment {args.name!r}; choose one of {', '.join(EXPERIMENTS)}, all"
        )
    for flag in ("seeds", "threads", "jobs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"netdyn reproduce: error: --{flag} must be >= 1, got {value}")
    if args.jobs > 1 and args.name != "all":
        raise UsageError("netdyn reproduce: error: --jobs runs several experiments at once; it needs NAME all")
