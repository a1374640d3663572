"""The training core (see docs/runs.md#training): what a single run and a population share.

:func:`~netdyn.training.loop.train` (one net, its :class:`~netdyn.training.loop.StepFn`) and
:func:`~netdyn.training.population.train_population` (P nets, the population engine) differ only in how a step is
taken, how the members are evaluated and what a member's checkpoint holds. Everything else is here, once: the data
placed on the training device (:func:`prepare_data`), the batch-norm modes of the history, the minibatch of a
step, one :class:`~netdyn.training.recorder.Recorder` per member measuring through :class:`HistoryMeasure`, the
loop that reads the on-device divergence flags only where a schedule says and records the members still
training (:func:`run_steps`, with the progress bar) and the per-member summary and result (:func:`finish`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from netdyn._device import resolve_device
from netdyn._progress import progress_bar
from netdyn._version import __version__
from netdyn.data.samples import DataLike, SampleSet, as_samples, check_fits, check_labels
from netdyn.data.spec import DataSpec
from netdyn.errors import ConfigError, ModelError
from netdyn.models import MLP, ConvNet, ResNet, ViT
from netdyn.models.adapter import evaluating
from netdyn.store import RunFolder, user_model_record
from netdyn.training.config import TrainConfig
from netdyn.training.recorder import Hook, Measure, Recorder, RecordPoint, Save, Schedule

HISTORY_COLUMNS = ["step", "epoch", "wall_time", "split", "bn_mode", "loss", "accuracy"]

#: ``evaluate(x, y, bn_mode)``: every member's (mean loss, accuracy) on one split, ``bn_mode`` "running" or "batch".
Evaluate = Callable[[torch.Tensor, torch.Tensor, str], list[tuple[float, float]]]
#: What a member's checkpoint holds: ``(model, optimizer)``, each anything with a ``state_dict()``.
CheckpointStates = Callable[[], tuple[Any, Any]]


@dataclass
class TrainResult:
    """A finished (or stopped) run: its metrics table, summary and folder."""

    history: pd.DataFrame
    summary: dict[str, Any]
    run_dir: Path | None
    net: torch.nn.Module = field(repr=False)
    """The trained network: a netdyn MLP, or the ``nn.Module`` trained (a ConvNet, ResNet, ViT, ...)."""

    @property
    def diverged(self) -> bool:
        """Whether a loss that was not finite stopped the run (``summary["diverged_step"]`` says when)."""
        return bool(self.summary.get("diverged"))

    def _repr_html_(self) -> str:
        from netdyn._html import block

        meta: dict[str, Any] = {"run folder": str(self.run_dir) if self.run_dir is not None else "none (not saved)"}
        meta.update({k: v for k, v in self.summary.items() if not isinstance(v, (dict, list))})
        title = self.net.extra_repr() if isinstance(self.net, MLP) else type(self.net).__name__
        return block(f"netdyn TrainResult: {title}", meta, [("last evaluations", self.history.tail(4))])


# ------------------------------------------------------------------------------------------------ the data
@dataclass(frozen=True)
class DeviceData:
    """A run's training and test tensors on its device and dtype, labels long.

    Inputs are flattened for a netdyn MLP and shaped as the model is fed (``input_shape``) for any other model.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_train(self) -> int:
        """The number of training samples."""
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        """The number of test samples."""
        return self.x_test.shape[0]

    @property
    def device(self) -> torch.device:
        """The training device."""
        return self.x_train.device

    def splits(self) -> tuple[tuple[str, torch.Tensor, torch.Tensor], ...]:
        """``(name, x, y)`` of the training and the test split, in that order."""
        return ("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)


def check_training_data(net: torch.nn.Module, data: DataLike) -> SampleSet:
    """``data`` as a SampleSet that fits ``net``, with at least 2 training samples.

    A net that is not one of netdyn's models (MLP, ConvNet, ResNet, ViT) is a ModelError, data that do not fit it a
    ConfigError. A vision model is fed ``x.reshape(-1, *input_shape)`` (:func:`input_shape`) and its outputs must
    cover the labels.
    """
    if not isinstance(net, (MLP, ConvNet, ResNet, ViT)):
        raise ModelError(f"train takes a netdyn MLP, ConvNet, ResNet or ViT, got {type(net).__name__}; convert an "
                         "nn.Sequential with netdyn.MLP.from_sequential(seq), or train your own model in your loop "
                         "with netdyn.Monitor")
    if isinstance(net, MLP):
        data = as_samples(data, num_classes=net.widths[-1])
        check_fits(data, net.widths[0], net.widths[-1])
    else:
        data = as_samples(data)
        check_labels(data)
        _check_outputs(net, data)
    if data.x_train.shape[0] < 2:
        raise ConfigError("the training set needs at least 2 samples")
    return data


def input_shape(data: SampleSet) -> tuple[int, ...]:
    """How one sample is fed to a model other than a netdyn MLP: the data's ``input_shape`` (a channel in front of
    an image's (H, W)), else its stored shape."""
    shape = tuple(int(s) for s in (getattr(data, "input_shape", None) or data.x_train.shape[1:]))
    return (1, *shape) if len(shape) == 2 else shape


def _check_outputs(net: torch.nn.Module, data: SampleSet) -> None:
    """The model's logits [batch, classes] cover the data's classes (one sample through it, in evaluation mode)."""
    ref = next(iter(net.parameters()), None)
    x = data.x_train[:1].reshape(-1, *input_shape(data))
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    try:
        with torch.no_grad(), evaluating(net):
            out = net(x)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{type(net).__name__} cannot take samples of shape {input_shape(data)}: {reason}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise ModelError(f"train needs a model whose output is logits [batch, classes]; {type(net).__name__} "
                         f"returns {tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    classes = int(data.num_classes)
    if out.shape[1] < classes:
        raise ConfigError(f"data set {getattr(data, 'name', '?')!r} has {classes} classes but "
                          f"{type(net).__name__} has {out.shape[1]} outputs")


def prepare_data(
    nets: Sequence[torch.nn.Module], data: DataLike, config: TrainConfig
) -> tuple[SampleSet, DeviceData]:
    """Check ``data`` against the (first) net and move the nets and the data to ``config``'s device and dtype."""
    samples = check_training_data(nets[0], data)
    device, dtype = resolve_device(config.device), getattr(torch, config.dtype)
    for net in nets:
        net.to(device=device, dtype=dtype)
    shape = None if isinstance(nets[0], MLP) else input_shape(samples)

    def fed(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) if shape is None else x.reshape(x.shape[0], *shape)).to(device=device, dtype=dtype)

    placed = DeviceData(
        fed(samples.x_train),
        samples.y_train.to(device=device, dtype=torch.long),
        fed(samples.x_test),
        samples.y_test.to(device=device, dtype=torch.long),
    )
    return samples, placed


def minibatch(step: int, steps_per_epoch: int, batch_size: int, n_train: int) -> tuple[int, slice]:
    """``(epoch, positions)`` of global step ``step`` (0-based) in its epoch's minibatch permutation.

    Every minibatch holds ``batch_size`` samples but the epoch's last, which takes the remainder.
    """
    epoch, pos = divmod(step, steps_per_epoch)
    stop = n_train if pos == steps_per_epoch - 1 else (pos + 1) * batch_size
    return epoch, slice(pos * batch_size, stop)


def run_record(net: torch.nn.Module, data: SampleSet, config: TrainConfig) -> dict[str, Any]:
    """What config.json records: enough to rebuild the model, the data and the training from the folder alone.

    The data are recorded by their portable spec, without the folder their files came from. A model other than a
    netdyn MLP is recorded as a user's model (its class and ``input_shape``; no factory, so ``load_run(...).model``
    needs ``into=``).
    """
    spec = getattr(data, "spec", None)
    model = {"model": net.spec.to_dict()} if isinstance(net, MLP) else user_model_record(
        net, None, None, input_shape(data), None)
    return {
        "netdyn_version": __version__,
        **model,
        "train": config.to_dict(),
        "data": DataSpec.from_dict(spec).to_dict() if spec else None,
    }


# --------------------------------------------------------------------------------------------- recording
def has_batchnorm(net: torch.nn.Module) -> bool:
    """Whether ``net`` normalises by batch statistics anywhere (a netdyn MLP's BN layers, any ``_BatchNorm``)."""
    if isinstance(net, MLP):
        return net.has_batchnorm
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


@contextmanager
def batch_statistics(net: torch.nn.Module) -> Iterator[None]:
    """Run ``net`` (in evaluation mode) with every batch norm normalising by the batch's own statistics, its running
    statistics left exactly as they were (saved and restored around the block)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    modes = [m.training for m in norms]
    try:
        for m in norms:
            m.train()
        yield
    finally:
        for m, buffers, mode in zip(norms, saved, modes, strict=True):
            m.train(mode)
            for name, value in buffers.items():
                getattr(m, name).copy_(value)


def bn_modes(net: torch.nn.Module, bn_eval: str) -> list[str]:
    """The ``bn_mode`` values of the history rows: "none" for a net without batch norm, else ``bn_eval``'s
    ("auto" and "both": running and batch statistics)."""
    if not has_batchnorm(net):
        return ["none"]
    return ["running", "batch"] if bn_eval in ("both", "auto") else [bn_eval]


def history_frame(history: list[dict[str, Any]] | pd.DataFrame | None) -> pd.DataFrame:
    """History rows as the history table: :data:`HISTORY_COLUMNS`, typed."""
    df = pd.DataFrame(history if history is not None else [], columns=HISTORY_COLUMNS)
    return df.astype({"step": "int64", "epoch": "float64", "wall_time": "float64", "loss": "float64",
                      "accuracy": "float64"})  # fmt: skip


class HistoryMeasure:
    """Every member's history rows at a step, from one evaluation per split and batch-norm mode for all members.

    :meth:`member` gives member i's ``measure`` for its :class:`Recorder`; the first member recorded at a step
    evaluates them all, the others take their rows (with their own wall time).
    """

    def __init__(self, evaluate: Evaluate, n_members: int, data: DeviceData, modes: Sequence[str]) -> None:
        self.evaluate, self.n_members, self.data, self.modes = evaluate, n_members, data, list(modes)
        self._step: int | None = None
        self._rows: list[list[dict[str, Any]]] = []

    def rows(self, point: RecordPoint) -> list[list[dict[str, Any]]]:
        """Each member's rows at ``point``'s step (without wall time), evaluated once per step."""
        if self._step != point.step:
            rows: list[list[dict[str, Any]]] = [[] for _ in range(self.n_members)]
            for split, x, y in self.data.splits():
                for mode in self.modes:
                    results = self.evaluate(x, y, "running" if mode == "none" else mode)
                    for i, (loss, acc) in enumerate(results):
                        rows[i].append({"step": point.step, "epoch": point.epoch, "split": split, "bn_mode": mode,
                                        "loss": loss, "accuracy": acc})  # fmt: skip
            self._step, self._rows = point.step, rows
        return self._rows

    def member(self, i: int) -> Measure:
        """Member ``i``'s measure: its history rows at a step, stamped with its own wall time."""

        def measure(point: RecordPoint) -> dict[str, pd.DataFrame]:
            return {"history": history_frame([dict(r, wall_time=point.wall_time) for r in self.rows(point)[i]])}

        return measure


def member_recorder(
    schedule: Schedule,
    measure: Measure,
    steps_per_epoch: int,
    folder: RunFolder | None,
    states: CheckpointStates,
    hooks: Sequence[Hook] = (),
    restored: tuple[int, float] | None = None,
) -> Recorder:
    """One member's recorder: ``measure`` at the schedule's steps, and checkpoints with a ``folder``.

    A checkpoint holds ``states()`` (the member's model and optimizer) with the wall time and epoch. ``restored`` =
    (step, wall time) goes on from that checkpoint of a resumed folder.
    """
    save: Save | None = None
    if folder is not None:
        run_folder = folder

        def save_checkpoint(point: RecordPoint) -> None:
            model, optimizer = states()
            meta = {"wall_time": point.wall_time, "epoch": point.epoch}
            run_folder.save_checkpoint(point.step, model, optimizer, meta)

        save = save_checkpoint
    recorder = Recorder(schedule, measure, save, folder, steps_per_epoch, hooks=hooks)
    if restored is not None:
        recorder.restore(*restored)
    return recorder


# ------------------------------------------------------------------------------------------------ the loop
class _Progress:
    """The progress bar: a step counter, with the train and test accuracy of a single run's last record."""

    def __init__(self, total: int, start: int, single: Recorder | None) -> None:
        self.bar = progress_bar(total, initial=start)
        self.single = single

    def update(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def recorded(self, recorder: Recorder, step: int) -> None:
        if recorder is not self.single:
            return
        table = recorder.table("history")
        if table is None:
            return
        last = table[table["step"] == step].groupby("split")["accuracy"].first()
        train_acc, test_acc = last.get("train", float("nan")), last.get("test", float("nan"))
        self.bar.set_postfix(train=f"{train_acc:.3f}", test=f"{test_acc:.3f}")


def run_steps(
    step: Callable[[int], None],
    diverged_steps: Callable[[], list[int | None]],
    recorders: Sequence[Recorder],
    start: int,
    total: int,
    progress: bool = False,
) -> list[int | None]:
    """Take steps ``start..total-1`` (``step(s)`` trains every member on step s's minibatch) and record.

    At step 0 (or the step a resumed run goes on from) and after each step that some member's schedule names
    (:meth:`Schedule.due`), the on-device divergence flags are read (``diverged_steps()``, one per member); a member
    whose loss was not finite is recorded no more, the others are recorded as their schedules say, and the loop
    ends once no member is still training. Returns each member's first non-finite step (1-based), None for those
    that finished.
    """
    diverged: list[int | None] = [None] * len(recorders)
    bar = _Progress(total, start, recorders[0] if len(recorders) == 1 else None) if progress else None
    try:
        for recorder in recorders:
            if recorder.record(start) and bar is not None:
                bar.recorded(recorder, start)
        for s in range(start, total):
            step(s)
            done = s + 1
            if any(r.schedule.due(done) for r in recorders):
                _record_step(done, recorders, diverged, diverged_steps(), bar)
                if all(d is not None for d in diverged):
                    break
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return [d if d is not None else flag for d, flag in zip(diverged, diverged_steps(), strict=True)]


def _record_step(
    done: int, recorders: Sequence[Recorder], diverged: list[int | None], flags: list[int | None], bar: _Progress | None
) -> None:
    for i, recorder in enumerate(recorders):
        if diverged[i] is None:
            diverged[i] = flags[i]
        if diverged[i] is None and recorder.schedule.due(done) and recorder.record(done) and bar is not None:
            bar.recorded(recorder, done)


def summarize(
    table: pd.DataFrame, total: int, steps_per_epoch: float, wall: float, diverged_step: int | None,
    data: DeviceData, modes: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """A member's summary.json: its length, time, divergence, data sizes and last accuracies and losses."""
    # a finished run trained every step, evaluated or not (eval_every="none"); a diverged one is summarised
    # at its last recorded step, the last state known to be finite
    steps = total if diverged_step is None else (int(table["step"].max()) if len(table) else 0)
    summary: dict[str, Any] = {
        "steps": steps,
        "total_steps": total,
        "epochs": steps / steps_per_epoch,
        "wall_time": wall,
        "diverged": diverged_step is not None,
        "diverged_step": diverged_step,
        "n_train": data.n_train,
        "n_test": data.n_test,
        "bn_modes": list(modes),
    }
    if len(table):
        last = table[table["step"] == table["step"].max()]
        for row in last.itertuples():
            suffix = "" if row.bn_mode in (modes[0], "none") else f"_{row.bn_mode}"
            summary[f"{row.split}_accuracy{suffix}"] = float(row.accuracy)
            summary[f"{row.split}_loss{suffix}"] = float(row.loss)
    return summary


def finish(
    recorders: Sequence[Recorder],
    nets: Sequence[torch.nn.Module],
    diverged: Sequence[int | None],
    total: int,
    data: DeviceData,
    modes: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> list[TrainResult]:
    """Each member's result: its history table and summary (with ``extra``), written to its folder.

    The nets are left in evaluation mode; the recorders' "end" hooks see the summary's last step.
    """
    results = []
    for recorder, net, diverged_step in zip(recorders, nets, diverged, strict=True):
        net.eval()
        table = history_frame(recorder.table("history"))
        summary = summarize(table, total, recorder.steps_per_epoch, recorder.wall_time(), diverged_step, data, modes)
        summary |= extra or {}
        summary = recorder.finish(summary, summary["steps"])
        run_dir = recorder.folder.path if recorder.folder is not None else None
        results.append(TrainResult(history=table, summary=summary, run_dir=run_dir, net=net))
    return results
