"""``ModelSpec``: everything that rebuilds an :class:`~netdyn.models.MLP`, as a frozen, JSON-ready record.

A run folder's ``config.json`` holds one under ``"model"``; a process pool or a Ray worker rebuilds the network
from it alone. ``in_features`` and ``num_classes`` may be left None in a spec written by hand: they are taken from
the data when the network is built (``spec.resolve(data)``), and a recorded spec always holds them.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Any

from netdyn import _config
from netdyn.errors import ConfigError
from netdyn.models.activations import ACTIVATIONS

INITS = ("default", "orthogonal", "kaiming", "xavier")
RESIDUALS = ("none", "pre", "post")

def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def residual_mode(residual: str | bool | None) -> str:
    """The skip mode of a ``residual`` argument: none, pre or post (True is pre; False and None are none)."""
    if residual is True:
        return "pre"
    if residual is False or residual is None:
        return "none"
    if residual not in RESIDUALS:
        raise ConfigError(f"residual must be one of none, pre, post (or a bool), got {residual!r}")
    return residual


@dataclass(frozen=True)
class ModelSpec:
    """The architecture and initialisation of an MLP. Every field is a flag of ``netdyn train``.

    See docs/runs.md#models.
    """

    width: int | tuple[int, ...] = 256
    """Neurons per hidden layer (one number, or one per hidden layer)."""
    depth: int = 3
    """Number of hidden layers (the paper's n-layer net has depth n - 2)."""
    activation: str | tuple[str, ...] = "relu"
    """Transfer function of the hidden layers (one name, or one per hidden layer)."""
    residual: str = "none"
    """Residual pairs: none, pre (the skip joins the local field after batch norm) or post (the output)."""
    batchnorm: bool | tuple[bool, ...] = False
    """Batch norm on every hidden layer (or one flag per hidden layer)."""
    bias: bool = True
    """Biases in every Linear layer."""
    init: str = "default"
    """Initialisation: default (torch's nn.Linear rule), orthogonal, kaiming or xavier."""
    init_scale: float = 1.0
    """Multiply every initial weight and bias (the grokking set-up uses 8)."""
    seed: int | None = None
    """Seed of the initial parameters (None: torch's global generator)."""
    bn_eps: float = 1e-5
    """Batch-norm epsilon."""
    bn_momentum: float = 0.1
    """Batch-norm momentum of the running statistics (PyTorch's 0.1 is the paper's 0.9)."""
    in_features: int | None = None
    """Input dimension (None: the data's)."""
    num_classes: int | None = None
    """Output neurons (None: the data's number of classes)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "residual", residual_mode(self.residual))
        if not _is_int(self.depth) or self.depth < 1:
            raise ConfigError(f"depth must be an integer >= 1 (hidden layers), got {self.depth!r}")
        self._check_layers()
        if self.residual != "none" and self.depth < 3:
            raise ConfigError(f"a residual network needs depth >= 3 (skips join layers l-2 and l), got {self.depth}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        self._check_numbers()
        self._check_sizes()

    def _check_layers(self) -> None:
        """The per-layer fields: one value or one per hidden layer (a list becomes a tuple), each valid."""
        for name in ("width", "activation", "batchnorm"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, value := tuple(value))
            if isinstance(value, tuple) and len(value) != self.depth:
                raise ConfigError(f"{name} has {len(value)} entries but the network has {self.depth} hidden layers")
        if not all(_is_int(w) and w >= 1 for w in self.widths):
            raise ConfigError(f"width must be a whole number >= 1 (or one per hidden layer), got {self.width!r}")
        for name in self.activations:
            if name not in ACTIVATIONS:
                raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}")
        if not all(isinstance(b, bool) for b in self.batchnorms) or not isinstance(self.bias, bool):
            raise ConfigError(f"batchnorm and bias take true or false, got {self.batchnorm!r} and {self.bias!r}")

    def _check_numbers(self) -> None:
        for name in ("init_scale", "bn_momentum", "bn_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if self.init_scale <= 0:
            raise ConfigError(f"init_scale must be a finite number > 0, got {self.init_scale!r}")
        if self.bn_eps <= 0 or not 0 <= self.bn_momentum <= 1:
            raise ConfigError(
                f"bn_eps must be > 0 and bn_momentum in [0, 1], got {self.bn_eps!r} and {self.bn_momentum!r}"
            )

    def _check_sizes(self) -> None:
        for name in ("in_features", "num_classes"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"a classifier needs num_classes >= 2, got {self.num_classes}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {self.seed!r}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Width of each hidden layer."""
        return self.width if isinstance(self.width, tuple) else (self.width,) * self.depth

    @property
    def activations(self) -> tuple[str, ...]:
        """Transfer function of each hidden layer."""
        return self.activation if isinstance(self.activation, tuple) else (self.activation,) * self.depth

    @property
    def batchnorms(self) -> tuple[bool, ...]:
        """Whether each hidden layer has batch norm."""
        return self.batchnorm if isinstance(self.batchnorm, tuple) else (self.batchnorm,) * self.depth

    @property
    def resolved(self) -> bool:
        """Whether ``in_features`` and ``num_classes`` are both set (see :meth:`resolve`)."""
        return self.in_features is not None and self.num_classes is not None

    def resolve(self, data: Any) -> ModelSpec:
        """This spec with ``in_features`` and ``num_classes`` taken from ``data`` where they are None."""
        return replace(
            self,
            in_features=self.in_features if self.in_features is not None else int(data.x_train.flatten(1).shape[1]),
            num_classes=self.num_classes if self.num_classes is not None else int(data.num_classes),
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON types (tuples become lists)."""
        return _config.to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """The spec from :meth:`to_dict`, or from the model dict of run folders written before specs existed.

        Such a dict holds ``MLP``'s keyword arguments: residual as a bool, no seed.
        """
        return _config.from_dict(cls, values, "model")
