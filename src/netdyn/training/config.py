"""Training configuration (see docs/runs.md#training) and evaluation/checkpoint schedules."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from netdyn._device import check_device_name
from netdyn.errors import ConfigError
from netdyn.training.schedule import StepSchedule

OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("ce", "mse")
DTYPES = ("float32", "float64")
BN_EVALS = ("auto", "running", "batch", "both")


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
    bn_eval: str = "auto"
    """Batch-norm evaluation: running statistics, batch statistics (batches of batch_size), both, or auto (both
    for a net with batch norm, so the history shows the running statistics' lag; running otherwise)."""

    def __post_init__(self) -> None:
        self._check_choices()
        self._check_numbers()
        check_device_name(self.device)
        self._check_schedules()

    def _check_choices(self) -> None:
        for name, allowed in (("optimizer", OPTIMIZERS), ("loss", LOSSES), ("dtype", DTYPES), ("bn_eval", BN_EVALS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def _check_numbers(self) -> None:
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

    def _check_schedules(self) -> None:
        for name in ("eval_every", "checkpoint_every"):
            StepSchedule.parse(getattr(self, name), name)

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of the whole run for a training set of ``n_train`` samples."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None  # __post_init__ refuses a config with neither
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_train, self.batch_size)))

    def to_dict(self) -> dict[str, Any]:
        """The config as a dict of its fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config from :meth:`to_dict` (ConfigError naming unknown fields or invalid values)."""
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
    """Minibatches per epoch.

    The last partial batch is dropped when it would hold a single sample (batch norm cannot normalise one sample)
    and kept otherwise.
    """
    full, rest = divmod(n_train, batch_size)
    return max(1, full + (1 if rest > 1 else 0))
