"""Training throughput of a population (:class:`PopulationEngine`) against the same members trained one by one.

Eight grokking nets (784-200-200-10 ReLU, initial parameters x8, MSE, AdamW lr 1e-3 weight decay 0.01, batch 200,
float32) on 1,000 random unit-norm 784-d inputs with 10 labels, on 2 CPU threads. The sequential side runs each
member's own :class:`StepFn` over the minibatches ``train`` would draw; the population side takes the same steps
for all eight at once (its AdamW update through torch's fused kernel). A third loop runs the sequential members
with that fused kernel too, to show how much of the gain is the kernel. Training steps only (no evaluation). The
three run interleaved, ``--rounds`` times each, and the median model-steps/s (members x steps / wall time) of
each is reported with the ratios.

    python benchmarks/bench_population.py --steps 100 --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from netdyn import MLP, TrainConfig
from netdyn.training.config import steps_per_epoch
from netdyn.training.loop import StepFn, epoch_permutation, make_optimizer
from netdyn.training.population_engine import PopulationEngine

N_MEMBERS, N_TRAIN, BATCH = 8, 1000, 200


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN, 784, generator=gen)
    return x / x.norm(dim=1, keepdim=True), torch.randint(0, 10, (N_TRAIN,), generator=gen)


def make_members(steps: int) -> tuple[list[MLP], list[TrainConfig]]:
    nets = [MLP(784, 200, 2, 10, init_scale=8.0, seed=seed) for seed in range(N_MEMBERS)]
    configs = [
        TrainConfig(
            optimizer="adamw", lr=1e-3, weight_decay=0.01, batch_size=BATCH, steps=steps, loss="mse", seed=seed,
            device="cpu", eval_every="none", checkpoint_every="none",
        )
        for seed in range(N_MEMBERS)
    ]  # fmt: skip
    return nets, configs


def fused_adamw(net: MLP, config: TrainConfig) -> torch.optim.Optimizer:
    """train's optimiser, but with torch's fused AdamW kernel (the update the population engine uses on CPU)."""
    return torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)


def run_sequential(x: torch.Tensor, y: torch.Tensor, steps: int, optimizer=make_optimizer) -> float:
    nets, configs = make_members(steps)
    per_epoch = steps_per_epoch(N_TRAIN, BATCH)
    start = time.perf_counter()
    for net, config in zip(nets, configs, strict=True):
        step_fn = StepFn(net.train(), optimizer(net, config), x, y, config.loss)
        for step in range(steps):
            epoch, pos = divmod(step, per_epoch)
            perm = epoch_permutation(config.seed, epoch, N_TRAIN, x.device)
            step_fn(perm[pos * BATCH : (pos + 1) * BATCH])
        step_fn.diverged_step()
    return N_MEMBERS * steps / (time.perf_counter() - start)


def run_population(x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    nets, configs = make_members(steps)
    start = time.perf_counter()
    engine = PopulationEngine(nets, configs, x, y)
    engine.run()
    engine.diverged_steps()
    return N_MEMBERS * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = make_data()
    run_sequential(x, y, 5), run_sequential(x, y, 5, fused_adamw), run_population(x, y, 5)  # warm-up
    sequential, sequential_fused, population = [], [], []
    for _ in range(args.rounds):
        sequential.append(run_sequential(x, y, args.steps))
        sequential_fused.append(run_sequential(x, y, args.steps, fused_adamw))
        population.append(run_population(x, y, args.steps))
    seq, seq_fused, pop = (statistics.median(r) for r in (sequential, sequential_fused, population))
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"{N_MEMBERS} members x {args.steps} steps, median of {args.rounds} interleaved rounds"
    )
    print(f"{'loop':<28}{'model-steps/s':>14}    rounds")
    rows = (
        ("sequential StepFn (train)", seq, sequential),
        ("sequential, fused AdamW", seq_fused, sequential_fused),
        ("population engine", pop, population),
    )
    for name, value, rounds in rows:
        print(f"{name:<28}{value:>14.1f}    {'  '.join(f'{r:.1f}' for r in rounds)}")
    print(f"population / sequential train runs: {pop / seq:.2f}x")
    print(f"population / sequential runs with the fused AdamW: {pop / seq_fused:.2f}x")


if __name__ == "__main__":
    main()
