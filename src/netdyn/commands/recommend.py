"""``netdyn recommend``: the depth and width a data set needs, with the evidence, from a depth x width sweep."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from netdyn.commands._options import (
    Amount,
    Count,
    Counts,
    Folder,
    UsageError,
    add_backend_options,
    backend_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from netdyn.recommendation import BASIN_RTOL, DEFAULT_DEPTHS, DEFAULT_SEEDS, DEFAULT_WIDTHS

    p = sub.add_parser(
        "recommend",
        help="run (or read) a depth x width sweep and recommend a depth and width, with the evidence",
        description="Run a depth x width x seed sweep (batch-norm ReLU MLPs by default; --set changes any train "
        "setting) or read one (--from), and report the critical depth (where L-map pruning becomes effective, "
        "where the sample basin saturates), the width where the basins converge, and the configuration with the "
        "best test accuracy with its seed spread, saying which criteria agree. Writes report.html, summary.json, "
        "metrics/ and figures/ into --out.",
    )
    p.add_argument("--dataset", default=None, help="the data set to sweep (see netdyn datasets)")
    p.add_argument("--depths", type=Counts(), default=list(DEFAULT_DEPTHS), metavar="D1,D2,...",
                   help=f"depths (hidden layers) of the grid (default: {','.join(map(str, DEFAULT_DEPTHS))})")
    p.add_argument("--widths", type=Counts(), default=list(DEFAULT_WIDTHS), metavar="W1,W2,...",
                   help=f"widths of the grid (default: {','.join(map(str, DEFAULT_WIDTHS))})")
    p.add_argument("--seeds", type=Count(1), default=DEFAULT_SEEDS,
                   help=f"seeds per configuration (default: {DEFAULT_SEEDS})")
    p.add_argument("--from", dest="sweep_dir", default=None, type=Folder("read"), metavar="SWEEP_DIR",
                   help="read this sweep folder instead of running one (its points differ in depth, width, seed)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                   help="a netdyn train setting of every point, e.g. --set epochs=20 --set train-size=2000")
    p.add_argument("--basin-samples", type=Count(1), default=500, help="training samples of each basin (default: 500)")
    p.add_argument("--basin-rtol", type=Amount(0.0, 1.0), default=BASIN_RTOL,
                   help=f"relative change under which basins count as converged (default: {BASIN_RTOL})")
    p.add_argument("--out", default=None, type=Folder("write"), metavar="DIR",
                   help="the report folder (default: recommendations/DATASET-TIME; the sweep runs into OUT/sweep)")
    add_backend_options(p)
    p.set_defaults(handler=cmd_recommend)


def cmd_recommend(args: argparse.Namespace) -> int:
    from netdyn import _io
    from netdyn.recommendation import run_recommendation
    from netdyn.sweeps import parse_assignments

    # every value is checked before the sweep starts; the folders first, then the settings, then the backend
    if args.out is not None:
        _io.check_writable_folder(args.out, "report folder")
    fixed = parse_assignments(args.fixed, split_values=False)
    backend = backend_from_args(args)
    if args.dataset is None and args.sweep_dir is None:
        raise UsageError("netdyn recommend: error: give --dataset (to run the sweep) or --from SWEEP_DIR")
    if args.dataset is not None and args.sweep_dir is not None:
        raise UsageError("netdyn recommend: error: --dataset runs a sweep and --from reads one: give one of them")
    if args.out is not None:
        out = Path(args.out)
    elif args.sweep_dir is not None:
        out = Path(args.sweep_dir) / "recommend"
    else:
        out = Path("recommendations") / f"{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    _io.check_writable_folder(out, "report folder")
    rec, report = run_recommendation(
        args.dataset, out, sweep_dir=args.sweep_dir, depths=args.depths, widths=args.widths, seeds=args.seeds,
        fixed=fixed, basin_samples=args.basin_samples, basin_rtol=args.basin_rtol, backend=backend,
        retry_failed=args.retry_failed, progress=not args.quiet, root=args.data_root, download=args.download,
    )
    s = rec.summary
    print(f"{s['points_ok']} of {s['points']} points ok; depths {s['depths']}, widths {s['widths']}")
    for row in rec.criteria.itertuples():
        at = f" at {row.at!s}" if row.at and row.value != "not established" else ""
        print(f"  {row.criterion:<16} {row.value}{at}")
    for note in rec.notes:
        print(f"  - {note}")
    print(f"report: {report}")
    return 0
