"""Training that records its dynamics: :class:`TrainConfig`, :func:`train`, schedules and the step."""

from netdyn.training.config import TrainConfig, steps_per_epoch
from netdyn.training.core import TrainResult
from netdyn.training.loop import TrainState, evaluate, train
from netdyn.training.population import train_population
from netdyn.training.recorder import Recorder, RecordPoint, Schedule
from netdyn.training.schedule import StepSchedule, parse_schedule

__all__ = [
    "RecordPoint",
    "Recorder",
    "Schedule",
    "StepSchedule",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "evaluate",
    "parse_schedule",
    "steps_per_epoch",
    "train",
    "train_population",
]
