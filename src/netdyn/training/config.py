"""Training configuration (SPEC section 4) and evaluation/checkpoint schedules."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from netdyn.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("ce", "mse")
DTYPES = ("float32", "float64")
BN_EVALS = ("running", "batch", "both")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a network. Every field is a flag of ``netdyn train``."""

    optimizer: str = "adam"
    """Optimiser: sgd, adam or adamw."""
    lr: float = 1e-3
    """Learning rate."""
    momentum: float = 0.9
    """Momentum of sgd (ignored by adam and adamw)."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw, L2 for sgd and adam, as in torch.optim)."""
    batch_size: int = 100
    """Minibatch size; each epoch draws a fresh seeded permutation of the training set."""
    epochs: float | None = 10
    """Training length in epochs (ignored when ``steps`` is set)."""
    steps: int | None = None
    """Training length in optimiser steps; overrides ``epochs``."""
    loss: str = "ce"
    """Loss: ce (cross-entropy on logits) or mse (on one-hot targets)."""
    seed: int = 0
    """Seed of the minibatch order (and of nothing else: the model has its own seed)."""
    device: str = "auto"
    """Device: auto (cuda if available), cpu, cuda, cuda:N."""
    dtype: str = "float32"
    """Floating-point type of parameters and data: float32 or float64."""
    eval_every: str | int = "log:50"
    """Evaluation points: "log:N" = N log-spaced steps over the run, an integer step interval, or "none"."""
    checkpoint_every: str | int = "log:10"
    """Checkpoint points, same syntax as eval_every (the first and last step are always saved)."""
    bn_eval: str = "running"
    """Batch-norm evaluation: running statistics, batch statistics (batches of batch_size), or both."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.bn_eval not in BN_EVALS:
            raise ConfigError(f"bn_eval must be one of {', '.join(BN_EVALS)}, got {self.bn_eval!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0 or self.momentum < 0:
            raise ConfigError("weight_decay and momentum must be >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.steps is None and (self.epochs is None or not self.epochs > 0):
            raise ConfigError("set steps >= 1 or epochs > 0")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        parse_schedule(self.eval_every, 10)
        parse_schedule(self.checkpoint_every, 10)

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of the whole run for a training set of ``n_train`` samples."""
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_train, self.batch_size)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**d)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatches per epoch: the last partial batch is dropped when it would hold a single sample
    (batch norm cannot normalise one sample) and kept otherwise."""
    full, rest = divmod(n_train, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


def parse_schedule(spec: str | int, total: int) -> list[int]:
    """Steps in 0..total at which something happens: "log:N" or an integer interval, both always holding 0
    and total; or "none" for never (a pure-speed run: no evaluation, no checkpoint)."""
    if spec == "none":
        return []
    if isinstance(spec, str) and spec.startswith("log:"):
        try:
            n = int(spec[4:])
        except ValueError:
            raise ConfigError(f"schedule {spec!r}: expected log:N with an integer N") from None
        if n < 1:
            raise ConfigError(f"schedule {spec!r}: N must be >= 1")
        points = np.unique(np.round(np.logspace(0, math.log10(max(total, 1)), n)).astype(int))
    else:
        try:
            every = int(spec)
        except (TypeError, ValueError):
            raise ConfigError(f"schedule {spec!r}: expected 'log:N' or an integer step interval") from None
        if every < 1:
            raise ConfigError(f"schedule {spec!r}: the interval must be >= 1")
        points = np.arange(every, total + 1, every)
    steps = {0, total, *(int(p) for p in points if 0 < p <= total)}
    return sorted(steps)
