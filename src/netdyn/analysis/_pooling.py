"""Wide cuts of any model under a memory budget (see docs/any-network.md): a cut's activations average-pooled k x k to
fit.

The LP and the class geometry read a cut's flattened activations. Where what they would hold for a conv cut
[C, H, W] does not fit ``AnalysisConfig.memory_budget``, they read it average-pooled over non-overlapping k x k
windows instead (the last window of a row or column averages what is left of it), the smallest k that fits, and
their tables say so in the ``features`` column: ``pooled:k x k``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from netdyn.errors import ConfigError, ModelError

if TYPE_CHECKING:  # annotations only: the config imports this module's budget, and _common stays out of its way
    from netdyn.analysis._common import CutLayers

#: Default of ``AnalysisConfig.memory_budget``: bytes the LP's and the geometry's working values may take per cut.
MEMORY_BUDGET = 2 << 30


def check_budget(memory_budget: int) -> int:
    """``memory_budget`` as a whole number of bytes >= 1, else a ConfigError."""
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget < 1:
        raise ConfigError(f"memory_budget must be a whole number of bytes >= 1, got {memory_budget!r}")
    return memory_budget


def pooled_width(shape: tuple[int, ...], k: int) -> int:
    """Features of activations of one sample's ``shape`` [C, H, W] after k x k average pooling."""
    channels, height, width = shape
    return channels * math.ceil(height / k) * math.ceil(width / k)


def pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Activations [n, C, H, W] average-pooled over k x k windows (partial windows at the edges), flattened."""
    return F.avg_pool2d(x, k, stride=k, ceil_mode=True).flatten(1)


def pool_to_fit(shape: tuple[int, ...], fits: Callable[[int], bool], what: str) -> int:
    """The smallest k >= 2 whose pooled width ``fits``.

    A :class:`ModelError` naming ``what`` if none does or the cut is no [C, H, W] map.
    """
    if len(shape) == 3:
        for k in range(2, max(shape[1:]) + 1):
            if fits(pooled_width(shape, k)):
                return k
        raise ModelError(f"{what}: even averaged over all positions, this cut's {shape[0]} channels do not fit "
                         "memory_budget; raise it")
    raise ModelError(f"{what}: this cut's activations {list(shape)} do not fit memory_budget, and only a conv cut "
                     "[C, H, W] can be pooled to fit; raise memory_budget or use fewer training samples")


def features_label(k: int | None) -> str:
    """The ``features`` column's value of a pooled cut (``pooled:k x k``), ``full`` unpooled."""
    return "full" if k is None else f"pooled:{k} x {k}"


@dataclasses.dataclass
class PooledLayers:
    """Any model's cuts as :class:`CutLayers` reads them, with some cuts average-pooled k x k.

    ``pools`` maps a layer to its k; those layers' ``widths`` are the pooled ones.
    """

    reader: CutLayers
    pools: dict[int, int]

    @property
    def n_layers(self) -> int:
        return self.reader.n_layers

    @property
    def widths(self) -> list[int]:
        return [pooled_width(self.shapes[l], self.pools[l]) if l in self.pools else w
                for l, w in enumerate(self.reader.widths)]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return self.reader.shapes

    @property
    def device(self) -> torch.device:
        return self.reader.device

    @property
    def dtype(self) -> torch.dtype:
        return self.reader.dtype

    @property
    def names(self) -> list[str] | None:
        return self.reader.names

    def walk(self, x: torch.Tensor) -> Generator[tuple[int, torch.Tensor], None, None]:
        for l, x_l in self.reader.walk(x):
            if l in self.pools:
                x_l = pool(x_l.reshape(-1, *self.shapes[l]), self.pools[l])
            yield l, x_l
