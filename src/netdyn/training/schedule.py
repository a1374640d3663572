"""The one parser of step schedules: ``"log:N"``, an integer step interval, or ``"none"``.

A :class:`TrainConfig`'s ``eval_every`` and ``checkpoint_every`` and a :class:`~netdyn.Monitor`'s ``every`` are
all read here. Over a known number of steps a schedule is a list of steps (:meth:`StepSchedule.steps`); a monitor
inside a user's loop may not know the total, so :meth:`StepSchedule.due` also answers for an open-ended run
("log:N" then places N points in every decade of steps: 1..10, 10..100, ...).
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np

from netdyn.errors import ConfigError

ScheduleKind = Literal["log", "interval", "none"]


@dataclass(frozen=True)
class StepSchedule:
    """A parsed schedule: ``kind`` "log" (``n`` log-spaced points), "interval" (every ``n`` steps) or "none"."""

    kind: ScheduleKind
    n: int = 0

    @classmethod
    def parse(cls, spec: str | int, name: str = "schedule") -> StepSchedule:
        """Read ``"log:N"`` (N >= 1), a whole step interval >= 1 (an int or its digits) or ``"none"``.

        Anything else raises :class:`ConfigError`, its message naming the setting ``name``.
        """
        if spec == "none":
            return cls("none")
        if isinstance(spec, str) and spec.startswith("log:"):
            try:
                n = int(spec[4:])
            except ValueError:
                raise ConfigError(f"{name} {spec!r}: expected log:N with an integer N") from None
            if n < 1:
                raise ConfigError(f"{name} {spec!r}: N must be >= 1")
            return cls("log", n)
        if isinstance(spec, bool) or not isinstance(spec, (str, numbers.Integral)):
            raise ConfigError(f"{name} {spec!r}: expected 'log:N', a whole step interval or 'none'")
        try:
            every = int(spec)
        except ValueError:
            raise ConfigError(f"{name} {spec!r}: expected 'log:N' or an integer step interval") from None
        if every < 1:
            raise ConfigError(f"{name} {spec!r}: the interval must be >= 1")
        return cls("interval", every)

    def steps(self, total: int) -> list[int]:
        """The scheduled steps in 0..total, always holding 0 and ``total`` (none for "none": a pure-speed run)."""
        if self.kind == "none":
            return []
        if self.kind == "log":
            points = _log_points(self.n, total)
        else:
            points = frozenset(range(self.n, total + 1, self.n))
        return sorted({0, total, *(p for p in points if 0 < p <= total)})

    def due(self, step: int, total: int | None = None) -> bool:
        """Whether ``step`` is scheduled; step 0 (and ``total``, when given) always is.

        With ``total`` None the run is open-ended: an interval goes on forever and "log:N" places N points per
        decade of steps.
        """
        if self.kind == "none":
            return False
        if step == 0 or (total is not None and step == total):
            return True
        if self.kind == "interval":
            return step % self.n == 0
        if total is not None:
            return step in _log_points(self.n, total)
        return step in _decade_points(self.n, math.floor(math.log10(step)))


@functools.cache
def _log_points(n: int, total: int) -> frozenset[int]:
    """``n`` log-spaced steps over 1..total (rounded; fewer where they round to the same step)."""
    return frozenset(np.unique(np.round(np.logspace(0, math.log10(max(total, 1)), n)).astype(int)).tolist())


@functools.cache
def _decade_points(n: int, decade: int) -> frozenset[int]:
    """``n`` log-spaced steps per decade, 10**decade .. 10**(decade + 1): an open-ended "log:N"."""
    return frozenset(np.unique(np.round(np.logspace(decade, decade + 1, n + 1)).astype(int)).tolist())


def parse_schedule(spec: str | int, total: int) -> list[int]:
    """Steps in 0..total at which something happens.

    "log:N" or an integer interval, both always holding 0 and total; or "none" for never (a pure-speed run: no
    evaluation, no checkpoint).
    """
    return StepSchedule.parse(spec).steps(total)
