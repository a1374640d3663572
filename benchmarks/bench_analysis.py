"""Time of each analysis quantity beside the plain forward passes it inherently needs, in the same run.

Reference model 784 -> 1024 x 12 -> 10, ReLU with batch norm, trained briefly on mnist5k (real MNIST digits;
the official test set too when $NETDYN_DATA/mnist holds it). For each quantity the "inherent" forward passes are
plain ``net(x)`` calls over the samples it must push through the network:

- L-map, class geometry: one pass over train (+ test for the L-map);
- LP: two passes over train (fit, score) and one over test;
- RPD / neuron modes: one pass over their ``max_samples`` subset;
- sample basin: one pass over n_samples x repeats x len(eps) perturbed samples;
- weight basin: repeats x len(eps) passes over n_samples (one per perturbed network); a second row adds
  drawing each perturbed network's Gaussian noise (one normal per weight), which the method cannot avoid.

    python benchmarks/bench_analysis.py --basin-samples 1000 --repeats 2 --eps-points 16
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch

import netdyn
from netdyn import MLP, TrainConfig, train


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@torch.no_grad()
def noise_draws(net: MLP, n_networks: int) -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(n_networks):
        for block in net.blocks:
            w = block.linear.weight
            xi = torch.randn(w.shape, generator=gen)
            (xi * (0.5 / torch.linalg.vector_norm(xi))).add_(w)


@torch.no_grad()
def forward_passes(net: MLP, x: torch.Tensor, times: int = 1, chunk: int = 4096) -> None:
    for _ in range(times):
        for start in range(0, x.shape[0], chunk):
            net(x[start : start + chunk], bn_mode="running")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--train-steps", type=int, default=50)
    parser.add_argument("--basin-samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--eps-points", type=int, default=16)
    parser.add_argument("--max-samples", type=int, default=2000)
    args = parser.parse_args()

    data = netdyn.load_dataset("mnist5k")
    net = MLP(784, args.width, args.depth, 10, batchnorm=True, seed=0)
    train(
        net,
        data,
        TrainConfig(
            steps=args.train_steps, batch_size=100, eval_every="none", checkpoint_every="none", device="cpu"
        ),
    )
    net.eval()
    eps = np.linspace(0, 3, args.eps_points)
    n_b, r = args.basin_samples, args.repeats
    xtr, xte = data.x_train, data.x_test
    sub = xtr[: args.max_samples]
    big = xtr[:n_b].repeat(r * len(eps), 1)

    cases = [
        (
            "lmap_accuracy",
            lambda: netdyn.lmap_accuracy(net, data),
            lambda: (forward_passes(net, xtr), forward_passes(net, xte)),
        ),
        (
            "lp_accuracy",
            lambda: netdyn.lp_accuracy(net, data),
            lambda: (forward_passes(net, xtr, 2), forward_passes(net, xte)),
        ),
        (
            "rpd_summary",
            lambda: netdyn.rpd_summary(net, data, max_samples=args.max_samples),
            lambda: forward_passes(net, sub),
        ),
        (
            "neuron_modes",
            lambda: netdyn.neuron_modes(net, data, max_samples=args.max_samples),
            lambda: forward_passes(net, sub),
        ),
        ("class_geometry", lambda: netdyn.class_geometry(net, data), lambda: forward_passes(net, xtr)),
        (
            "sample_basin",
            lambda: netdyn.sample_basin(net, data, eps=eps, repeats=r, n_samples=n_b),
            lambda: forward_passes(net, big),
        ),
        (
            "weight_basin",
            lambda: netdyn.weight_basin(net, data, eps=eps, repeats=r, n_samples=n_b),
            lambda: forward_passes(net, xtr[:n_b], r * len(eps)),
        ),
        (
            "  + noise draws",
            lambda: netdyn.weight_basin(net, data, eps=eps, repeats=r, n_samples=n_b),
            lambda: (forward_passes(net, xtr[:n_b], r * len(eps)), noise_draws(net, r * len(eps))),
        ),
    ]
    print(
        f"date {datetime.date.today()}, cpu {platform.machine()}, threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}; model 784-{args.width}x{args.depth}-10 BN ReLU; "
        f"{len(xtr)} train / {len(xte)} test; basins n={n_b} repeats={r} eps points={len(eps)}"
    )
    print(f"{'quantity':<16} {'time (s)':>9} {'forwards (s)':>13} {'ratio':>7}")
    total_q = total_f = 0.0
    for name, quantity, inherent in cases:
        forward_passes(net, xtr[:256])  # warm
        tf, _ = timed(inherent)
        tq, _ = timed(quantity)
        if not name.startswith(" "):
            total_q, total_f = total_q + tq, total_f + tf
        print(f"{name:<16} {tq:9.2f} {tf:13.2f} {tq / tf:7.2f}")
    config = netdyn.AnalysisConfig(
        basin_samples=n_b, repeats=r, eps=tuple(eps), max_samples=args.max_samples, device="cpu"
    )
    ta, _ = timed(lambda: netdyn.analyze(net, data, config))
    print(
        f"{'analyze()':<16} {ta:9.2f} {total_f:13.2f} {ta / total_f:7.2f}   (sum of the parts: {total_q:.2f} s)"
    )


if __name__ == "__main__":
    main()
