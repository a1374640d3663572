"""The cost of ``netdyn.Monitor`` inside a real training loop, as a share of the plain loop's time.

A BN MLP (784 -> 128 x 4 -> 10, as the README's main job) trained with a plain PyTorch loop on mnist5k
(batch 100, Adam), once without and once with a monitor (default quantities: the network's accuracy, L-map,
LP, RPD and class geometry; ``every="log:30"``; the default budget 0.1, which bounds the quantities only: the
history, under running and batch statistics, is recorded at every scheduled point). The two loops run interleaved,
``--runs`` times each; the table gives the median wall times, the monitor's own time and records, and the
overhead (monitored / plain - 1), whose target is at most 10 %, beside the monitor's own measured time as a
share of the plain loop's (the same quantity, free of the run-to-run noise of a shared machine).

    NETDYN_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_monitor.py --epochs 100 --runs 3 --threads 1

(The first and last points are always recorded in full: on a short run, such as ``--epochs 20``, that fixed cost
dominates; benchmarks/RESULTS.md gives both.)
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import netdyn


def make_model() -> nn.Sequential:
    layers: list[nn.Module] = []
    size = 784
    for _ in range(4):
        layers += [nn.Linear(size, 128), nn.BatchNorm1d(128), nn.ReLU()]
        size = 128
    return nn.Sequential(*layers, nn.Linear(size, 10))


def train_loop(data, epochs: int, monitor: netdyn.Monitor | None) -> float:
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, batch = data.n_train, 100
    start = time.perf_counter()
    step = 0
    if monitor is not None:
        monitor.step(model, 0)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n - batch + 1, batch):
            idx = perm[i : i + batch]
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if monitor is not None:
                monitor.step(model, step, train_loss=loss.item())
    if monitor is not None:
        monitor.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a machine shared with others)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = netdyn.load_dataset("mnist5k")
    total = args.epochs * (data.n_train // 100)
    plain, watched, monitor_times, records, skipped, points = [], [], [], [], [], []
    for _ in range(args.runs):
        plain.append(train_loop(data, args.epochs, None))
        folder = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
        try:
            monitor = netdyn.Monitor(folder / "run", data, every="log:30", total_steps=total)
            watched.append(train_loop(data, args.epochs, monitor))
            summary = netdyn.load_run(folder / "run").summary
            monitor_times.append(summary["monitor_time"])
            records.append(summary["records"])
            skipped.append(len(summary["skipped"]))
            points.append(summary["history_points"])
        finally:
            shutil.rmtree(folder)
    p, w = statistics.median(plain), statistics.median(watched)
    print(f"device: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.epochs} epochs = {total} steps of batch 100 on mnist5k")
    print("| loop | wall time (median) | runs |\n| --- | --- | --- |")
    print(f"| plain | {p:.2f} s | {', '.join(f'{t:.2f}' for t in plain)} |")
    print(f"| with Monitor (log:30, budget 0.1) | {w:.2f} s | {', '.join(f'{t:.2f}' for t in watched)} |")
    print(f"| monitor's own time | {statistics.median(monitor_times):.2f} s | history points {points}, of which in "
          f"full {records}, quantities skipped {skipped} |")
    own = statistics.median(monitor_times)
    print(f"| **overhead (monitored / plain - 1)** | **{w / p - 1:.1%}** | target <= 10 % |")
    print(f"| **the monitor's own time / plain** | **{own / p:.1%}** | the same share, without the run-to-run noise |")


if __name__ == "__main__":
    main()
