"""Training that records its dynamics: :class:`TrainConfig`, :func:`train`, schedules and the step."""

from netdyn.training.config import TrainConfig, parse_schedule, steps_per_epoch
from netdyn.training.loop import TrainResult, TrainState, evaluate, train
from netdyn.training.population import train_population
from netdyn.training.recorder import Recorder, RecordPoint, Schedule

__all__ = [
    "RecordPoint",
    "Recorder",
    "Schedule",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "parse_schedule",
    "steps_per_epoch",
    "train",
    "train_population",
]
