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

The training history (loss and accuracy per split, under running and batch statistics for a net with batch
norm) is recorded at every scheduled step; its rows are buffered and written with the next full record and at
:meth:`Monitor.close`. ``budget`` x the training wall time bounds only the costly part, the quantities and the
checkpoint: a scheduled step whose quantities would exceed it records the history alone, and the ``monitor``
table says so (``skipped_budget``). :meth:`Monitor.close` records the last step the loop reported in full.
Each record's scalars also go to the ``loggers`` (TensorBoard, a Lightning logger, ``wandb.log``, ...).

It never touches the user's model, optimiser or random number generators (it works on a copy, draws its
subsets from its own generator, and restores the CPU and CUDA RNG states after each record).
"""

from __future__ import annotations

import copy as model_copy
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from netdyn.analysis._common import model_samples
from netdyn.analysis.compute import compute_or_skip, read_model
from netdyn.analysis.config import AnalysisConfig
from netdyn.analysis.quantities import QUANTITIES, AnalysisContext
from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError, ModelError, RunError
from netdyn.models import MLP
from netdyn.store import RunFolder, check_factory, user_model_record
from netdyn.training.loop import HISTORY_COLUMNS, compute_loss, evaluate
from netdyn.training.recorder import Recorder, RecordPoint, Schedule
from netdyn.training.schedule import StepSchedule

logger = logging.getLogger("netdyn.monitor")

#: The quantities recorded by default: those cheap enough for a training loop (``Quantity.cheap``).
DEFAULT_QUANTITIES = tuple(name for name, q in QUANTITIES.items() if q.cheap)
MONITOR_COLUMNS = ["step", "status", "train_loss", "monitor_time", "train_time"]
#: The prefix of the scalars the monitor hands to its loggers (``netdyn/test_accuracy``, ...).
SCALAR_PREFIX = "netdyn/"
LOGGERS_TAKE = (
    "loggers takes TensorBoard SummaryWriters (add_scalar), Lightning loggers (log_metrics) or callables "
    "(scalars: dict, step)"
)


def send_scalars(target: Any, scalars: dict[str, float], step: int) -> None:
    """Hand one record's scalars to a logger.

    A TensorBoard ``SummaryWriter`` gets ``add_scalar`` per scalar, a Lightning logger ``log_metrics``, and any
    other callable is called as ``target(scalars, step)`` (``wandb.log``, MLflow's ``log_metrics``).
    """
    if callable(getattr(target, "add_scalar", None)):
        for tag, value in scalars.items():
            target.add_scalar(tag, value, step)
    elif callable(getattr(target, "log_metrics", None)):
        target.log_metrics(scalars, step)
    else:
        target(scalars, step)


def _accepts_scalars(target: Any) -> bool:
    return any(callable(getattr(target, name, None)) for name in ("add_scalar", "log_metrics")) or callable(target)


def _flush(target: Any) -> None:
    """Write out what a logger buffers (a SummaryWriter's ``flush``, a Lightning logger's ``save``)."""
    for name in ("flush", "save"):
        method = getattr(target, name, None)
        if callable(method):
            method()
            return


def history_scalars(history: pd.DataFrame) -> dict[str, float]:
    """The loggers' scalars of history rows.

    They are named ``netdyn/{split}_{loss|accuracy}``, with ``_batch`` appended under batch statistics (as in
    ``summary.json``).
    """
    scalars = {}
    for row in history.to_dict("records"):
        suffix = "_batch" if row["bn_mode"] == "batch" else ""
        for metric in ("loss", "accuracy"):
            scalars[f"{SCALAR_PREFIX}{row['split']}_{metric}{suffix}"] = float(row[metric])
    return scalars


def _converts(model: nn.Sequential) -> bool:
    """Whether ``MLP.from_sequential`` reads ``model`` (Linear, BatchNorm1d and activation modules)."""
    try:
        MLP.from_sequential(model)
    except (ModelError, ConfigError):
        return False
    return True


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
        budget: the monitor's time may not exceed this fraction of the training wall time. It bounds the costly
            part of a record (the quantities and the checkpoint): a scheduled point that would exceed it records
            the history alone. Two points are always recorded in full, so that a short run still shows where it
            started and where it ended: the first (there is no training time yet to compare it with) and the last
            (``total_steps``, or the last step seen at :meth:`close`).
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
        loggers: where each record's scalars go too (``netdyn/test_accuracy``, ``netdyn/test_accuracy_batch``,
            the quantities' summary numbers at a full record, ...): TensorBoard ``SummaryWriter`` objects, Lightning
            loggers, or callables ``(scalars: dict, step)`` such as ``wandb.log``.
        batch_size: the batch of the batch-statistics evaluation of a net with batch norm (your training batch).
        model_factory: ``"package.module:function"`` that builds the model, recorded in config.json with
            ``model_args`` (its JSON keyword arguments) so that ``load_run(run_dir).model()`` rebuilds it; without
            one, ``load_run(run_dir).model(into=net)`` loads the weights into a model you pass.
        model_args: the factory's keyword arguments (a JSON object).
        input_shape: how one sample is fed to the model, ``x.reshape(-1, *input_shape)`` (default: the data's).
        cuts: the model's cuts by node or module name (docs/any-network.md; default: its transfer functions' outputs).

    The model is any ``nn.Module`` the network adapter reads (see docs/any-network.md): a netdyn ``MLP`` or an
    ``nn.Sequential`` that ``MLP.from_sequential`` converts is recorded as a netdyn MLP (unless a factory,
    ``input_shape`` or ``cuts`` is given); any other model as itself (its class, factory and weights), its tables with a
    ``cut`` column. A quantity that does not read such a model yet is left out, logged once and listed under
    ``skipped_quantities`` in the summary.
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
        loggers: Sequence[Any] = (),
        batch_size: int = 100,
        model_factory: str | None = None,
        model_args: dict[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
        cuts: Sequence[str] | None = None,
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
        self.loggers = list(loggers)
        self.batch_size = batch_size
        self.model_factory = model_factory
        self.model_args = model_args
        self.input_shape = None if input_shape is None else tuple(input_shape)
        if isinstance(cuts, str):
            raise ConfigError(f"cuts takes a list of names, got the string {cuts!r}")
        self.cuts = None if cuts is None else tuple(cuts)
        self.events: list[dict[str, Any]] = []
        """Transitions detected so far (``netdyn.transitions.detect_transitions``), one per kind, as first seen."""
        self._validate()
        self._recorder: Recorder | None = None
        self._net: nn.Module | None = None
        self._folder = RunFolder(self.run_dir)
        self._samples: SampleSet | None = None
        self._last_step: int | None = None
        self._last_call: float | None = None
        self._train_time = 0.0
        self._monitor_time = 0.0
        self._estimate: float | None = None
        self._train_loss: float | None = None
        self._closed = False
        self._model: nn.Module | None = None
        self._history_step: int | None = None
        self._scalars: dict[str, float] = {}
        self._own: bool | None = None
        """Whether the model is recorded as a netdyn MLP (decided at the first record)."""
        self._shape: tuple[int, ...] | None = None
        """How a sample is fed to a model that is not a netdyn MLP (resolved at the first record)."""
        self._skipped: dict[str, str] = {}

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
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ConfigError(f"batch_size must be a whole number >= 2, got {self.batch_size!r}")
        refused = [type(target).__name__ for target in self.loggers if not _accepts_scalars(target)]
        if refused:
            raise ConfigError(f"{LOGGERS_TAKE}; got {', '.join(refused)}")
        check_factory(self.model_factory, self.model_args)

    def _subset(self, x: torch.Tensor, y: torch.Tensor, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if n <= self.max_samples:
            return x, y
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + stream)
        idx = torch.sort(torch.randperm(n, generator=gen)[: self.max_samples]).values
        return x[idx], y[idx]

    def _copy(self, model: nn.Module) -> nn.Module:
        """A copy of the user's model to record.

        It is a netdyn MLP where the model is one or converts to one (and no factory, input shape or cuts say
        otherwise), else the model itself (read through the network adapter).
        """
        if not isinstance(model, nn.Module):
            raise ModelError(f"the monitor records a torch.nn.Module, got {type(model).__name__}")
        if self._own is None:
            self._own = self.model_factory is None and self.input_shape is None and self.cuts is None and (
                isinstance(model, MLP) or (isinstance(model, nn.Sequential) and _converts(model)))
        if self._own and isinstance(model, nn.Sequential):
            return MLP.from_sequential(model)
        return model_copy.deepcopy(model)

    # ---------------------------------------------------------------- opening the folder
    def _open(self, net: nn.Module) -> None:
        data_spec = getattr(self.data, "spec", None)
        if isinstance(net, MLP):
            described: dict[str, Any] = {"model": net.spec.to_dict()}
            num_classes = net.widths[-1]
        else:
            try:
                fitted, self._shape = model_samples(net, self.data, self.input_shape)
            except RuntimeError as exc:  # the model's own forward refuses the samples' shape
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ModelError(f"{type(net).__name__} cannot take the data's samples as input_shape "
                                 f"{self.input_shape or getattr(self.data, 'input_shape', None)} ({reason}); "
                                 "pass input_shape=...") from None
            num_classes = int(fitted.num_classes)
            described = user_model_record(net, self.model_factory, self.model_args, self._shape, self.cuts)
        record = {
            **described,
            "train": None,
            "data": DataSpec.from_dict(data_spec).to_dict() if data_spec else None,
            "monitor": {
                "every": self.every,
                "quantities": list(self.quantities),
                "budget": self.budget,
                "max_samples": self.max_samples,
                "total_steps": self.total_steps,
                "loss": self.loss,
                "batch_size": self.batch_size,
                "seed": self.seed,
            },
        }
        self._folder.open(record, hint="choose another run_dir")
        x_train, y_train = self._subset(self.data.x_train.flatten(1), self.data.y_train, 1)
        x_test, y_test = self._subset(self.data.x_test.flatten(1), self.data.y_test, 2)
        self._samples = as_samples((x_train, y_train, x_test, y_test), num_classes=num_classes)
        if isinstance(net, MLP):
            check_fits(self._samples, net.widths[0], net.widths[-1])
        schedule = Schedule(self.total_steps or 0, frozenset(), frozenset())
        self._recorder = Recorder(schedule, self._measure, self._save if self.checkpoints else None, self._folder)

    # ---------------------------------------------------------------- recording
    @property
    def _live(self) -> tuple[nn.Module, SampleSet]:
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

    def _history(self, step: int) -> pd.DataFrame:
        """The history rows of ``step``: each split under each BN evaluation (both for a net with batch norm)."""
        net, samples = self._live
        dtype = next(net.parameters()).dtype
        rows = []
        for split in ("train", "test"):
            x, y = getattr(samples, f"x_{split}").to(dtype), getattr(samples, f"y_{split}")
            modes = self._evaluate_modes(net, x, y) if isinstance(net, MLP) else self._evaluate_any(net, x, y)
            for mode, (loss, accuracy) in modes.items():
                rows.append({"step": step, "epoch": float("nan"), "wall_time": self._train_time, "split": split,
                             "bn_mode": mode, "loss": loss, "accuracy": accuracy})
        self._history_step = step
        return pd.DataFrame(rows, columns=HISTORY_COLUMNS)

    @torch.no_grad()
    def _evaluate_modes(self, net: MLP, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, float]]:
        """(mean loss, accuracy) of one split under each BN evaluation, as ``training.loop.evaluate`` gives them.

        The first layer's linear map, most of a wide-input net's cost, is computed once for both evaluations.
        """
        if not net.has_batchnorm:
            return {"none": evaluate(net, x, y, self.loss, "running", self.batch_size)}
        first = net.block(1)
        a1 = first.linear(x.flatten(1))
        results = {}
        for mode, chunk in (("running", x.shape[0]), ("batch", self.batch_size)):
            total_loss, correct = 0.0, 0
            for start in range(0, x.shape[0], chunk):
                part = slice(start, start + chunk)
                used = "batch" if mode == "batch" and a1[part].shape[0] > 1 else "running"
                _, x1 = first.join(first.normalize(a1[part], used))
                logits = net.run_from(1, x1, x[part].flatten(1), used) if net.n_layers > 1 else x1
                total_loss += float(compute_loss(logits, y[part], self.loss, reduction="sum"))
                correct += int((logits.argmax(1) == y[part]).sum())
            results[mode] = (total_loss / x.shape[0], correct / x.shape[0])
        return results

    @torch.no_grad()
    def _evaluate_any(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, float]]:
        """(mean loss, accuracy) of one split of any model, under each BN evaluation where it has batch norm.

        Batch statistics: the batch-norm modules in training mode over batches of ``batch_size`` (the rest in
        evaluation mode), their running statistics put back afterwards.
        """
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        modes = [("running", x.shape[0]), ("batch", self.batch_size)] if norms else [("none", x.shape[0])]
        return {mode: self._evaluate_chunks(model, norms, x, y, mode, chunk) for mode, chunk in modes}

    def _evaluate_chunks(self, model: nn.Module, norms: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                         mode: str, chunk: int) -> tuple[float, float]:
        shape = self._shape or tuple(x.shape[1:])
        kept = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
        total_loss, correct = 0.0, 0
        try:
            for start in range(0, x.shape[0], chunk):
                part = slice(start, start + chunk)
                for m in norms:
                    m.train(mode == "batch" and x[part].shape[0] > 1)
                logits = model(x[part].reshape(-1, *shape))
                total_loss += float(compute_loss(logits, y[part], self.loss, reduction="sum"))
                correct += int((logits.argmax(1) == y[part]).sum())
        finally:
            for m, state in zip(norms, kept, strict=True):
                m.eval()
                m.load_state_dict(state)
        return total_loss / x.shape[0], correct / x.shape[0]

    def _measure(self, point: RecordPoint) -> dict[str, pd.DataFrame]:
        net, samples = self._live
        tables = {}
        if self._history_step != point.step:  # close() may record in full a step whose history is buffered
            tables["history"] = self._history(point.step)
            self._scalars.update(history_scalars(tables["history"]))
        config = self._analysis_config()
        samples, n_layers, shape = read_model(net, samples, self._shape, self.cuts)
        ctx = AnalysisContext.build(net, samples, config, n_layers=n_layers, input_shape=shape, cuts=self.cuts)
        computed: dict[str, pd.DataFrame] = {}
        for name in self.quantities:
            record = QUANTITIES[name]
            if record.switch is not None and not getattr(config, record.switch):
                continue
            tables_of, reason = compute_or_skip(record, net, samples, ctx)
            computed.update(tables_of)
            if reason is not None and name not in self._skipped:
                self._skipped[name] = reason
                logger.warning("netdyn monitor: %s is not recorded for this model: %s", name, reason)
        self._scalars.update(self._quantity_scalars(computed, ctx))
        for name, table in computed.items():
            tables[name] = table.assign(step=point.step)
        return tables

    def _quantity_scalars(self, computed: dict[str, pd.DataFrame], ctx: AnalysisContext) -> dict[str, float]:
        """The quantities' summary numbers (effective layers, RPD gradient, ...) as the loggers' scalars.

        The network's own accuracies are left out: the history's scalars hold them already.
        """
        scalars: dict[str, float] = {}
        if "network" not in computed:  # every summary reads the network's own accuracy
            return scalars
        for name in self.quantities:
            if name == "network" or not all(table in computed for table in QUANTITIES[name].tables):
                continue
            for key, value in QUANTITIES[name].summarize(computed, ctx).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    scalars[f"{SCALAR_PREFIX}{key}"] = float(value)
        return scalars

    def _analysis_config(self) -> AnalysisConfig:
        parameter = next(self._live[0].parameters())
        return replace(self.analysis, quantities=self.quantities, max_samples=self.max_samples, seed=self.seed,
                       device=str(parameter.device), dtype=str(parameter.dtype).removeprefix("torch."))

    def _save(self, point: RecordPoint) -> None:
        self._folder.save_checkpoint(point.step, self._live[0], None, {"wall_time": self._train_time})

    def step(self, model: nn.Module, step: int, train_loss: float | None = None) -> bool:
        """The user's loop has finished step ``step``: record it if it is scheduled.

        The history is recorded at every scheduled step; the quantities and the checkpoint where the budget allows.
        Returns whether it was recorded in full.
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
        self._model = model
        recorded = False
        if monitor_steps(self.every, self.total_steps, step):
            try:
                recorded = self._record(model, step)
            except BaseException:
                self._model = None  # a model the monitor cannot read is not recorded again at close()
                raise
        self._last_call = time.perf_counter()
        return recorded

    def _record(self, model: nn.Module, step: int, force: bool = False) -> bool:
        """Record ``step``: the history always; the quantities and checkpoint too when within the budget.

        The first and last points, and a ``force``d one, are recorded in full. Returns whether it recorded in full.
        """
        start = time.perf_counter()
        with self._rng_kept():
            self._net = self._copy(model).eval()
            try:
                if self._recorder is None:
                    self._open(self._net)
                full = force or self._full_due(step)
                if full:
                    self._record_full(step)
                else:
                    rows = self._history(step)
                    self._opened.add("history", rows, write=False)  # written with the next full record
                    self._scalars.update(history_scalars(rows))
            finally:
                self._net = None
        self._send(step)
        cost = time.perf_counter() - start
        self._log(step, "recorded" if full else "skipped_budget", cost, write=full)
        if full:  # the record and its log line: what the next one will cost
            self._estimate = time.perf_counter() - start
        self._monitor_time += time.perf_counter() - start
        return full

    def _full_due(self, step: int) -> bool:
        """Whether the quantities fit the budget at ``step`` (always at the first record and at ``total_steps``)."""
        if self._estimate is None or (self.total_steps is not None and step == self.total_steps):
            return True
        return self._monitor_time + self._estimate <= self.budget * self._train_time

    def _record_full(self, step: int) -> None:
        self._opened.schedule = Schedule(
            max(step, self.total_steps or 0), frozenset({step}), frozenset({step} if self.checkpoints else ())
        )
        if self._opened.record(step) and self.detect:
            self._detect(step)

    @contextmanager
    def _rng_kept(self) -> Iterator[None]:
        """The CPU and CUDA random number generators as they were, whatever the record draws."""
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            yield
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)

    def _send(self, step: int) -> None:
        """Hand the scalars gathered by this record to the loggers."""
        scalars, self._scalars = self._scalars, {}
        if scalars:
            for target in self.loggers:
                send_scalars(target, scalars, step)

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
        """Record the last step the loop reported, in full, and write the buffered history and the summary.

        The last step is recorded on the model as it is now (the one last passed to :meth:`step`). The summary
        holds the last accuracies, the records, the skipped points and the overhead; it is returned.
        """
        if self._closed:
            return {}
        self._closed = True
        if self._model is not None and self._last_step is not None and (
            self._recorder is None or self._recorder.last_measured < self._last_step
        ):
            self._record(self._model, self._last_step, force=True)
        self._model = None
        if self._recorder is None:
            return {}
        summary = self._summary(self._recorder)
        for target in self.loggers:
            _flush(target)
        return self._recorder.finish(summary, self._last_step or 0)

    def _summary(self, recorder: Recorder) -> dict[str, Any]:
        monitor = recorder.table("monitor")
        summary: dict[str, Any] = {
            "steps": self._last_step,
            "records": int((monitor["status"] == "recorded").sum()) if monitor is not None else 0,
            "skipped": [int(s) for s in monitor.loc[monitor["status"] == "skipped_budget", "step"]]
            if monitor is not None else [],
            "history_points": int(monitor["step"].nunique()) if monitor is not None else 0,
            "train_time": self._train_time,
            "monitor_time": self._monitor_time,
            "overhead": self.overhead if math.isfinite(self.overhead) else None,
            "budget": self.budget,
            "events": [{k: e[k] for k in ("event", "step", "confidence", "detected_at")} for e in self.events],
        }
        if self._skipped:
            summary["skipped_quantities"] = dict(self._skipped)
        history = recorder.table("history")
        if history is None or not len(history):
            return summary
        last_step = int(history["step"].max())
        if last_step == 0:
            summary["warning"] = (
                "only step 0 (the untrained network) was recorded: the training loop reported no step after it, "
                "so this folder holds no result of training"
            )
            logger.warning("netdyn monitor: %s (%s)", summary["warning"], self.run_dir)
            return summary
        for row in history[history["step"] == last_step].to_dict("records"):
            suffix = "_batch" if row["bn_mode"] == "batch" else ""
            summary[f"{row['split']}_accuracy{suffix}"] = float(row["accuracy"])
            summary[f"{row['split']}_loss{suffix}"] = float(row["loss"])
        return summary

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
