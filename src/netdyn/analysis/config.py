"""``AnalysisConfig``: what ``analyze`` computes and how (see docs/quantities.md#the-analysis-as-a-whole)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from netdyn import _config
from netdyn._device import check_device_name
from netdyn.analysis._pooling import MEMORY_BUDGET
from netdyn.errors import ConfigError
from netdyn.models.adapter import LMAP_VARIANTS

#: The values of ``AnalysisConfig.bn_mode``.
BN_MODES = ("running", "batch")


def _positive_int(value: Any, name: str, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")


@dataclass(frozen=True)
class AnalysisConfig:
    """What ``analyze`` computes and how. Every field is a flag of ``netdyn analyze``."""

    layers: tuple[int, ...] | None = None
    """Layers to report (None: all; RPD and neuron modes take the hidden ones among them)."""
    basins: bool = True
    """Compute the sample- and weight-space attraction basins (the slowest part)."""
    quantities: tuple[str, ...] | None = None
    """Quantities to compute, by name (None: every default one; see netdyn.analysis.QUANTITIES)."""
    basin_samples: int | None = None
    """Training samples the basins use (None: 2,000 on a CPU, all on a GPU)."""
    repeats: int = 5
    """Noise draws per amplitude in the basins."""
    eps: tuple[float, ...] | None = None
    """Noise amplitudes of the basins (None: 0..3 in 31 points, extended up to 12 until accuracy halves)."""
    max_samples: int = 2000
    """Training samples for the RPD and the neuron modes (a seeded subset)."""
    bins: int = 50
    """Histogram bins of the RPD."""
    classes: tuple[int, ...] = (1, 2, 3)
    """Classes whose output local fields are projected (the first two name the neuron pair)."""
    bn_batch_size: int = 100
    """Batch size whose statistics bn_perturbation compares with the running ones (the training batch)."""
    bn_mode: str = "running"
    """The batch-norm statistics every quantity evaluates the network with: "running" (its running statistics, as
    in evaluation mode) or "batch": the training set's own statistics at the current weights, i.e. each batch-norm
    layer's mean and variance recomputed by one pass over the training samples (cumulative, momentum None; one
    batch while the inputs fit memory_budget) on a copy of the model, what batch statistics estimate, free of
    batch noise. The L-map, LP, RPD, neuron modes, basins and local fields all see it; a net without batch norm
    is the same under both."""
    lmap_variant: str = "keep"
    """What the L-map's tails of a model that is not a netdyn MLP do with LayerNorm and softmax attention:
    "keep" (they stay, and such a tail is nonlinear) or "constant" (each LayerNorm's scale and each attention
    pattern held at its training-set mean, as batch norm's running statistics are, so that the tail is affine;
    fused attention is then an error naming it). A netdyn MLP has neither: both give its one table."""
    memory_budget: int = MEMORY_BUDGET
    """Bytes the LP and the class geometry may hold per cut of a model that is not a netdyn MLP (default 2 GiB).
    A cut wider than 8,192 features gets the LP's dual form while it fits, else a conv cut's activations are
    average-pooled k x k to fit; the geometry pools the same way where its class centres do not fit."""
    seed: int = 0
    """Seed of every subset and noise draw."""
    device: str = "auto"
    """Device: auto (cuda if available), cpu, cuda."""
    dtype: str = "float32"
    """Floating-point type of the analysis: float32 or float64."""

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.bn_mode not in BN_MODES:
            raise ConfigError(f"bn_mode must be one of {', '.join(BN_MODES)}, got {self.bn_mode!r}")
        if self.lmap_variant not in LMAP_VARIANTS:
            raise ConfigError(f"lmap_variant must be one of {', '.join(LMAP_VARIANTS)}, got {self.lmap_variant!r}")
        check_device_name(self.device)
        _positive_int(self.repeats, "repeats")
        _positive_int(self.max_samples, "max_samples", 2)
        _positive_int(self.bins, "bins", 2)
        _positive_int(self.bn_batch_size, "bn_batch_size", 2)
        _positive_int(self.seed, "seed", 0)
        _positive_int(self.memory_budget, "memory_budget")
        if self.basin_samples is not None:
            _positive_int(self.basin_samples, "basin_samples")
        if not isinstance(self.basins, bool):
            raise ConfigError(f"basins takes true or false, got {self.basins!r}")
        if len(self.classes) < 2:
            raise ConfigError("classes needs at least two classes (the first two name the projected neurons)")
        for name in ("layers", "classes"):
            values = getattr(self, name)
            if values is not None and any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
                raise ConfigError(f"{name} takes whole numbers, got {values!r}")
        if self.eps is not None and not all(
            isinstance(e, numbers.Real) and not isinstance(e, bool) and math.isfinite(e) and e >= 0 for e in self.eps
        ):
            raise ConfigError(f"eps takes finite amplitudes >= 0, got {self.eps!r}")
        if self.quantities is not None:
            from netdyn.analysis.quantities import QUANTITIES

            unknown = [q for q in self.quantities if q not in QUANTITIES]
            if unknown or not self.quantities:
                raise ConfigError(
                    f"unknown quantities {unknown or '(none given)'}; known: {', '.join(QUANTITIES)}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON types (tuples become lists)."""
        return _config.to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnalysisConfig:
        """The config :meth:`to_dict` wrote (ConfigError naming an unknown field or an invalid value)."""
        return _config.from_dict(cls, values, "analysis")
