"""Training configuration (SPEC section 4) and evaluation/checkpoint schedules."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from netdyn._device import check_device_name
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
        for name, allowed in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("dtype", DTYPES), ("bn_eval", BN_EVALS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not _is_number(self.lr) or not self.lr > 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        for name in ("momentum", "weight_decay"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if not _is_whole(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if self.epochs is not None and (not _is_number(self.epochs) or not self.epochs > 0):
            raise ConfigError(f"epochs must be a finite number > 0 or None, got {self.epochs!r}")
        if self.steps is not None and (not _is_whole(self.steps) or self.steps < 1):
            raise ConfigError(f"steps must be a whole number >= 1 or None, got {self.steps!r}")
        if self.steps is None and self.epochs is None:
            raise ConfigError("set steps >= 1 or epochs > 0")
        if not _is_whole(self.seed) or self.seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {self.seed!r}")
        check_device_name(self.device)
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, str) and not _is_whole(value):
                raise ConfigError(f"{name} takes 'log:N', a whole step interval or 'none', got {value!r}")
            parse_schedule(value, 10)

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


def _is_number(value: Any) -> bool:
    """A finite real number (booleans are not numbers here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


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
