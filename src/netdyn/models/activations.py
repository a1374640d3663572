"""Transfer functions by name, and the elementwise modules ``MLP.from_sequential`` recognises."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import handle_torch_function, has_torch_function_unary

from netdyn.errors import ConfigError


def gauss(h: torch.Tensor) -> torch.Tensor:
    """The paper's Gauss transfer function f(h) = exp(-h^2 / 2): non-monotone, so one neuron can reorder."""
    # one op to torch.fx (as F.relu is), so that the network adapter sees a transfer function, not exp and muls
    if has_torch_function_unary(h):
        return handle_torch_function(gauss, (h,), h)
    return torch.exp(-0.5 * h * h)


def _identity(h: torch.Tensor) -> torch.Tensor:
    if has_torch_function_unary(h):
        return handle_torch_function(_identity, (h,), h)
    return h


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "linear": _identity,
    "gauss": gauss,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
}

#: Transfer functions that never reorder their inputs (used by the docs and the neuron-mode calibration).
MONOTONE = frozenset({"relu", "tanh", "linear", "sigmoid"})


class Gauss(nn.Module):
    """``nn.Module`` form of :func:`gauss`, for use inside a user's ``nn.Sequential``."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return gauss(h)


#: Module class -> activation name, for ``MLP.from_sequential``.
MODULE_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Identity: "linear",
    nn.Sigmoid: "sigmoid",
    nn.GELU: "gelu",
    Gauss: "gauss",
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ConfigError(f"unknown activation {name!r}; choose one of {known}") from None
