"""``netdyn sweep``: a grid or list of train(+analyze) points on a local process pool or a Ray cluster."""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

from netdyn.commands._options import (
    EXIT_FAILURE,
    Folder,
    UsageError,
    add_analyze_options,
    add_backend_options,
    add_run_spec_options,
    backend_from_args,
    settings_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid or list of train(+analyze) points, locally or on Ray; one table of every point",
        description="Run every point of a grid (--grid) and/or a TOML sweep file into OUT/runs/NAME and gather "
        "OUT/sweep.parquet: one row per point with its parameters, status (ok, failed, diverged), error and "
        "summary. Keys are RunSpec fields, named as the flags of `netdyn train`, and every flag of `netdyn train` "
        "(but --out and --resume) is a setting of every point. Running the same command again resumes: complete "
        "points are skipped. Each point is its own run. OUT/compare/report.html shows the points that ended ok side by "
        "side.",
    )
    p.add_argument("file", nargs="?", default=None, metavar="SWEEP_TOML",
                   help="a TOML file with [fixed] settings, a [grid] of value lists and/or [[points]]")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a grid axis: a RunSpec field or flag of netdyn train as KEY, e.g. --grid depth=2,4,8 "
                   "(repeatable)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every point, e.g. --set dataset=mnist5k --set analyze=true (repeatable)")
    p.add_argument("--out", required=True, type=Folder("write"), metavar="DIR",
                   help="the sweep folder (running again into it resumes)")
    add_backend_options(p)
    spec_flags = add_run_spec_options(p, defaults=False, files=False)
    spec_flags += add_analyze_options(p.add_argument_group("analysis"), defaults=False)
    p.set_defaults(handler=cmd_sweep, spec_flags=tuple(spec_flags))


def definition_from_args(args: argparse.Namespace) -> Any:
    """The sweep the file and the flags describe: the flags' grid axes and settings replace the file's key by key;
    a key given twice on the command line (a grid axis, --set, a train flag) is a UsageError."""
    from netdyn.sweeps import SweepDefinition, load_sweep_file, parse_assignments

    definition = load_sweep_file(args.file) if args.file else SweepDefinition()
    grid = parse_assignments(args.grid, split_values=True)
    fixed = parse_assignments(args.fixed, split_values=False)
    flags = _flag_settings(args)
    sources = (("--grid {}=...", grid), ("--set {}=...", fixed), ("--{}", flags))
    for (how, one), (other, two) in itertools.combinations(sources, 2):
        for key in sorted(one.keys() & two.keys()):
            flag = key.replace("_", "-")
            raise UsageError(
                f"netdyn sweep: error: argument --{flag}: {key} is given as {how.format(flag)} and as "
                f"{other.format(flag)}; give it once"
            )
    return definition.merge(SweepDefinition(fixed={**fixed, **flags}, grid=grid))


def _flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``netdyn train`` flags given, by sweep key."""
    from netdyn.orchestration.settings import canonical_key

    return {canonical_key(dest): value for dest, value in settings_from_args(args, args.spec_flags).items()}


def cmd_sweep(args: argparse.Namespace) -> int:
    from netdyn.sweeps import sweep

    result = sweep(
        definition_from_args(args), args.out, backend=backend_from_args(args), retry_failed=args.retry_failed,
        progress=not args.quiet, root=args.data_root, download=args.download,
    )
    counts = result.counts()
    skipped = len(result.points) - len(result.ran)
    print(
        f"{len(result.points)} points: {counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged "
        f"({len(result.ran)} run now, {skipped} complete or failed before; {result.wall_time:.1f} s)"
    )
    for row in result.failed.itertuples():
        print(f"failed: {row.name}: {row.error}", file=sys.stderr)
    print(f"table: {result.folder / 'sweep.parquet'}")
    if result.comparison is not None:
        print(f"comparison: {result.comparison}")
    if counts["failed"]:
        print(f"netdyn sweep: {counts['failed']} point(s) failed (errors in {result.folder / 'errors'}); "
              "--retry-failed runs them again", file=sys.stderr)
        return EXIT_FAILURE
    return 0
