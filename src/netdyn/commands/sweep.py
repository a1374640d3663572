"""``netdyn sweep``: a grid or list of train(+analyze) points on a local process pool or a Ray cluster."""

from __future__ import annotations

import argparse
import sys

from netdyn.cli import EXIT_FAILURE, Folder, Number, NumberList, Whole


class Count(Whole):
    """argparse type: a whole number >= ``low``."""

    def __init__(self, low: int = 1) -> None:
        super().__init__()
        self.low = low

    def __call__(self, text: str) -> int:
        value = super().__call__(text)
        if value < self.low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {self.low}, got {text!r}")
        return value


class Amount(Number):
    """argparse type: a finite number >= ``low`` (``> low`` when ``strict``) and below ``high`` when given."""

    def __init__(self, low: float = 0.0, high: float | None = None, strict: bool = False) -> None:
        super().__init__()
        self.low, self.high, self.strict = low, high, strict

    def __call__(self, text: str) -> float:
        value = super().__call__(text)
        if value < self.low or (self.strict and value == self.low) or (self.high is not None and value >= self.high):
            bound = f"{'>' if self.strict else '>='} {self.low:g}" + (f" and < {self.high:g}" if self.high else "")
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value


class Counts(NumberList):
    """argparse type: comma-separated whole numbers >= 1 (depths, widths)."""

    def __init__(self) -> None:
        super().__init__(whole=True)

    def __call__(self, text: str) -> list[int]:
        values = super().__call__(text)
        if not values or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got {text!r}")
        return list(values)


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
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def backend_from_args(args: argparse.Namespace):
    from netdyn.errors import ConfigError
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid or list of train(+analyze) points, locally or on Ray; one table of every point",
        description="Run every point of a grid (--grid) and/or a TOML sweep file into OUT/runs/NAME and gather "
        "OUT/sweep.parquet: one row per point with its parameters, status (ok, failed, diverged), error and "
        "summary. Keys are the flags of `netdyn train`. Running the same command again resumes: complete "
        "points are skipped. Each point is its own run.",
    )
    p.add_argument("file", nargs="?", default=None, metavar="SWEEP_TOML",
                   help="a TOML file with [fixed] settings, a [grid] of value lists and/or [[points]]")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a grid axis: any flag of netdyn train as KEY, e.g. --grid depth=2,4,8 (repeatable)")
    p.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every point, e.g. --set dataset=mnist5k --set analyze=true (repeatable)")
    p.add_argument("--out", required=True, type=Folder("write"), metavar="DIR",
                   help="the sweep folder (running again into it resumes)")
    add_backend_options(p)
    p.set_defaults(handler=cmd_sweep)


def definition_from_args(args: argparse.Namespace):
    from netdyn.sweeps import SweepDefinition, load_sweep_file, parse_assignments

    definition = load_sweep_file(args.file) if args.file else SweepDefinition()
    flags = SweepDefinition(fixed=parse_assignments(args.fixed, split_values=False),
                            grid=parse_assignments(args.grid, split_values=True))
    return definition.merge(flags)


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
    if counts["failed"]:
        print(f"netdyn sweep: {counts['failed']} point(s) failed (errors in {result.folder / 'errors'}); "
              "--retry-failed runs them again", file=sys.stderr)
        return EXIT_FAILURE
    return 0
