"""``netdyn reproduce all --jobs 2`` beside ``--jobs 1``: the same experiments, one after another or two at a time.

Each run has its own output folder under a temporary directory; the two are timed one after the other in the same
process on the same machine, and their criteria values are compared (one torch thread per experiment in both, so
they must be equal).

    NETDYN_DATA=../shared/data python benchmarks/bench_reproduce_jobs.py --scale small \\
        --names structure-convnet structure-vit
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from netdyn.experiments import run_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--names", nargs="+", default=["structure-convnet", "structure-vit"])
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {args.scale}, {', '.join(args.names)}")
    walls: dict[int, float] = {}
    criteria: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            start = time.perf_counter()
            results = run_all(args.scale, Path(tmp) / f"jobs{jobs}", names=args.names, jobs=jobs)
            walls[jobs] = time.perf_counter() - start
            criteria[jobs] = [c["values"] for r in results for c in r.summary["criteria"]]
            each = ", ".join(f"{r.name} {r.summary['wall_time']:.1f} s" for r in results)
            print(f"jobs {jobs}: {walls[jobs]:.1f} s ({each})")
    print(f"ratio jobs 1 / jobs 2: {walls[1] / walls[2]:.2f}; criteria equal: {criteria[1] == criteria[2]}")


if __name__ == "__main__":
    main()
