"""Training throughput of netdyn's loop against the PyTorch tutorial loop (TensorDataset + DataLoader).

Reference model 784 -> 1024 x 12 -> 10, ReLU, batch 300, Adam, on Fashion-MNIST-sized random data
(60,000 x 784). Training steps only: netdyn runs with ``eval_every="none"`` and no checkpoints. The two loops
run interleaved, ``--runs`` times each, and the median samples/s of each is reported with their ratio.

    python benchmarks/bench_train.py --steps 20 --runs 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netdyn import MLP, TrainConfig, train
from netdyn.data import Dataset

WIDTH, DEPTH, BATCH = 1024, 12, 300


def make_data(n_train: int) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n_train, 784, generator=gen)
    y = torch.randint(0, 10, (n_train,), generator=gen)
    return Dataset(x, y, x[:BATCH], y[:BATCH], 10, "random-fashion-sized", (28, 28), {})


def run_netdyn(data: Dataset, steps: int) -> float:
    net = MLP(784, WIDTH, DEPTH, 10, seed=0)
    cfg = TrainConfig(steps=steps, batch_size=BATCH, eval_every="none", checkpoint_every="none", device="cpu")
    start = time.perf_counter()
    train(net, data, cfg)
    return steps * BATCH / (time.perf_counter() - start)


def run_tutorial(data: Dataset, steps: int) -> float:
    layers: list[nn.Module] = []
    size = 784
    for _ in range(DEPTH):
        layers += [nn.Linear(size, WIDTH), nn.ReLU()]
        size = WIDTH
    model = nn.Sequential(*layers, nn.Linear(size, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=BATCH, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    done = 0
    model.train()
    while done < steps:
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=60_000)
    args = parser.parse_args()
    data = make_data(args.n_train)
    run_netdyn(data, 2), run_tutorial(data, 2)  # warm-up
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(run_netdyn(data, args.steps))
        theirs.append(run_tutorial(data, args.steps))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"cpu: {platform.processor() or platform.machine()}, threads: {torch.get_num_threads()}, "
        f"torch {torch.__version__}"
    )
    print(f"netdyn   samples/s: median {a:,.0f}  runs {[round(v) for v in ours]}")
    print(f"tutorial samples/s: median {b:,.0f}  runs {[round(v) for v in theirs]}")
    print(f"ratio netdyn / tutorial: {a / b:.3f}")


if __name__ == "__main__":
    main()
