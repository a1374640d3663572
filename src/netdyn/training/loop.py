"""The training loop (SPEC section 4): whole-tensor data on the device, index-permutation minibatches,
log-spaced evaluations and checkpoints, on-device divergence detection, atomic run folders and exact resume.

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

from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn._version import __version__
from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError, ModelError, RunError
from netdyn.models import MLP, ModelSpec
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig, steps_per_epoch
from netdyn.training.recorder import Recorder, RecordPoint, Schedule

HISTORY_COLUMNS = ["step", "epoch", "wall_time", "split", "bn_mode", "loss", "accuracy"]
EVAL_CHUNK = 8192

Callback = Callable[[str, "TrainState"], Any]


@dataclass
class TrainState:
    """What a callback sees: the live network and optimiser, where the run is, and its records so far."""

    step: int
    epoch: float
    total_steps: int
    net: MLP
    optimizer: torch.optim.Optimizer
    run_dir: Path | None
    recorder: Recorder = field(repr=False)
    diverged: bool = False

    @property
    def history(self) -> pd.DataFrame:
        """The history table so far."""
        return _history_frame(self.recorder.table("history"))


@dataclass
class TrainResult:
    """A finished (or stopped) run: its metrics table, summary and folder."""

    history: pd.DataFrame
    summary: dict[str, Any]
    run_dir: Path | None
    net: MLP = field(repr=False)

    @property
    def diverged(self) -> bool:
        return bool(self.summary.get("diverged"))


def make_optimizer(net: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = list(net.parameters())
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def compute_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on logits, or mean squared error against one-hot targets (summed over classes,
    averaged over samples, as Omnigrok's MNIST notebook does)."""
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

    def __init__(self, net: MLP, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss: str):
        self.net, self.optimizer, self.x, self.y, self.loss = net, optimizer, x, y, loss
        device = x.device
        self.counter = torch.zeros((), dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def __call__(self, idx: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=False)
        logits = self.net(self.x[idx])
        loss = compute_loss(logits, self.y[idx], self.loss)
        loss.backward()
        self.optimizer.step()
        self.counter.add_(1)
        bad = ~torch.isfinite(loss.detach())
        self.first_bad.copy_(torch.where(bad & (self.first_bad < 0), self.counter, self.first_bad))

    def diverged_step(self) -> int | None:
        value = int(self.first_bad.item())
        return None if value < 0 else value


@torch.no_grad()
def evaluate(
    net: MLP, x: torch.Tensor, y: torch.Tensor, loss: str, bn_mode: str, batch_size: int
) -> tuple[float, float]:
    """(mean loss, accuracy) of a split. ``bn_mode="batch"`` normalises each batch of ``batch_size`` by its
    own statistics (the paper's training-mode evaluation); "running" uses the running statistics."""
    n = x.shape[0]
    if n == 0:
        return float("nan"), float("nan")
    chunk = batch_size if bn_mode == "batch" else EVAL_CHUNK
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, n, chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        mode = "batch" if bn_mode == "batch" and xb.shape[0] > 1 else "running"
        logits = net(xb, bn_mode=mode)
        total_loss += compute_loss(logits, yb, loss, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    return total_loss.item() / n, correct.item() / n


def _bn_modes(net: MLP, bn_eval: str) -> list[str]:
    if not net.has_batchnorm:
        return ["none"]
    return ["running", "batch"] if bn_eval == "both" else [bn_eval]


def run_record(net: MLP, data: SampleSet, config: TrainConfig) -> dict[str, Any]:
    """What config.json records: enough to rebuild the model, the data and the training from the folder alone
    (the data by its portable spec, without the folder its files came from)."""
    spec = getattr(data, "spec", None)
    return {
        "netdyn_version": __version__,
        "model": net.spec.to_dict(),
        "train": config.to_dict(),
        "data": DataSpec.from_dict(spec).to_dict() if spec else None,
    }


def _check_training_data(net: MLP, data: DataLike) -> SampleSet:
    if not isinstance(net, MLP):
        raise ModelError(f"train takes a netdyn MLP, got {type(net).__name__}; convert an nn.Sequential with "
                         "netdyn.MLP.from_sequential(seq)")
    data = as_samples(data, num_classes=net.widths[-1])
    check_fits(data, net.widths[0], net.widths[-1])
    if data.x_train.shape[0] < 2:
        raise ConfigError("the training set needs at least 2 samples")
    return data


def train(
    net: MLP,
    data: DataLike,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    progress: bool = False,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``net`` on ``data`` (a Dataset, or the four tensors), recording its dynamics (SPEC section 4).

    With ``run_dir`` the run folder receives config.json, checkpoints and the history table as it goes.
    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint and ends with the same weights
    and the same history table as an uninterrupted run. A callback ``callback(event, state)`` runs at each
    evaluation ("eval") and at the end ("end"); an exception it raises stops the run, leaving the folder
    readable, and propagates. ``record`` replaces what config.json records (``netdyn.run`` passes its spec).
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train takes a TrainConfig, got {type(config).__name__}")
    data = _check_training_data(net, data)
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    net.to(device=device, dtype=dtype)
    x_train = data.x_train.flatten(1).to(device=device, dtype=dtype)
    y_train = data.y_train.to(device=device, dtype=torch.long)
    x_test = data.x_test.flatten(1).to(device=device, dtype=dtype)
    y_test = data.y_test.to(device=device, dtype=torch.long)

    n_train = x_train.shape[0]
    batch = min(config.batch_size, n_train)
    per_epoch = steps_per_epoch(n_train, batch)
    total = config.total_steps(n_train)
    schedule = Schedule.of(config, total)
    modes = _bn_modes(net, config.bn_eval)
    optimizer = make_optimizer(net, config)
    folder = RunFolder(run_dir) if run_dir is not None else None
    start_step, wall_offset, resumed = 0, 0.0, False
    if folder is not None:
        start_step, wall_offset, resumed = open_run_folder(
            folder, record or run_record(net, data, config), net, optimizer, resume, device
        )

    def measure(point: RecordPoint) -> dict[str, pd.DataFrame]:
        net.eval()
        rows = []
        for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
            for mode in modes:
                loss, acc = evaluate(net, xs, ys, config.loss, "running" if mode == "none" else mode, batch)
                rows.append(
                    {"step": point.step, "epoch": point.epoch, "wall_time": point.wall_time, "split": split,
                     "bn_mode": mode, "loss": loss, "accuracy": acc}
                )
        net.train()
        return {"history": _history_frame(rows)}

    def save(point: RecordPoint) -> None:
        folder.save_checkpoint(point.step, net, optimizer, {"wall_time": point.wall_time, "epoch": point.epoch})

    state: TrainState
    bar = progress_bar(total, initial=start_step) if progress else None

    def hook(event: str, point: RecordPoint) -> None:
        state.step, state.epoch = point.step, point.epoch
        if bar is not None and event == "record":
            last = recorder.table("history")
            last = last[last["step"] == point.step].groupby("split")["accuracy"].first()
            train_acc, test_acc = last.get("train", float("nan")), last.get("test", float("nan"))
            bar.set_postfix(train=f"{train_acc:.3f}", test=f"{test_acc:.3f}")
        for callback in callbacks:
            callback("eval" if event == "record" else event, state)

    recorder = Recorder(
        schedule, measure, save if folder is not None else None, folder, per_epoch, hooks=[hook]
    )
    state = TrainState(start_step, start_step / per_epoch, total, net, optimizer, folder.path if folder else None,
                       recorder)
    if resumed:
        recorder.restore(start_step, wall_offset)

    step_fn = StepFn(net, optimizer, x_train, y_train, config.loss)
    step_fn.counter.fill_(start_step)
    diverged_step: int | None = None
    net.train()
    try:
        recorder.record(start_step)
        perm: torch.Tensor | None = None
        for step in range(start_step, total):
            epoch, pos = divmod(step, per_epoch)
            if perm is None or pos == 0:
                perm = epoch_permutation(config.seed, epoch, n_train, device)
            stop = n_train if pos == per_epoch - 1 else (pos + 1) * batch
            step_fn(perm[pos * batch : stop])
            done = step + 1
            if schedule.due(done):
                diverged_step = step_fn.diverged_step()
                if diverged_step is not None:
                    break
                recorder.record(done)
            if bar is not None:
                bar.update(1)
        if diverged_step is None:
            diverged_step = step_fn.diverged_step()
    finally:
        if bar is not None:
            bar.close()
        net.eval()

    state.diverged = diverged_step is not None
    table = _history_frame(recorder.table("history"))
    summary = _summary(table, total, per_epoch, recorder.wall_time(), diverged_step, n_train, x_test.shape[0], modes)
    summary = recorder.finish(summary, state.step)
    return TrainResult(history=table, summary=summary, run_dir=folder.path if folder else None, net=net)


def _history_frame(history: list[dict[str, Any]] | pd.DataFrame | None) -> pd.DataFrame:
    df = pd.DataFrame(history if history is not None else [], columns=HISTORY_COLUMNS)
    return df.astype(
        {
            "step": "int64",
            "epoch": "float64",
            "wall_time": "float64",
            "loss": "float64",
            "accuracy": "float64",
        }
    )


def _summary(
    table: pd.DataFrame,
    total: int,
    per_epoch: int,
    wall: float,
    diverged_step: int | None,
    n_train: int,
    n_test: int,
    modes: list[str],
) -> dict[str, Any]:
    # a finished run trained every step, evaluated or not (eval_every="none"); a diverged one is summarised
    # at its last recorded step, the last state known to be finite
    steps = total if diverged_step is None else (int(table["step"].max()) if len(table) else 0)
    summary: dict[str, Any] = {
        "steps": steps,
        "total_steps": total,
        "epochs": steps / per_epoch,
        "wall_time": wall,
        "diverged": diverged_step is not None,
        "diverged_step": diverged_step,
        "n_train": n_train,
        "n_test": n_test,
        "bn_modes": modes,
    }
    if len(table):
        last = table[table["step"] == table["step"].max()]
        for row in last.itertuples():
            suffix = "" if row.bn_mode in (modes[0], "none") else f"_{row.bn_mode}"
            summary[f"{row.split}_accuracy{suffix}"] = float(row.accuracy)
            summary[f"{row.split}_loss{suffix}"] = float(row.loss)
    return summary


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
    old = folder.config
    for key in ("model", "train", "data"):
        if not same_record(key, old.get(key), record.get(key)):
            raise RunError(f"cannot resume {folder.path}: its {key} config differs from the one given now")
    if not folder.checkpoints():  # killed before its first checkpoint: start again from step 0
        folder.write_config(record)
        return 0, 0.0, False
    ckpt = folder.load_checkpoint("last")
    net.load_state_dict({k: v.to(device) for k, v in ckpt["model"].items()})
    if optimizer is not None and ckpt["optim"] is not None:
        optimizer.load_state_dict(ckpt["optim"])
    return ckpt["step"], float(ckpt["meta"].get("wall_time", 0.0)), True


def same_record(key: str, old: Any, new: Any) -> bool:
    """Whether two config.json entries describe the same run. The model's seed is not compared: a resumed run
    takes its weights from the checkpoint (older folders wrote the model as ``net.arch``, without a seed, and the
    data with the absolute folder it came from)."""
    if old is None or new is None:
        return old == new
    if key == "model":
        a, b = ModelSpec.from_dict(old).to_dict(), ModelSpec.from_dict(new).to_dict()
        a.pop("seed"), b.pop("seed")
def record_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Which part of two run records (config.json) differs ("model config", ...), or None for the same run."""
    for key in ("model", "train", "data"):
        if not same_record(key, old.get(key), new.get(key)):
            return f"{key} config"
    return None


        return a == b
    if key == "data":
        # an option that one record leaves to the data set's default and the other states is no difference
        # (a spec as given vs the same data as loaded)
        a, b = DataSpec.from_dict(old), DataSpec.from_dict(new)
        common = set(a.options) & set(b.options)
        return replace(a, options={}) == replace(b, options={}) and all(a.options[k] == b.options[k] for k in common)
    return json.loads(json.dumps(old, default=str)) == json.loads(json.dumps(new, default=str))

