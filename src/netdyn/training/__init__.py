"""Training that records its dynamics: :class:`TrainConfig`, :func:`train`, schedules and the step."""

from netdyn.training.config import TrainConfig, parse_schedule, steps_per_epoch
from netdyn.training.loop import TrainResult, TrainState, evaluate, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "parse_schedule",
    "steps_per_epoch",
    "train",
]
