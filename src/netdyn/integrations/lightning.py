"""``NetdynCallback``: a :class:`netdyn.Monitor` inside a PyTorch Lightning ``Trainer``.

    trainer = lightning.Trainer(callbacks=[NetdynCallback("runs/mine", data)], max_epochs=5)

After every optimiser step (``trainer.global_step``) the callback hands the module's network to the monitor,
with the step's training loss when ``training_step`` returned one; when training ends the monitor records the
last step in full and closes the run folder. The run's length comes from the trainer (``max_steps``, else
``estimated_stepping_batches``: ``max_epochs`` x the batches of an epoch), so the log-spaced points span it; the
monitor's scalars go through the trainer's loggers (TensorBoard, CSV, W&B, MLflow, ...) beside the module's own.
PyTorch Lightning is an optional extra (``pip install netdyn[lightning]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netdyn.errors import ConfigError

if TYPE_CHECKING:
    from lightning.pytorch.utilities.types import STEP_OUTPUT

    from netdyn.data.samples import DataLike

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "netdyn.integrations.lightning needs PyTorch Lightning: pip install 'netdyn[lightning]'"
    ) from exc


class NetdynCallback(pl.Callback):
    """Records the framework's quantities while a LightningModule trains (the arguments after ``network`` are
    :class:`netdyn.Monitor`'s).

    ``network`` finds the network inside the LightningModule (any ``nn.Module`` the monitor records: a netdyn
    ``MLP``, an ``nn.Sequential``, a CNN, ...): an attribute name (default ``"model"``), or a function of the module.
    When None, the module's only ``nn.Sequential`` child is used. Unless given, ``total_steps`` is read from the
    trainer, ``batch_size`` from its training loader, and the trainer's loggers join ``loggers``. Pass the
    monitor's ``model_factory`` (and ``model_args``) so that ``load_run(run_dir).model()`` rebuilds a user's model,
    and ``input_shape`` / ``cuts`` to say how it is read.
    """

    def __init__(
        self,
        run_dir: str | Path,
        data: DataLike,
        network: str | Callable[[pl.LightningModule], nn.Module] | None = "model",
        **monitor: Any,
    ) -> None:
        super().__init__()
        from netdyn.monitor import Monitor

        self.network = network
        self.monitor = Monitor(run_dir, data, **monitor)
        self._given = set(monitor)

    def _find(self, module: pl.LightningModule) -> nn.Module:
        if callable(self.network):
            return self.network(module)
        if isinstance(self.network, str) and hasattr(module, self.network):
            return getattr(module, self.network)
        sequential = [m for m in module.children() if isinstance(m, nn.Sequential)]
        if len(sequential) != 1:
            raise ConfigError(
                f"NetdynCallback: cannot find the network in {type(module).__name__}: pass network= (an attribute "
                "name or a function of the module)"
            )
        return sequential[0]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor.total_steps is None:
            self.monitor.total_steps = run_length(trainer)
        if "batch_size" not in self._given:
            batch_size = getattr(trainer.train_dataloader, "batch_size", None)
            if isinstance(batch_size, int) and batch_size >= 2:
                self.monitor.batch_size = batch_size
        self.monitor.loggers += [lg for lg in trainer.loggers if lg not in self.monitor.loggers]
        self.monitor.step(self._find(pl_module), trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else None
        if trainer.global_step > (self.monitor.last_step or 0):
            self.monitor.step(self._find(pl_module), trainer.global_step, train_loss=value)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > (self.monitor.last_step or 0):  # a step that ended without a batch-end hook
            self.monitor.step(self._find(pl_module), trainer.global_step)
        self.monitor.close()


def run_length(trainer: pl.Trainer) -> int | None:
    """The optimiser steps a trainer will take (None when unbounded).

    That is ``max_steps`` when set, else ``estimated_stepping_batches``: ``max_epochs`` x the batches of an epoch,
    over gradient accumulation and devices.
    """
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    estimated = trainer.estimated_stepping_batches
    if isinstance(estimated, (int, float)) and math.isfinite(estimated) and estimated >= 1:
        return int(estimated)
    return None
