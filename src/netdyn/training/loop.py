"""The training loop (see docs/runs.md#training).

Whole-tensor data on the device, index-permutation minibatches, log-spaced evaluations and checkpoints, on-device
divergence detection, atomic run folders and exact resume.

The optimiser step (:class:`StepFn`) is a pure function of a device index tensor with no host
synchronisation, so a CUDA graph can capture it and a population of models can share its shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from netdyn.data.samples import DataLike
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError
from netdyn.models import MLP, ModelSpec
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig, steps_per_epoch
from netdyn.training.core import HISTORY_COLUMNS as HISTORY_COLUMNS  # re-exported: the history table's columns
from netdyn.training.core import (
    Evaluate,
    HistoryMeasure,
    TrainResult,
    batch_statistics,
    bn_modes,
    finish,
    history_frame,
    member_recorder,
    minibatch,
    prepare_data,
    run_record,
    run_steps,
)
from netdyn.training.recorder import Recorder, RecordPoint, Schedule

EVAL_CHUNK = 8192

Callback = Callable[[str, "TrainState"], Any]


@dataclass
class TrainState:
    """What a callback sees: the live network and optimiser, where the run is, and its records so far."""

    step: int
    epoch: float
    total_steps: int
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    run_dir: Path | None
    recorder: Recorder = field(repr=False)
    diverged: bool = False

    @property
    def history(self) -> pd.DataFrame:
        """The history table so far."""
        return history_frame(self.recorder.table("history"))


def make_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config`` names (SGD, Adam or AdamW) over ``net``'s parameters, with its lr and weight decay."""
    params = list(net.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def compute_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on logits, or mean squared error against one-hot targets.

    The squared error is summed over classes and averaged over samples, as Omnigrok's MNIST notebook does.
    """
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction=reduction)
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    per_sample = ((logits - target) ** 2).sum(1)
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def epoch_permutation(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The minibatch order of one epoch: a function of (seed, epoch) alone, so a resumed run replays it."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=gen).to(device)


class StepFn:
    """One optimiser step on the minibatch ``x[idx], y[idx]``, with an on-device divergence flag.

    ``first_bad`` holds the 1-based number of the first step whose loss was not finite (-1 while none was);
    it is read by the host only at evaluation points.
    """

    def __init__(
        self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss: str
    ) -> None:
        self.net, self.optimizer, self.x, self.y, self.loss = net, optimizer, x, y, loss
        device = x.device
        self.counter = torch.zeros((), dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def __call__(self, idx: torch.Tensor) -> None:
        """Take one optimiser step on the minibatch ``x[idx], y[idx]``, without synchronising with the host."""
        self.optimizer.zero_grad(set_to_none=False)
        logits = self.net(self.x[idx])
        loss = compute_loss(logits, self.y[idx], self.loss)
        loss.backward()
        self.optimizer.step()
        self.counter.add_(1)
        bad = ~torch.isfinite(loss.detach())
        self.first_bad.copy_(torch.where(bad & (self.first_bad < 0), self.counter, self.first_bad))

    def diverged_step(self) -> int | None:
        """The number of the first step whose loss was not finite (None while none was); reads the device."""
        value = int(self.first_bad.item())
        return None if value < 0 else value


@torch.no_grad()
def evaluate(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, bn_mode: str, batch_size: int
) -> tuple[float, float]:
    """(mean loss, accuracy) of a split, ``net`` in evaluation mode.

    ``bn_mode="batch"`` normalises each batch of ``batch_size`` by its own statistics (the paper's training-mode
    evaluation; any other model's running statistics are left as they were); "running" uses the running statistics.
    """
    n = x.shape[0]
    if n == 0:
        return float("nan"), float("nan")
    chunk = batch_size if bn_mode == "batch" else EVAL_CHUNK
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, n, chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        mode = "batch" if bn_mode == "batch" and xb.shape[0] > 1 else "running"
        logits = _logits(net, xb, mode)
        total_loss += compute_loss(logits, yb, loss, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    return total_loss.item() / n, correct.item() / n


def _logits(net: torch.nn.Module, x: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """``net``'s logits on ``x`` with batch norm in ``bn_mode`` ("batch" or "running")."""
    if isinstance(net, MLP):
        return net(x, bn_mode=bn_mode)
    if bn_mode == "batch":
        with batch_statistics(net):
            return net(x)
    return net(x)


class _NetSteps:
    """``train``'s steps: :class:`StepFn` on the minibatches of the run's ``(seed, epoch)`` permutations."""

    def __init__(self, step_fn: StepFn, seed: int, batch_size: int, steps_per_epoch: int) -> None:
        self.step_fn, self.seed, self.batch_size, self.steps_per_epoch = step_fn, seed, batch_size, steps_per_epoch
        self._perm: tuple[int, torch.Tensor] | None = None

    def __call__(self, step: int) -> None:
        n_train = self.step_fn.x.shape[0]
        epoch, rows = minibatch(step, self.steps_per_epoch, self.batch_size, n_train)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, epoch_permutation(self.seed, epoch, n_train, self.step_fn.x.device))
        self.step_fn(self._perm[1][rows])

    def diverged_steps(self) -> list[int | None]:
        return [self.step_fn.diverged_step()]


def _net_evaluator(net: torch.nn.Module, loss: str, batch_size: int) -> Evaluate:
    """:func:`evaluate` of the one net, in evaluation mode, as the core's ``Evaluate`` (a list of one)."""

    def evaluate_net(x: torch.Tensor, y: torch.Tensor, bn_mode: str) -> list[tuple[float, float]]:
        net.eval()
        try:
            return [evaluate(net, x, y, loss, bn_mode, batch_size)]
        finally:
            net.train()

    return evaluate_net


def train(
    net: MLP | torch.nn.Module,
    data: DataLike,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    progress: bool = False,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``net`` on ``data`` (a Dataset, or the four tensors), recording its dynamics (see docs/runs.md#training).

    With ``run_dir`` the run folder receives config.json, checkpoints and the history table as it goes.
    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint and ends with the same weights
    and the same history table as an uninterrupted run. A callback ``callback(event, state)`` runs at each
    evaluation ("eval") and at the end ("end"); an exception it raises stops the run, leaving the folder
    readable, and propagates. ``record`` replaces what config.json records (``netdyn.run`` passes its spec).

    ``net`` is a netdyn MLP, or a ``netdyn.ConvNet``, ``ResNet`` or ``ViT``: such a model is fed
    ``x.reshape(-1, *input_shape)``, the data set's own sample shape (one channel in front of an image set's
    (H, W)); a model with batch norm records both evaluations as an MLP does.
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train takes a TrainConfig, got {type(config).__name__}")
    samples, placed = prepare_data([net], data, config)
    batch = min(config.batch_size, placed.n_train)
    per_epoch = steps_per_epoch(placed.n_train, batch)
    total = config.total_steps(placed.n_train)
    optimizer = make_optimizer(net, config)
    folder = RunFolder(run_dir) if run_dir is not None else None
    start, wall, resumed = 0, 0.0, False
    if folder is not None:
        record = record or run_record(net, samples, config)
        start, wall, resumed = open_run_folder(folder, record, net, optimizer, resume, placed.device)
    modes = bn_modes(net, config.bn_eval)
    measure = HistoryMeasure(_net_evaluator(net, config.loss, batch), 1, placed, modes)
    state: TrainState

    def hook(event: str, point: RecordPoint) -> None:
        state.step, state.epoch = point.step, point.epoch
        for callback in callbacks:
            callback("eval" if event == "record" else event, state)

    recorder = member_recorder(
        Schedule.of(config, total), measure.member(0), per_epoch, folder, lambda: (net, optimizer), [hook],
        (start, wall) if resumed else None,
    )  # fmt: skip
    state = TrainState(start, start / per_epoch, total, net, optimizer, folder.path if folder else None, recorder)
    step_fn = StepFn(net, optimizer, placed.x_train, placed.y_train, config.loss)
    step_fn.counter.fill_(start)
    steps = _NetSteps(step_fn, config.seed, batch, per_epoch)
    net.train()
    try:
        diverged_step = run_steps(steps, steps.diverged_steps, [recorder], start, total, progress)[0]
    except BaseException:
        if folder is not None and not resumed:
            folder.discard_unrecorded()
        raise
    finally:
        net.eval()
    state.diverged = diverged_step is not None
    return finish([recorder], [net], [diverged_step], total, placed, modes)[0]


def open_run_folder(
    folder: RunFolder,
    record: dict[str, Any],
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    resume: bool,
    device: torch.device,
) -> tuple[int, float, bool]:
    """Prepare a run folder; return (step, wall time, whether a checkpoint was loaded).

    Write config.json for a new run; on resume, check that the folder holds this same run and load its last
    checkpoint into ``net`` and ``optimizer``. A run that starts from scratch gets (0, 0.0, False).
    """
    if folder.open(record, resume=resume, differs=record_difference) is None:
        return 0, 0.0, False
    if not folder.checkpoints():  # killed before its first checkpoint: start again from step 0
        folder.write_record(record)
        return 0, 0.0, False
    ckpt = folder.load_checkpoint("last")
    net.load_state_dict({k: v.to(device) for k, v in ckpt["model"].items()})
    if optimizer is not None and ckpt["optim"] is not None:
        optimizer.load_state_dict(ckpt["optim"])
    return ckpt["step"], float(ckpt["meta"].get("wall_time", 0.0)), True


def record_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Which part of two run records (config.json) differs ("model config", ...), or None for the same run."""
    for key in ("model", "train", "data"):
        if not same_record(key, old.get(key), new.get(key)):
            return f"{key} config"
    return None


def same_record(key: str, old: Any, new: Any) -> bool:
    """Whether two config.json entries describe the same run.

    The model's seed is not compared: a resumed run takes its weights from the checkpoint (older folders wrote the model
    as MLP's keyword arguments, without a seed, and the data with the absolute folder it came from).
    """
    if old is None or new is None:
        return old == new
    if key == "model":
        a, b = ModelSpec.from_dict(old).to_dict(), ModelSpec.from_dict(new).to_dict()
        a.pop("seed"), b.pop("seed")
        return a == b
    if key == "data":
        # an option that one record leaves to the data set's default and the other states is no difference
        # (a spec as given vs the same data as loaded)
        was, now = DataSpec.from_dict(old), DataSpec.from_dict(new)
        common = set(was.options) & set(now.options)
        same_options = all(was.options[k] == now.options[k] for k in common)
        return replace(was, options={}) == replace(now, options={}) and same_options
    return json.loads(json.dumps(old, default=str)) == json.loads(json.dumps(new, default=str))

