"""Overhead of ``sweep`` over running the same points by hand.

The points: a seed grid of one run (default: mnist5k, all 5,000 training digits, 784-256x3-10 ReLU, 3 epochs, Adam,
the default evaluation and checkpoint schedules, no analysis), one point per seed. ``--epochs 0.02`` makes each
point almost no work, which isolates what ``sweep`` costs by itself.

* "by hand": what a user writes without ``sweep``: a loop over the points calling ``netdyn.run(spec, folder)`` one
  after the other, in this (already warm) Python process, with ``--threads`` torch threads.
* "sweep (local)": ``sweep(points, out, backend=LocalBackend(workers=1, cpus_per_point=threads))``: the same points
  one after the other in one spawned worker process of the same threads, so the compute is the same and the
  difference is what ``sweep`` adds: spawning the worker and importing torch and netdyn there, shipping each spec,
  the running markers and error bookkeeping, and gathering ``sweep.parquet`` after every point.
* "sweep (ray)" with ``--ray``: the same through a local Ray instance with ``--threads`` CPUs (one point at a time),
  started by ``sweep`` inside the timed region; "ray, instance running" times it with the instance already up.

Each variant runs ``--runs`` times, interleaved (by hand, then each sweep variant, then by hand again, ...), into
fresh folders. Printed per variant: the median and the fastest run, the ratio of medians, and the median of the
per-round ratios to the "by hand" run of the same round (rounds are minutes apart, so on a shared machine the
per-round ratio is the steadier figure). The target: sweep / by hand <= 1.10.

    python benchmarks/bench_sweep.py --points 8 --runs 3 [--ray] [--no-local] [--epochs 0.02]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import netdyn
from netdyn.sweeps import LocalBackend, RayBackend, plan_points, sweep


def make_points(args: argparse.Namespace):
    fixed = {"dataset": args.dataset, "width": args.width, "depth": args.depth, "epochs": args.epochs,
             "device": "cpu"}
    if args.train_size:
        fixed["train-size"] = args.train_size
    return plan_points(grid={"seed": list(range(args.points))}, fixed=fixed)


def by_hand(points, folder: Path) -> float:
    start = time.perf_counter()
    for point in points:
        netdyn.run(point.spec, folder / point.name)
    return time.perf_counter() - start


def with_sweep(points, folder: Path, backend) -> float:
    start = time.perf_counter()
    result = sweep(points, folder, backend=backend)
    elapsed = time.perf_counter() - start
    assert result.counts()["ok"] == len(points), result.table[["name", "status", "error"]]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every variant")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--train-size", type=int, default=0, help="training subset (0: the data set's default)")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--ray", action="store_true", help="also time the Ray backend (needs netdyn[ray])")
    parser.add_argument("--no-local", action="store_true", help="skip the local backend (with --ray)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    points = make_points(args)
    netdyn.load_dataset(args.dataset, train_size=args.train_size or None)  # warm the data files' page cache
    variants = {"by hand": lambda folder: by_hand(points, folder)}
    if not args.no_local:
        variants["sweep (local)"] = lambda folder: with_sweep(
            points, folder, LocalBackend(workers=1, cpus_per_point=args.threads)
        )
    ray = None
    if args.ray:
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")

        def ray_cold(folder: Path) -> float:
            if ray.is_initialized():
                ray.shutdown()
            return with_sweep(points, folder, RayBackend(num_cpus=args.threads, cpus_per_point=args.threads))

        def ray_warm(folder: Path) -> float:
            if not ray.is_initialized():
                ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
            return with_sweep(points, folder, RayBackend(cpus_per_point=args.threads))

        variants["sweep (ray)"] = ray_cold
        variants["sweep (ray, instance running)"] = ray_warm

    times: dict[str, list[float]] = {name: [] for name in variants}
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        for run in range(args.runs):
            for name, fn in variants.items():
                folder = root / f"{name.replace(' ', '_')}-{run}"
                times[name].append(fn(folder))
                shutil.rmtree(folder, ignore_errors=True)
                print(f"run {run + 1}/{args.runs} {name}: {times[name][-1]:.1f} s", flush=True)
    finally:
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    hand = times["by hand"]
    print()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads; {args.points} points: {args.dataset} train_size={args.train_size}, "
          f"784-{args.width}x{args.depth}, {args.epochs} epochs")
    print("| variant | median (s) | fastest (s) | runs (s) | ratio of medians | median per-round ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in times.items():
        rounds = statistics.median(v / h for v, h in zip(values, hand, strict=True))
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {runs} | "
              f"{statistics.median(values) / statistics.median(hand):.3f} | {rounds:.3f} |")


if __name__ == "__main__":
    main()
