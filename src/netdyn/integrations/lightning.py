"""``NetdynCallback``: a :class:`netdyn.Monitor` inside a PyTorch Lightning ``Trainer``.

    trainer = lightning.Trainer(callbacks=[NetdynCallback("runs/mine", data)], max_steps=5000)

After every optimiser step (``trainer.global_step``) the callback hands the module's network to the monitor,
with the step's training loss when ``training_step`` returned one; the run folder closes when training ends.
PyTorch Lightning is an optional extra (``pip install netdyn[lightning]``).
"""

from __future__ import annotations

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

    ``network`` finds the ``nn.Sequential`` (or netdyn ``MLP``) inside the LightningModule: an attribute name
    (default ``"model"``), or a function of the module. When None, the module's only ``nn.Sequential`` child is
    used.
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
        if self.monitor.total_steps is None and trainer.max_steps and trainer.max_steps > 0:
            self.monitor.total_steps = int(trainer.max_steps)
        self.monitor.step(self._find(pl_module), trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else None
        if trainer.global_step > (self.monitor.last_step or 0):
            self.monitor.step(self._find(pl_module), trainer.global_step, train_loss=value)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.monitor.close()
