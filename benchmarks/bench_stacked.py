"""The stacked forward of an MLP (``StackedMLP``, hand-written on stacked tensors) against ``torch.func.vmap`` over
``functional_call`` (the generic path of ``stacked_forward``), the two uses in netdyn:

* a population step's forward and backward pass: 8 784-200-200-10 ReLU nets (initial parameters x8), one
  minibatch of 200 each, MSE; the engine's own path (layer 1's local field formed outside autograd) against vmap
  over each member's ``MLP.forward`` in batch-norm "batch" mode, gradients of every stacked parameter;
* a weight basin's perturbed copies: K copies of a 784-256x4 BN net with every weight matrix perturbed, on 1,000
  shared samples, running statistics, forward only.

Interleaved rounds, medians and minima in ms. The two paths' results are compared first.

    python benchmarks/bench_stacked.py --rounds 7 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, vmap

from netdyn import MLP, TrainConfig
from netdyn.models import StackedMLP
from netdyn.training.population_engine import PopulationEngine


def population_paths() -> dict[str, Callable[[], object]]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 784, generator=gen)
    x, y = x / x.norm(dim=1, keepdim=True), torch.randint(0, 10, (1000,), generator=gen)
    nets = [MLP(784, 200, 2, 10, init_scale=8.0, seed=seed) for seed in range(8)]
    configs = [
        TrainConfig(optimizer="adamw", batch_size=200, steps=10, loss="mse", seed=s, device="cpu") for s in range(8)
    ]
    engine = PopulationEngine(nets, configs, x, y)
    xb, labels = engine._gather(engine.batch_indices(0))
    params = dict(zip(engine._names, engine._params, strict=True))

    def stacked() -> object:
        return engine._gradients(xb, labels)[2]

    def vmapped() -> object:
        logits = vmap(lambda p, xi: functional_call(nets[0], p, (xi,), {"bn_mode": "batch"}))(params, xb)
        losses = ((logits - torch.nn.functional.one_hot(labels, 10).to(logits.dtype)) ** 2).sum(2).mean(1)
        return torch.autograd.grad(losses.sum(), engine._params)

    error = max((a - b).abs().max().item() for a, b in zip(stacked(), vmapped(), strict=True))  # type: ignore[call-overload]
    print(f"population step: largest gradient difference {error:.2e}")
    return {"population step, StackedMLP": stacked, "population step, vmap": vmapped}


def basin_paths(k: int) -> dict[str, Callable[[], object]]:
    net = MLP(784, 256, 4, 10, batchnorm=True, seed=0).eval()
    with torch.no_grad():
        for block in net.layer_blocks[:-1]:
            block.bn.running_mean.normal_(0, 0.3)
            block.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1000, 784)
    perturbed = {
        f"blocks.{i}.linear.weight": block.linear.weight + 0.1 * torch.randn(k, *block.linear.weight.shape)
        for i, block in enumerate(net.layer_blocks)
    }
    stacked_net = StackedMLP(net)

    def stacked() -> object:
        with torch.no_grad():
            return stacked_net.forward(perturbed, x, "running").transpose(1, 2)

    def vmapped() -> object:
        with torch.no_grad():
            return vmap(lambda p: functional_call(net, p, (x,), {"bn_mode": "running"}))(perturbed)

    error = (stacked() - vmapped()).abs().max().item()  # type: ignore[operator]
    print(f"weight basin copies (K={k}): largest logit difference {error:.2e}")
    return {f"basin copies K={k}, StackedMLP": stacked, f"basin copies K={k}, vmap": vmapped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=10, help="calls timed together in each round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = population_paths() | basin_paths(8)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            fn()
            start = time.perf_counter()
            for _ in range(args.repeats):
                fn()
            times[name].append((time.perf_counter() - start) / args.repeats * 1e3)
    print(f"{args.threads} thread(s), median of {args.rounds} interleaved rounds of {args.repeats} calls")
    for name, values in times.items():
        print(f"{name:<36}{statistics.median(values):>9.2f} ms   min {min(values):.2f}")


if __name__ == "__main__":
    main()
