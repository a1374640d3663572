"""The bookkeeping of a run, apart from the step that trains it.

A :class:`Recorder` is told "step n is done" (:meth:`Recorder.record`) and decides, from its
:class:`Schedule`, what to do: measure (a callable that returns tidy tables for that step), save a checkpoint
(a callable), write the tables to the run folder, and tell the hooks. It never touches a network or an
optimiser itself, so the same recorder serves ``train`` (one network, its ``StepFn``), a population (one
recorder per member, each with its own folder) and a monitor inside a user's own loop.

Resumed, it keeps the rows recorded up to the checkpoint it resumes from and never measures a step again that
it already holds (a run killed right after its step-0 checkpoint would otherwise record step 0 twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig
from netdyn.training.schedule import parse_schedule

#: Steps between two reads of the on-device divergence flag when no evaluation or checkpoint falls between.
SYNC_EVERY = 1000


@dataclass(frozen=True)
class Schedule:
    """When a run measures, checkpoints, and reads its on-device divergence flag (steps in 0..total)."""

    total: int
    measure_steps: frozenset[int]
    checkpoint_steps: frozenset[int]
    sync_every: int = SYNC_EVERY

    @classmethod
    def of(cls, config: TrainConfig, total: int) -> Schedule:
        """The evaluation and checkpoint points of a training config over ``total`` steps."""
        return cls(
            total,
            frozenset(parse_schedule(config.eval_every, total)),
            frozenset(parse_schedule(config.checkpoint_every, total)),
        )

    def due(self, step: int) -> bool:
        """Whether the host must look at step ``step`` (measure, checkpoint or read the divergence flag)."""
        return step in self.measure_steps or step in self.checkpoint_steps or step % self.sync_every == 0


@dataclass(frozen=True)
class RecordPoint:
    """Where a run stands when it records: the step, the epoch and the wall time since it started."""

    step: int
    epoch: float
    wall_time: float


Measure = Callable[[RecordPoint], dict[str, pd.DataFrame]]
Save = Callable[[RecordPoint], None]
Hook = Callable[[str, RecordPoint], Any]


class Recorder:
    """Schedules, gathers and writes what a run records (see the module docstring).

    ``measure(point)`` returns the rows of each table for one step (the history, analysis tables, ...; each
    row carries its own ``step`` column); ``save(point)`` writes a checkpoint; ``hooks`` are called as
    ``hook("record", point)`` after each measured step and ``hook("end", point)`` by :meth:`finish`.
    ``steps_per_epoch`` converts steps to epochs. Without a ``folder`` nothing is written.
    """

    def __init__(
        self,
        schedule: Schedule,
        measure: Measure,
        save: Save | None = None,
        folder: RunFolder | None = None,
        steps_per_epoch: float = 1.0,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.schedule = schedule
        self.measure = measure
        self.save = save
        self.folder = folder
        self.steps_per_epoch = steps_per_epoch
        self.hooks = list(hooks)
        self._frames: dict[str, list[pd.DataFrame]] = {}
        self._last_measured = -1
        self._last_saved = -1
        self._t0 = time.perf_counter()

    # ---------------------------------------------------------------- time and position
    def wall_time(self) -> float:
        """Seconds since the run started (a resumed run goes on from the time its checkpoint recorded)."""
        return time.perf_counter() - self._t0

    def point(self, step: int) -> RecordPoint:
        return RecordPoint(step, step / self.steps_per_epoch, self.wall_time())

    @property
    def last_measured(self) -> int:
        """The latest step whose tables are recorded (-1 before the first)."""
        return self._last_measured

    # ---------------------------------------------------------------- resume
    def restore(self, step: int, wall_time: float, tables: Iterable[str] = ("history",)) -> None:
        """Continue a run from its checkpoint at ``step``: the clock resumes at ``wall_time`` and the folder's
        ``tables`` keep their rows up to ``step`` (later rows came after the checkpoint and are replayed)."""
        self._t0 = time.perf_counter() - wall_time
        self._last_saved = step
        if self.folder is None:
            return
        present = set(self.folder.table_names())
        for name in tables:
            if name in present:
                table = self.folder.read_table(name)
                kept = table[table["step"] <= step]
                if len(kept):
                    self._frames[name] = [kept.reset_index(drop=True)]
                    self._last_measured = max(self._last_measured, int(kept["step"].max()))

    # ---------------------------------------------------------------- recording
    def record(self, step: int) -> bool:
        """Step ``step`` is done: measure it, save it and tell the hooks as the schedule says. Returns whether
        it measured. A step at or before one already measured (or saved) is not measured (or saved) again."""
        point = self.point(step)
        measured = step in self.schedule.measure_steps and step > self._last_measured
        if measured:
            for name, rows in self.measure(point).items():
                self._frames.setdefault(name, []).append(rows)
            self._last_measured = step
            self.write_tables()
        if step in self.schedule.checkpoint_steps and step > self._last_saved and self.save is not None:
            self.save(point)
            self._last_saved = step
        if measured:
            self._notify("record", point)
        return measured

    def add(self, name: str, rows: pd.DataFrame, write: bool = True) -> None:
        """Append rows to a table outside the schedule (a monitor's log of skipped points); with ``write=False``
        they reach the folder with the next record or :meth:`finish`."""
        self._frames.setdefault(name, []).append(rows)
        if write:
            self.write_tables()

    def table(self, name: str) -> pd.DataFrame | None:
        """All rows of one table so far (None if nothing was recorded in it)."""
        frames = [f for f in self._frames.get(name, []) if len(f)]
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    @property
    def table_names(self) -> list[str]:
        return list(self._frames)

    def write_tables(self) -> None:
        if self.folder is None:
            return
        for name in self._frames:
            table = self.table(name)
            if table is not None:
                self.folder.write_table(name, table)

    def finish(self, summary: dict[str, Any], step: int) -> dict[str, Any]:
        """Write the tables and ``summary.json`` (with the checkpoints on disk), tell the hooks "end", and
        return the summary as written."""
        summary = dict(summary)
        if self.folder is not None:
            self.write_tables()
            summary["checkpoints"] = self.folder.checkpoints()
            self.folder.write_summary(summary)
        self._notify("end", self.point(step))
        return summary

    def _notify(self, event: str, point: RecordPoint) -> None:
        for hook in self.hooks:
            hook(event, point)
