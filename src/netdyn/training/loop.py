"""The training loop (SPEC section 4): whole-tensor data on the device, index-permutation minibatches,
log-spaced evaluations and checkpoints, on-device divergence detection, atomic run folders and exact resume.

The optimiser step (:class:`StepFn`) is a pure function of a device index tensor with no host
synchronisation, so a CUDA graph can capture it and a population of models can share its shape.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

import netdyn
from netdyn.errors import ConfigError, RunError
from netdyn.models import MLP
from netdyn.store import RunFolder
from netdyn.training.config import TrainConfig, parse_schedule, steps_per_epoch

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
    history: list[dict[str, Any]]
    run_dir: Path | None
    diverged: bool = False


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


def resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available on this machine")
    return dev


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


def run_config(net: MLP, data: Any, config: TrainConfig) -> dict[str, Any]:
    """What config.json records: enough to rebuild the model, the data and the training from the folder alone."""
    return {
        "netdyn_version": netdyn.__version__,
        "model": net.arch,
        "train": config.to_dict(),
        "data": getattr(data, "spec", None),
    }


def _check_inputs(net: MLP, data: Any) -> None:
    d = data.x_train.flatten(1).shape[1]
    if d != net.widths[0]:
        raise ConfigError(
            f"dataset {getattr(data, 'name', '?')!r} has {d} input features; the network takes {net.widths[0]}"
        )
    n_classes = net.widths[-1]
    top = int(max(data.y_train.max().item(), data.y_test.max().item() if len(data.y_test) else 0))
    if top >= n_classes:
        raise ConfigError(f"labels go up to {top} but the network has {n_classes} outputs")
    if data.x_train.shape[0] < 2:
        raise ConfigError("the training set needs at least 2 samples")


def train(
    net: MLP,
    data: Any,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train ``net`` on ``data`` (a Dataset), recording its dynamics (SPEC section 4).

    With ``run_dir`` the run folder receives config.json, checkpoints and the history table as it goes.
    ``resume=True`` continues the run in ``run_dir`` from its last checkpoint and ends with the same weights
    as an uninterrupted run. A callback ``callback(event, state)`` runs at each evaluation ("eval") and at
    the end ("end"); an exception it raises stops the run, leaving the folder readable, and propagates.
    """
    config = config or TrainConfig()
    _check_inputs(net, data)
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
    total = config.steps or max(1, math.ceil(config.epochs * per_epoch))
    eval_steps = set(parse_schedule(config.eval_every, total))
    ckpt_steps = set(parse_schedule(config.checkpoint_every, total))
    modes = _bn_modes(net, config.bn_eval)

    optimizer = make_optimizer(net, config)
    folder = RunFolder(run_dir) if run_dir is not None else None
    history: list[dict[str, Any]] = []
    start_step, time_offset = 0, 0.0
    record = run_config(net, data, config)
    if folder is not None:
        start_step, time_offset, history = _open_folder(folder, record, net, optimizer, resume, device)

    step_fn = StepFn(net, optimizer, x_train, y_train, config.loss)
    step_fn.counter.fill_(start_step)
    t0 = time.perf_counter() - time_offset
    state = TrainState(
        start_step, start_step / per_epoch, total, net, optimizer, history, folder.path if folder else None
    )
    bar = _progress_bar(total, start_step) if progress else None

    def wall() -> float:
        return time.perf_counter() - t0

    def evaluate_now(step: int) -> None:
        net.eval()
        for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
            for mode in modes:
                loss, acc = evaluate(net, xs, ys, config.loss, "running" if mode == "none" else mode, batch)
                history.append(
                    {
                        "step": step,
                        "epoch": step / per_epoch,
                        "wall_time": wall(),
                        "split": split,
                        "bn_mode": mode,
                        "loss": loss,
                        "accuracy": acc,
                    }
                )
        net.train()
        if folder is not None:
            folder.write_table("history", _history_frame(history))
        if bar is not None:
            last = {r["split"]: r["accuracy"] for r in history[-2 * len(modes) :]}
            bar.set_postfix(
                train=f"{last.get('train', float('nan')):.3f}", test=f"{last.get('test', float('nan')):.3f}"
            )

    def checkpoint_now(step: int) -> None:
        if folder is not None:
            folder.save_checkpoint(step, net, optimizer, {"wall_time": wall(), "epoch": step / per_epoch})

    diverged_step: int | None = None
    net.train()
    try:
        if start_step == 0:
            if 0 in eval_steps:
                evaluate_now(0)
            if 0 in ckpt_steps:
                checkpoint_now(0)
            if 0 in eval_steps:
                _notify(callbacks, "eval", state)
        perm: torch.Tensor | None = None
        for step in range(start_step, total):
            epoch, pos = divmod(step, per_epoch)
            if perm is None or pos == 0:
                perm = epoch_permutation(config.seed, epoch, n_train, device)
            stop = n_train if pos == per_epoch - 1 else (pos + 1) * batch
            step_fn(perm[pos * batch : stop])
            done = step + 1
            if done in eval_steps or done in ckpt_steps or done % 1000 == 0:
                diverged_step = step_fn.diverged_step()
                if diverged_step is not None:
                    break
                state.step, state.epoch = done, done / per_epoch
                if done in eval_steps:
                    evaluate_now(done)
                if done in ckpt_steps:
                    checkpoint_now(done)
                if done in eval_steps:
                    _notify(callbacks, "eval", state)
            if bar is not None:
                bar.update(1)
        if diverged_step is None:
            diverged_step = step_fn.diverged_step()
    finally:
        if bar is not None:
            bar.close()
        net.eval()

    state.diverged = diverged_step is not None
    table = _history_frame(history)
    summary = _summary(table, state, total, wall(), diverged_step, n_train, x_test.shape[0], modes)
    if folder is not None:
        folder.write_table("history", table)
        summary["checkpoints"] = folder.checkpoints()
        folder.write_summary(summary)
    _notify(callbacks, "end", state)
    return TrainResult(history=table, summary=summary, run_dir=folder.path if folder else None, net=net)


def _notify(callbacks: Sequence[Callback], event: str, state: TrainState) -> None:
    for callback in callbacks:
        callback(event, state)


def _history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(history, columns=HISTORY_COLUMNS)
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
    state: TrainState,
    total: int,
    wall: float,
    diverged_step: int | None,
    n_train: int,
    n_test: int,
    modes: list[str],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "steps": int(table["step"].max()) if len(table) else 0,
        "total_steps": total,
        "epochs": float(table["epoch"].max()) if len(table) else 0.0,
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


def _open_folder(
    folder: RunFolder,
    record: dict[str, Any],
    net: MLP,
    optimizer: torch.optim.Optimizer,
    resume: bool,
    device: torch.device,
) -> tuple[int, float, list[dict[str, Any]]]:
    """Prepare the run folder; on resume, load the last checkpoint and the history up to it."""
    if not resume:
        if folder.exists() or folder.checkpoints():
            raise RunError(f"{folder.path} already holds a run: pass resume=True (--resume) or choose another folder")
        folder.write_config(record)
        return 0, 0.0, []
    if not folder.exists() or not folder.checkpoints():
        folder.write_config(record)
        return 0, 0.0, []
    old = folder.config
    for key in ("model", "train", "data"):
        if _normalise(old.get(key)) != _normalise(record[key]):
            raise RunError(f"cannot resume {folder.path}: its {key} config differs from the one given now")
    ckpt = folder.load_checkpoint("last")
    net.load_state_dict({k: v.to(device) for k, v in ckpt["model"].items()})
    if ckpt["optim"] is not None:
        optimizer.load_state_dict(ckpt["optim"])
    step = ckpt["step"]
    history: list[dict[str, Any]] = []
    if "history" in folder.table_names():
        table = folder.read_table("history")
        history = table[table["step"] <= step].to_dict("records")
    return step, float(ckpt["meta"].get("wall_time", 0.0)), history


def _normalise(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))


def _progress_bar(total: int, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=0.5, leave=False, disable=None)
