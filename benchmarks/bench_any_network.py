"""The analysis of a ResNet or a ViT read as any model: the L-map over every cut beside the passes it needs.

And the whole ``analyze`` (basins off) in wall time and peak memory (issues 19 and 20; docs/any-network.md).

The model is netdyn's ResNet (``netdyn.ResNet``), written as torchvision writes one (``BasicBlock`` with
``conv1/bn1/relu/conv2/bn2``, a ``downsample`` where the shape changes, ``out += identity``), in the CIFAR family: a
3x3 stem of width 16, then 3 stages x 2 basic blocks of widths 16, 32, 64, global average pooling and a linear head;
trained ``--steps`` Adam steps on ``mnist5k`` (5,000 train digits, the official 10,000 test digits when
``NETDYN_DATA`` holds them). Its default cuts are the stem's output and the six block outputs. ``--arch vit``
analyses netdyn's ViT at its defaults instead (7x7 patches, a class token, 4 pre-LN blocks of width 64 with explicit
softmax attention and a GELU MLP): cuts after the stem and each block, where the RPD and neuron modes are NaN (a
residual stream has no privileged basis).

"passes" is the least any L-map can do: one trunk pass over train + test capturing the cuts, plus one pass of each
cut's tail (transfer functions as the identity) over the same samples, timed in the same run just before.

    NETDYN_DATA=../shared/data python benchmarks/bench_any_network.py --steps 200 --repeats 2
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch
from torch import nn

import netdyn
from netdyn.models import ResNet, ViT
from netdyn.models.adapter import read_network


def train(model: nn.Module, data: netdyn.Dataset, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data.x_train.reshape(-1, 1, 28, 28), data.y_train
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (100,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def passes(model: nn.Module, data: netdyn.Dataset, chunk: int = 1000) -> float:
    """One trunk pass capturing every cut, then every cut's tail, over train + test: the floor of any L-map."""
    network = read_network(model, (1, 28, 28))
    inputs = {l: network.tail_inputs(l) for l in range(network.n_layers)}
    wanted = {n for names in inputs.values() for n in names}
    start = time.perf_counter()
    with torch.no_grad():
        for x in (data.x_train, data.x_test):
            for i in range(0, x.shape[0], chunk):
                values = network.capture(x[i:i + chunk], wanted, logits=False)
                for l in inputs:
                    network.run_tail(l, [values[n] for n in inputs[l]])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="Adam steps before the analysis")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of passes vs lmap_accuracy")
    parser.add_argument("--arch", choices=("resnet", "vit"), default="resnet",
                        help="netdyn.ResNet(blocks=(2, 2, 2), width=16) or netdyn.ViT() at its defaults")
    parser.add_argument("--width", type=int, default=16, help="the ResNet's first stage width")
    args = parser.parse_args()

    torch.manual_seed(0)
    data = netdyn.load_dataset("mnist5k")
    model = ResNet(blocks=(2, 2, 2), width=args.width) if args.arch == "resnet" else ViT()
    t0 = time.perf_counter()
    train(model, data, args.steps)
    print(f"device: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; data {data.x_train.shape[0]} train / {data.x_test.shape[0]} test; "
          f"trained {args.steps} steps in {time.perf_counter() - t0:.1f} s")
    print(f"cuts: {[c.name for c in read_network(model, (1, 28, 28)).cuts]}")

    floor, lmap = [], []
    for _ in range(args.repeats):
        floor.append(passes(model, data))
        start = time.perf_counter()
        table = netdyn.lmap_accuracy(model, data)
        lmap.append(time.perf_counter() - start)
    print(table.to_string())
    best_floor, best_lmap = min(floor), min(lmap)
    print(f"passes (trunk + each tail): {', '.join(f'{t:.2f}' for t in floor)} s")
    print(f"lmap_accuracy, all cuts:     {', '.join(f'{t:.2f}' for t in lmap)} s")
    print(f"ratio lmap / passes (best of each): {best_lmap / best_floor:.2f}  (target <= 2)")

    config = netdyn.AnalysisConfig(basins=False)
    start = time.perf_counter()
    analysis = netdyn.analyze(model, data, config)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"analyze (basins off): {elapsed:.1f} s (target < 180 s); tables: {sorted(analysis.tables)}")
    print(f"peak RSS of the process: {peak:.2f} GiB (target < 4 GiB)")


if __name__ == "__main__":
    main()
