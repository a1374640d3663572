"""``netdyn.Monitor``: the framework's quantities recorded from inside a user's own training loop.

    with netdyn.Monitor("runs/mine", data, total_steps=5000) as monitor:
        for step in range(5000):
            ...                                   # the user's own step
            monitor.step(model, step + 1, train_loss=loss.item())

At the scheduled steps the monitor copies the model (any ``nn.Sequential`` that ``MLP.from_sequential``
accepts, or an ``MLP``), evaluates it without gradient on fixed seeded subsets of the data, and records the
chosen quantities of ``netdyn.analysis.QUANTITIES`` through the same :class:`~netdyn.training.Recorder` as
``train``: the folder it writes is a run folder like any other (``config.json``, ``checkpoints/``,
``metrics/history.parquet`` and one table per quantity with a ``step`` column, as ``analyze_checkpoints``
stacks them), so ``netdyn analyze``, ``load_run`` and every figure work on it.

It never touches the user's model, optimiser or random number generators (it works on a copy, draws its
subsets from its own generator, and restores the CPU and CUDA RNG states after each record), and it keeps its
own cost under ``budget`` x the training wall time: a scheduled point that would exceed the budget is skipped
and the ``monitor`` table says so.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import QUANTITIES, AnalysisContext
from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError, ModelError, RunError
from netdyn.models import MLP
from netdyn.store import RunFolder
from netdyn.training.loop import HISTORY_COLUMNS, compute_loss
from netdyn.training.recorder import Recorder, RecordPoint, Schedule
from netdyn.training.schedule import StepSchedule

logger = logging.getLogger("netdyn.monitor")

#: The quantities recorded by default: those cheap enough for a training loop (``Quantity.cheap``).
DEFAULT_QUANTITIES = tuple(name for name, q in QUANTITIES.items() if q.cheap)
MONITOR_COLUMNS = ["step", "status", "train_loss", "monitor_time", "train_time"]


def monitor_steps(every: str | int, total_steps: int | None, step: int) -> bool:
    """Whether ``step`` is a scheduled point of ``every``.

    ``every`` is an integer interval, or ``"log:N"``, N log-spaced points over ``total_steps`` (with no total, N
    points per decade of steps: 1, 10, 100, ... and between); step 0 and the last step are always scheduled.
    """
    return StepSchedule.parse(every).due(step, total_steps)


class Monitor:
    """Records the framework's quantities from a user's own training loop (see the module docstring).

    Args:
        run_dir: the run folder to write (new or empty: a folder holding a run is refused).
        data: a ``Dataset`` or the four tensors ``(x_train, y_train, x_test, y_test)``.
        every: the schedule: ``"log:N"`` or an integer step interval (see :func:`monitor_steps`).
        quantities: names of ``QUANTITIES`` to record (default: the cheap ones: the network's accuracy, L-map,
            LP, RPD and class geometry); basins and neuron modes on request.
        budget: the monitor's time may not exceed this fraction of the training wall time; a scheduled point that
            would exceed it is skipped. Two points are always recorded, so that a short run still shows where it
            started and where it ended: the first (there is no training time yet to compare it with) and the last
            (``total_steps``, when given).
        max_samples: size of the fixed seeded subsets of each split that every record evaluates.
        total_steps: the run's length, when known (places the log-spaced points).
        loss: the loss of the history table's rows, ``ce`` or ``mse`` (the user's own training loss goes in the
            ``monitor`` table when passed to :meth:`step`).
        checkpoints: save the model at each record (needed by ``netdyn analyze``).
        seed: seed of the subsets.
        analysis: further settings of the quantities (``AnalysisConfig``: eps, repeats, ...).
        detect: after each record, look for transitions (grokking, double descent, the RPD gradient's fastest
            change) in what is recorded so far; a newly found one is logged (logger ``netdyn.monitor``, level
            WARNING, so it shows by default) and added to the ``events`` table.
    """

    def __init__(
        self,
        run_dir: str | Path,
        data: DataLike,
        every: str | int = "log:30",
        quantities: tuple[str, ...] | None = None,
        budget: float = 0.1,
        max_samples: int = 1000,
        total_steps: int | None = None,
        loss: str = "ce",
        checkpoints: bool = True,
        seed: int = 0,
        analysis: AnalysisConfig | None = None,
        detect: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.data = as_samples(data)
        self.every = every
        self.quantities = tuple(quantities) if quantities is not None else DEFAULT_QUANTITIES
        self.budget = budget
        self.max_samples = max_samples
        self.total_steps = total_steps
        self.loss = loss
        self.checkpoints = checkpoints
        self.seed = seed
        self.analysis = analysis or AnalysisConfig()
        self.detect = detect
        self.events: list[dict[str, Any]] = []
        """Transitions detected so far (``netdyn.transitions.detect_transitions``), one per kind, as first seen."""
        self._validate()
        self._recorder: Recorder | None = None
        self._net: MLP | None = None
        self._folder = RunFolder(self.run_dir)
        self._samples: SampleSet | None = None
        self._last_step: int | None = None
        self._last_call: float | None = None
        self._train_time = 0.0
        self._monitor_time = 0.0
        self._estimate: float | None = None
        self._train_loss: float | None = None
        self._closed = False

    # ---------------------------------------------------------------- checks
    def _validate(self) -> None:
        unknown = [q for q in self.quantities if q not in QUANTITIES]
        if unknown:
            raise ConfigError(f"unknown quantities {unknown}; known: {', '.join(QUANTITIES)}")
        if StepSchedule.parse(self.every, "every").kind == "none":
            raise ConfigError("every must be 'log:N' or a whole step interval >= 1: a monitor records something")
        if isinstance(self.budget, bool) or not isinstance(self.budget, (int, float)) or not (
            math.isfinite(self.budget) and self.budget > 0
        ):
            raise ConfigError(f"budget must be a positive fraction of the training time, got {self.budget!r}")
        if isinstance(self.max_samples, bool) or not isinstance(self.max_samples, int) or self.max_samples < 2:
            raise ConfigError(f"max_samples must be a whole number >= 2, got {self.max_samples!r}")
        if self.total_steps is not None and (not isinstance(self.total_steps, int) or self.total_steps < 1):
            raise ConfigError(f"total_steps must be a whole number >= 1 or None, got {self.total_steps!r}")
        if self.loss not in ("ce", "mse"):
            raise ConfigError(f"loss must be ce or mse, got {self.loss!r}")

    def _subset(self, x: torch.Tensor, y: torch.Tensor, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if n <= self.max_samples:
            return x, y
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + stream)
        idx = torch.sort(torch.randperm(n, generator=gen)[: self.max_samples]).values
        return x[idx], y[idx]

    def _as_mlp(self, model: nn.Module) -> MLP:
        if isinstance(model, MLP):
            import copy

            return copy.deepcopy(model)
        if isinstance(model, nn.Sequential):
            return MLP.from_sequential(model)
        raise ModelError(
            f"the monitor reads an nn.Sequential of Linear / BatchNorm1d / activations or a netdyn MLP, "
            f"got {type(model).__name__}"
        )

    # ---------------------------------------------------------------- opening the folder
    def _open(self, net: MLP) -> None:
        data_spec = getattr(self.data, "spec", None)
        record = {
            "model": net.spec.to_dict(),
            "train": None,
            "data": DataSpec.from_dict(data_spec).to_dict() if data_spec else None,
            "monitor": {
                "every": self.every,
                "quantities": list(self.quantities),
                "budget": self.budget,
                "max_samples": self.max_samples,
                "total_steps": self.total_steps,
                "loss": self.loss,
                "seed": self.seed,
            },
        }
        self._folder.open(record, hint="choose another run_dir")
        x_train, y_train = self._subset(self.data.x_train.flatten(1), self.data.y_train, 1)
        x_test, y_test = self._subset(self.data.x_test.flatten(1), self.data.y_test, 2)
        self._samples = as_samples((x_train, y_train, x_test, y_test), num_classes=net.widths[-1])
        check_fits(self._samples, net.widths[0], net.widths[-1])
        schedule = Schedule(self.total_steps or 0, frozenset(), frozenset())
        self._recorder = Recorder(schedule, self._measure, self._save if self.checkpoints else None, self._folder)

    # ---------------------------------------------------------------- recording
    @property
    def _live(self) -> tuple[MLP, SampleSet]:
        """The network being recorded and the fixed samples (set only while :meth:`step` records)."""
        if self._net is None or self._samples is None:
            raise RuntimeError("the monitor measures only inside step()")
        return self._net, self._samples

    @property
    def _opened(self) -> Recorder:
        """The recorder (there once the first step opened the folder)."""
        if self._recorder is None:
            raise RuntimeError("the monitor's folder is not open yet")
        return self._recorder

    def _measure(self, point: RecordPoint) -> dict[str, pd.DataFrame]:
        net, samples = self._live
        rows = []
        with torch.no_grad():
            for split in ("train", "test"):
                x, y = getattr(samples, f"x_{split}"), getattr(samples, f"y_{split}")
                logits = net(x.to(next(net.parameters()).dtype), bn_mode="running")
                rows.append({
                    "step": point.step, "epoch": float("nan"), "wall_time": self._train_time, "split": split,
                    "bn_mode": "running" if net.has_batchnorm else "none",
                    "loss": float(compute_loss(logits, y, self.loss)),
                    "accuracy": float((logits.argmax(1) == y).double().mean()),
                })
        tables = {"history": pd.DataFrame(rows, columns=HISTORY_COLUMNS)}
        config = self._analysis_config()
        ctx = AnalysisContext.build(net, samples, config)
        computed: dict[str, pd.DataFrame] = {}
        for name in self.quantities:
            record = QUANTITIES[name]
            if record.switch is not None and not getattr(config, record.switch):
                continue
            computed.update(record.compute(net, samples, ctx))
        for name, table in computed.items():
            tables[name] = table.assign(step=point.step)
        return tables

    def _analysis_config(self) -> AnalysisConfig:
        parameter = next(self._live[0].parameters())
        return replace(self.analysis, quantities=self.quantities, max_samples=self.max_samples, seed=self.seed,
                       device=str(parameter.device), dtype=str(parameter.dtype).removeprefix("torch."))

    def _save(self, point: RecordPoint) -> None:
        self._folder.save_checkpoint(point.step, self._live[0], None, {"wall_time": self._train_time})

    def step(self, model: nn.Module, step: int, train_loss: float | None = None) -> bool:
        """The user's loop has finished step ``step``: record it if it is scheduled and the budget allows.

        Returns whether it was recorded.
        """
        now = time.perf_counter()
        if self._closed:
            raise RunError("this monitor is closed")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError(f"step must be a whole number >= 0, got {step!r}")
        if self._last_step is not None and step <= self._last_step:
            raise ConfigError(f"steps must increase: got step {step} after step {self._last_step}")
        if self._last_call is not None:
            self._train_time += now - self._last_call
        self._last_step = step
        self._train_loss = train_loss
        recorded = False
        if monitor_steps(self.every, self.total_steps, step):
            recorded = self._record(model, step)
        self._last_call = time.perf_counter()
        return recorded

    def _record(self, model: nn.Module, step: int) -> bool:
        start = time.perf_counter()
        final = self.total_steps is not None and step == self.total_steps
        if self._recorder is not None and self._estimate is not None and not final:
            if self._monitor_time + self._estimate > self.budget * self._train_time:
                self._log(step, "skipped_budget", 0.0, write=False)  # written with the next record
                self._monitor_time += time.perf_counter() - start
                return False
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            self._net = self._as_mlp(model).eval()
            if self._recorder is None:
                self._open(self._net)
            self._opened.schedule = Schedule(
                max(step, self.total_steps or 0), frozenset({step}), frozenset({step} if self.checkpoints else ())
            )
            measured = self._opened.record(step)
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
            self._net = None
        if measured and self.detect:
            self._detect(step)
        cost = time.perf_counter() - start
        self._log(step, "recorded" if measured else "already_recorded", cost)
        self._estimate = time.perf_counter() - start  # the record and its log line: what the next one will cost
        self._monitor_time += self._estimate
        return measured

    def _detect(self, step: int) -> None:
        from netdyn.transitions import detect_transitions

        tables = {n: t for n in ("history", "rpd_summary", "lmap", "network")
                  if (t := self._opened.table(n)) is not None}
        if tables["history"]["step"].nunique() < 4:
            return
        seen = {event["event"] for event in self.events}
        for found in detect_transitions(tables).to_dict("records"):
            row = {str(key): value for key, value in found.items()}
            if row["event"] in seen:
                continue
            row["detected_at"] = step
            self.events.append(row)
            self._opened.add("events", pd.DataFrame([row]))
            what = json.loads(row["evidence"])["what"]
            logger.warning("netdyn monitor: %s at step %d (confidence %.2f): %s", row["event"], row["step"],
                           row["confidence"], what)

    def _log(self, step: int, status: str, cost: float, write: bool = True) -> None:
        row = pd.DataFrame([{
            "step": step, "status": status, "train_loss": np.nan if self._train_loss is None else self._train_loss,
            "monitor_time": cost, "train_time": self._train_time,
        }], columns=MONITOR_COLUMNS)
        if self._recorder is not None:
            self._recorder.add("monitor", row, write=write)

    # ---------------------------------------------------------------- end
    @property
    def last_step(self) -> int | None:
        """The last step the loop reported (None before the first)."""
        return self._last_step

    @property
    def overhead(self) -> float:
        """The monitor's time as a fraction of the training time so far."""
        return self._monitor_time / self._train_time if self._train_time > 0 else float("nan")

    def close(self) -> dict[str, Any]:
        """Write the summary (last accuracies, records, skipped points, overhead). Returns it."""
        if self._closed or self._recorder is None:
            self._closed = True
            return {}
        self._closed = True
        history = self._recorder.table("history")
        monitor = self._recorder.table("monitor")
        summary: dict[str, Any] = {
            "steps": self._last_step,
            "records": int((monitor["status"] == "recorded").sum()) if monitor is not None else 0,
            "skipped": [int(s) for s in monitor.loc[monitor["status"] == "skipped_budget", "step"]]
            if monitor is not None else [],
            "train_time": self._train_time,
            "monitor_time": self._monitor_time,
            "overhead": self.overhead if math.isfinite(self.overhead) else None,
            "budget": self.budget,
            "events": [{k: e[k] for k in ("event", "step", "confidence", "detected_at")} for e in self.events],
        }
        if history is not None and len(history):
            last = history[history["step"] == history["step"].max()]
            for row in last.itertuples():
                summary[f"{row.split}_accuracy"] = float(row.accuracy)
        return self._recorder.finish(summary, self._last_step or 0)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
